/**
 * Metadata tables across real node processes: 5 full nodes and a storage-only one; paged
 * listings against a sorted model, no key on any disk, a holder killed and restarted, a sixth
 * full node joining, and concurrent writers of one key.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LocalCluster, waitFor } from '../../src/cli/local-cluster.js';
import { isTesseraError } from '../../src/errors.js';
import { Placer } from '../../src/cluster/placement.js';
import { partitionOf, partitionPlacementId } from '../../src/tables/keys.js';
import { BUCKET_PARTITION, BUCKET_TABLE, OBJECT_TABLE } from '../../src/tables/records.js';
import type { TesseraClient } from '../../src/client/index.js';
import { filesContaining } from './files-support.js';
import { sampleObjectRecord as record } from '../helpers/object-record.js';

/** Writes from before a holder's kill that it may still lack and catch up with the missed ones. */
const MAX_EARLIER_WRITES_CAUGHT_UP = 10;
const TIMING = ['--probe-interval', '200', '--suspicion-timeout', '1500', '--anti-entropy-ms', '1000'];
const OBJECTS = 10_000;
const BATCH = 200;

const keyOf = (i: number) => `dir-${i % 7}/obj-MARKER-${String(i).padStart(6, '0')}${i % 11 === 0 ? '-é' : ''}`;
const byteOrder = (a: string, b: string) => Buffer.compare(Buffer.from(a), Buffer.from(b));

async function listAll(c: TesseraClient, bucket: string, opts: { prefix?: string; limit: number }): Promise<string[]> {
  const out: string[] = [];
  let token: string | undefined;
  for (let page = 0; page < 100_000; page++) {
    const r = await c.listObjects(bucket, { ...opts, ...(token ? { token } : {}) });
    assert.ok(r.objects.length <= opts.limit);
    out.push(...r.objects.map((o) => o.key));
    if (r.token === null) return out;
    token = r.token;
  }
  throw new Error('listing did not end');
}

