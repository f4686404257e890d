/**
 * Free space taken by another program on the disk three real nodes share: it crosses a placement
 * weight boundary (capacity in whole GiB) but moves the capacity by less than the tenth a node
 * waits for before telling it anew, so no node starts a repair pass. The space is reserved with
 * fallocate(1), which takes blocks from the filesystem without writing them. Skipped where the
 * filesystem cannot reserve space that way, or is too small for a GiB to be under a tenth of it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { statfs, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { LocalCluster, waitFor } from '../../src/cli/local-cluster.js';
import { CAPACITY_RETELL_SHARE } from '../../src/cluster/advertised-capacity.js';
import { pieces, seededBuffer } from './files-support.js';

const GIB = 2 ** 30;
/** Periodic passes would blur the count: none for the length of the test. */
const ARGS = ['--repair-interval-ms', String(3_600_000)];
/** Past the boundary by this much, so the drift of other programs' writes cannot undo the crossing. */
const MARGIN = 128 << 20;
/** Long enough for every node to read free space again (≤ 0.5 s), gossip, and look at its view (≤ 1 s). */
const SETTLE_MS = 4_000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function passes(cluster: LocalCluster): Promise<number[]> {
  return Promise.all([0, 1, 2].map(async (i) => (await cluster.node(i).client.repair()).passes));
}

/** node index → the capacity it sees each other member with (what they told). */
async function toldByPeers(cluster: LocalCluster): Promise<Record<number, Record<string, number>>> {
  const out: Record<number, Record<string, number>> = {};
  for (const i of [0, 1, 2]) {
    const st = await cluster.node(i).client.status();
    out[i] = Object.fromEntries(st.peers.filter((p) => p.nodeId !== st.nodeId).map((p) => [p.nodeId, p.capacity]));
  }
  return out;
}

test('free space drained by another program across a GiB boundary starts no repair pass on any node', async (t) => {
  const cluster = await LocalCluster.create({ nodes: 3, logLevel: 'warn', nodeArgs: ARGS });
  t.after(() => cluster.destroy());
  await cluster.waitForMembers({ alive: 3 });
  const data = await seededBuffer('capacity-told', 64 << 10);
  await cluster.node(0).client.put(pieces(data), { name: 'c.bin', chunkSize: 8 << 10, replicas: 3 });
  // The start-up passes (and the one the put's membership churn may bring) are over.
  let before = await passes(cluster);
  await waitFor('repair passes to settle', 30_000, async () => {
    await sleep(1_500);
    const now = await passes(cluster);
    const same = now.every((p, i) => p === before[i]);
    before = now;
    return same && (await Promise.all([0, 1, 2].map(async (i) => !(await cluster.node(i).client.repair()).running))).every(Boolean);
  });

  const capacity = (await cluster.node(1).client.status()).store.capacity;
  const toldBefore = await toldByPeers(cluster);
  // The reservation that takes the capacity just past the next lower rounding boundary of its weight.
  const boundary = (Math.round(capacity / GIB) - 0.5) * GIB;
  const take = Math.ceil((capacity - boundary + MARGIN) / (1 << 20)) << 20;
  const free = await statfs(cluster.dir);
  if (take >= capacity * CAPACITY_RETELL_SHARE * 0.8 || take >= free.bavail * free.bsize / 2) {
    t.skip(`a filesystem of ${(capacity / GIB).toFixed(1)} GiB capacity is too small for ${(take / GIB).toFixed(2)} GiB to stay under a tenth of it`);
    return;
  }
  const hog = join(cluster.dir, 'other-program.bin');
  try {
    execFileSync('fallocate', ['-l', String(take), hog], { stdio: 'ignore' });
  } catch {
    t.skip('fallocate(1) cannot reserve space on this filesystem');
    return;
  }
  try {
    // Each node measures the lower capacity (so the weight it would have told changed) ...
    await waitFor('the nodes to measure the reserved space', 10_000, async () => {
      const caps = await Promise.all([0, 1, 2].map(async (i) => (await cluster.node(i).client.status()).store.capacity));
      return caps.every((c) => Math.round(c / GIB) !== Math.round(capacity / GIB));
    });
    await sleep(SETTLE_MS);
    // ... but tells the cluster what it told before, and no view changed.
    const after = await passes(cluster);
    assert.deepEqual(after, before, `repair passes per node before ${before.join('/')}, after ${after.join('/')}`);
    assert.deepEqual(await toldByPeers(cluster), toldBefore, 'every node sees the others with the capacity they told before');
  } finally {
    await unlink(hog).catch(() => undefined);
  }
});