test('tables on 5 full + 1 storage-only node: listings, secrecy, a holder down and back, a sixth node, concurrent writers', { timeout: 900_000 }, async (t) => {
  const cluster = await LocalCluster.create({ nodes: 5, nodeArgs: TIMING, logLevel: 'warn' });
  t.after(() => cluster.destroy());
  const storageOnly = await cluster.addNode({ keys: { clusterId: cluster.keys.clusterId, clusterSecret: cluster.keys.clusterSecret } });
  await cluster.waitForMembers({ alive: 6 });
  const c0 = cluster.node(0).client;
  const c3 = cluster.node(3).client;

  const bucket = await c0.createBucket('photos-marker');
  await assert.rejects(cluster.node(2).client.createBucket('photos-marker'), (e) => isTesseraError(e, 'CONFLICT'));
  await assert.rejects(c0.createBucket('Bad_Name'), (e) => isTesseraError(e, 'BAD_INPUT'));
  const model: string[] = [];
  for (let i = 0; i < OBJECTS; i += BATCH) {
    const items = Array.from({ length: Math.min(BATCH, OBJECTS - i) }, (_, j) => ({ key: keyOf(i + j), record: record(i + j) }));
    await cluster.node((i / BATCH) % 5).client.putObjectRecords('photos-marker', items);
    model.push(...items.map((x) => x.key));
  }
  model.sort(byteOrder);

  await t.test('paged listings equal the sorted model, with and without a prefix', async () => {
    assert.deepEqual(await listAll(c3, 'photos-marker', { limit: 1000 }), model);
    assert.deepEqual(await listAll(cluster.node(4).client, 'photos-marker', { prefix: 'dir-3/', limit: 333 }), model.filter((k) => k.startsWith('dir-3/')));
    const after = model[4321]!;
    const r = await c0.listObjects('photos-marker', { after, limit: 5 });
    assert.deepEqual(r.objects.map((o) => o.key), model.slice(4322, 4327));
  });

  await t.test('the storage-only node serves no metadata and no data directory holds a key', async () => {
    await assert.rejects(storageOnly.client.listObjects('photos-marker'), (e) => isTesseraError(e, 'AUTH'));
    assert.equal((await storageOnly.client.status()).metadata, undefined);
    const hits = await filesContaining(cluster.dir, [Buffer.from('obj-MARKER-'), Buffer.from('photos-marker')]);
    assert.deepEqual(hits, []);
  });

  const full = cluster.nodes.filter((n) => n !== storageOnly);
  const holdersOf = (nodes: typeof full, pk: string) =>
    new Placer(nodes.map((n) => ({ nodeId: n.nodeId, weight: 1 }))).place(partitionPlacementId(partitionOf(OBJECT_TABLE, pk)), 3);

  await t.test('with a holder down, writes and reads go on; restarted, it applies exactly what it missed', async () => {
    const holders = holdersOf(full, bucket.id);
    const victim = full.find((n) => holders.includes(n.nodeId) && n.index !== 0)!;
    await cluster.kill(victim.index);
    await cluster.waitForMembers({ alive: 5, dead: 1 }, 30_000, [0]);
    const missed = 300;
    for (let i = 0; i < missed; i += 100) {
      await c0.putObjectRecords('photos-marker', Array.from({ length: 100 }, (_, j) => ({ key: `late/${String(i + j).padStart(4, '0')}`, record: record(i + j) })));
    }
    assert.equal((await c0.objectRecord('photos-marker', 'late/0042')).size, 42);
    model.push(...Array.from({ length: missed }, (_, i) => `late/${String(i).padStart(4, '0')}`));
    model.sort(byteOrder);
    await cluster.start(victim.index);
    await cluster.waitForMembers({ alive: 6 });
    let last: unknown;
    const st = await waitFor('the restarted holder to catch up', 120_000, async () => {
      const s = await victim.client.status();
      last = s.metadata;
      return s.metadata && s.metadata.counters.entriesApplied >= missed ? s.metadata : undefined;
    }).catch((err: unknown) => {
      t.diagnostic(`restarted holder's table status: ${JSON.stringify(last)}`);
      throw err;
    });
    // Give any duplicate transfer time to land: it must not be applied twice.
    await new Promise((r) => setTimeout(r, 3000));
    const after = (await victim.client.status()).metadata!;
    // What it missed: the writes made while it was down, plus any earlier write whose third copy had
    // not reached it before the kill (a write returns once 2 of 3 copies landed). A merge counts only
    // entries newer than the node's own, so nothing applied twice can hide in the slack.
    const applied = after.counters.entriesApplied;
    assert.ok(applied >= missed && applied <= missed + MAX_EARLIER_WRITES_CAUGHT_UP, `applied ${applied}, pulled ${st.counters.entriesPulled}, missed ${missed}`);
    t.diagnostic(`restarted holder: applied ${applied}, pulled ${after.counters.entriesPulled}, missed ${missed}`);
  });

  await t.test('a sixth full node takes over about R/N of the partitions in use; old holders drop theirs; nothing is lost', async () => {
    const pks: string[] = [];
    for (let b = 0; b < 40; b++) {
      const made = await c0.createBucket(`spread-${String(b).padStart(2, '0')}`);
      pks.push(made.id);
      await c0.putObjectRecords(made.name, [{ key: 'only', record: record(b) }]);
    }
    const parts = new Set(pks.map((pk) => partitionOf(OBJECT_TABLE, pk)));
    const joined = await cluster.addNode();
    await cluster.waitForMembers({ alive: 7 });
    const fullAfter = [...full, joined];
    const placerAfter = new Placer(fullAfter.map((n) => ({ nodeId: n.nodeId, weight: 1 })));
    const moved = [...new Set([...parts, partitionOf(OBJECT_TABLE, bucket.id), partitionOf(BUCKET_TABLE, BUCKET_PARTITION)])].filter((p) => placerAfter.place(partitionPlacementId(p), 3).includes(joined.nodeId)).length;
    // Each partition keeps 3 of 6 holders, so the new node should hold about half of them (1/6 of all copies).
    assert.ok(moved >= parts.size * 0.25 && moved <= parts.size * 0.75, `new node is a holder of ${moved} of ${parts.size}`);
    const used = new Set([...parts, partitionOf(OBJECT_TABLE, bucket.id), partitionOf(BUCKET_TABLE, BUCKET_PARTITION)]);
    // Exactly the partitions in use it is a holder of: the new node has received its share, old holders dropped theirs.
    await waitFor('every full node to hold exactly the partitions in use it is a holder of', 180_000, async () => {
      for (const n of fullAfter) {
        const s = (await n.client.status()).metadata;
        const should = [...used].filter((p) => placerAfter.place(partitionPlacementId(p), 3).includes(n.nodeId)).length;
        if (!s || s.partitionsHeld !== should) return false;
      }
      return true;
    });
    for (const b of pks.keys()) assert.equal((await joined.client.objectRecord(`spread-${String(b).padStart(2, '0')}`, 'only')).size, b);
    assert.deepEqual(await listAll(joined.client, 'photos-marker', { limit: 1000 }), model);
    const dropped = (await Promise.all(fullAfter.map(async (n) => (await n.client.status()).metadata!.counters.partitionsDropped))).reduce((a, b) => a + b, 0);
    t.diagnostic(`partitions in use ${used.size}, moved to the new node ${moved}, dropped by old holders ${dropped}`);
    // Every move displaces one old holder, which drops its copy (the earlier kill test adds its own handoffs).
    assert.ok(dropped >= moved, `dropped ${dropped} < moved ${moved}`);
  });

  await t.test('concurrent writers of one key on two nodes converge to one winner on every holder', async () => {
    await Promise.all([
      c0.putObjectRecords('photos-marker', [{ key: 'contended', record: record(1) }]),
      c3.putObjectRecords('photos-marker', [{ key: 'contended', record: record(2) }]),
    ]);
    const fullNow = cluster.nodes.filter((n) => n !== storageOnly);
    await waitFor('every full node to read the same winner', 60_000, async () => {
      const seen = await Promise.all(fullNow.map(async (n) => (await n.client.objectRecord('photos-marker', 'contended')).fileId));
      return new Set(seen).size === 1;
    });
  });
});
