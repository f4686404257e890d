/**
 * Erasure coding figures, all from one run:
 * - Reed–Solomon encode and decode (two data shards lost) of 1 MiB chunks, 4+2 and 10+4, in MB/s;
 * - put and get of one file through 6 loopback disk nodes with --ec 4+2 against --replicas 3
 *   (ratios: replicas time ÷ EC time, so > 1 means EC is faster);
 * - repair throughput: one node killed, MB/s of copies and shards the survivors restore.
 *
 *   npm run bench -- ec [--size 1G] [--chunk-size 1M] [--json]
 */
import { createHash, randomBytes } from 'node:crypto';
import { randomStream } from '../src/cli/random-stream.js';
import { formatBytes, parseSize } from '../src/cli/format.js';
import { LocalCluster, waitFor } from '../src/cli/local-cluster.js';
import { decodeShards, encodeShards } from '../src/content/erasure.js';
import { flag } from './cli-args.js';

const MIB = 1 << 20;
/** Each codec figure runs this long, or this many chunks, whichever comes first. */
const CODEC_MS = 1500;
const CODEC_MAX_CHUNKS = 20_000;
const REPAIR_TIMEOUT_MS = 30 * 60_000;

async function codec(k: number, m: number): Promise<{ encodeMBps: number; decodeMBps: number }> {
  const chunk = randomBytes(MIB);
  let n = 0;
  let t0 = performance.now();
  let enc = await encodeShards(chunk, { k, m });
  while (performance.now() - t0 < CODEC_MS && n < CODEC_MAX_CHUNKS) {
    enc = await encodeShards(chunk, { k, m });
    n++;
  }
  const encodeMBps = (n * MIB) / 1e6 / ((performance.now() - t0) / 1000);
  // Two data shards lost: decoding must recompute them from parity.
  const shards = enc.shards.map((s, i) => (i === 0 || i === 1 ? null : Buffer.from(s)));
  n = 0;
  t0 = performance.now();
  while (performance.now() - t0 < CODEC_MS && n < CODEC_MAX_CHUNKS) {
    const out = await decodeShards(shards, { k, m }, MIB);
    if (n === 0 && !out.equals(chunk)) throw new Error(`${k}+${m} decode returned other bytes`);
    n++;
  }
  const decodeMBps = (n * MIB) / 1e6 / ((performance.now() - t0) / 1000);
  return { encodeMBps, decodeMBps };
}

async function roundTrip(cluster: LocalCluster, size: number, chunkSize: number, policy: { ec?: string; replicas?: number }, name: string) {
  const client = cluster.node(0).client;
  const hashIn = createHash('sha256');
  async function* source() {
    for await (const p of randomStream(size)) {
      hashIn.update(p);
      yield p;
    }
  }
  let t0 = performance.now();
  await client.put(source(), { name, chunkSize, ...policy });
  const putS = (performance.now() - t0) / 1000;
  t0 = performance.now();
  const got = await cluster.node(1).client.get(name);
  const hashOut = createHash('sha256');
  for await (const p of got.stream) hashOut.update(p as Buffer);
  const getS = (performance.now() - t0) / 1000;
  if (hashOut.digest('hex') !== hashIn.digest('hex')) throw new Error(`${name} read back different bytes`);
  return { putMBps: size / 1e6 / putS, getMBps: size / 1e6 / getS, putS, getS };
}

/** One line per node of what its repair loop is doing, printed while a bench waits on it. */
async function healProgress(cluster: LocalCluster, indexes: number[]): Promise<string> {
  const reps = await Promise.all(indexes.map((i) => cluster.node(i).client.repair().catch(() => undefined)));
  return reps
    .map((r, j) => (r ? `n${indexes[j]}: passes ${r.passes}${r.running ? ` running (checked ${r.current?.checked ?? 0})` : ''}, last pass ${r.lastPassMs ?? '-'} ms, under ${formatBytes(r.underReplicatedBytes)}, restored ${formatBytes(r.totals.bytesRestored)}, failures ${r.totals.failures}` : `n${indexes[j]}: no answer`))
    .join('; ');
}

const PROGRESS_EVERY_MS = 30_000;

/** What the nodes' repair loops have done so far: bytes restored, and a signature of every copy made or dropped. */
async function activity(cluster: LocalCluster, indexes: number[]) {
  const reps = await Promise.all(indexes.map((i) => cluster.node(i).client.repair()));
  return {
    reps,
    restored: reps.reduce((a, r) => a + r.totals.bytesRestored, 0),
    sig: reps.map((r) => `${r.totals.copiesMade}/${r.totals.copiesDropped}`).join(','),
  };
}

export async function main(args: string[]): Promise<void> {
  const size = parseSize(flag(args, '--size') ?? '1G', '--size');
  const chunkSize = parseSize(flag(args, '--chunk-size') ?? '1M', '--chunk-size');
  const json = args.includes('--json');
  const out: Record<string, unknown> = { size, chunkSize };
  let lastProgress = performance.now();
  const progress = async (indexes: number[]) => {
    if (json || performance.now() - lastProgress < PROGRESS_EVERY_MS) return;
    lastProgress = performance.now();
    say(`  … ${await healProgress(cluster, indexes)}`);
  };
  const say = (s: string) => {
    if (!json) process.stdout.write(s + '\n');
  };
  /**
   * Waits until the nodes' healing is quiet: no copy made or dropped since every node began its
   * latest full pass, and none reports anything missing. Passes may run back to back on a loaded
   * cluster, so "every node idle at the same moment" is not a condition that must ever hold.
   */
  // needCopies: wait for the first copy before judging quiet (the change that starts the work may take a moment to be seen).
  const quiet = async (what: string, indexes: number[], needCopies: boolean) => {
    let sig = '';
    let first = 0;
    let lastChangeWall = Date.now();
    let restored = 0;
    let lastRestore = 0;
    await waitFor(what, REPAIR_TIMEOUT_MS, async () => {
      await progress(indexes);
      const a = await activity(cluster, indexes);
      if (a.sig !== sig) {
        if (sig !== '' && a.restored > restored) {
          if (first === 0) first = performance.now();
          lastRestore = performance.now();
        }
        sig = a.sig;
        restored = a.restored;
        lastChangeWall = Date.now();
      }
      if (needCopies && first === 0) return false;
      return a.reps.every((r) => r.underReplicatedBytes === 0 && r.lastPassAt !== null && r.lastPassMs !== null && Date.parse(r.lastPassAt) - r.lastPassMs > lastChangeWall);
    });
    return { first, lastRestore, restored };
  };

  for (const [k, m] of [[4, 2], [10, 4]] as const) {
    const r = await codec(k, m);
    out[`rs${k}+${m}`] = r;
    say(`Reed–Solomon ${k}+${m}, 1 MiB chunks: encode ${r.encodeMBps.toFixed(0)} MB/s, decode (2 data shards lost) ${r.decodeMBps.toFixed(0)} MB/s`);
  }

  const cluster = await LocalCluster.create({
    nodes: 6,
    logLevel: 'warn',
    // A quota below the free space fixes each node's capacity, hence its placement weight.
    nodeArgs: ['--quota', '6G', '--probe-interval', '300', '--suspicion-timeout', '1500', '--repair-grace-ms', '1000', '--repair-interval-ms', '5000', '--repair-rate', '4G'],
  });
  try {
    await cluster.waitForMembers({ alive: 6 });
    const rep = await roundTrip(cluster, size, chunkSize, { replicas: 3 }, 'bench-r3.bin');
    const ec = await roundTrip(cluster, size, chunkSize, { ec: '4+2' }, 'bench-ec.bin');
    out.replicas3 = rep;
    out.ec42 = ec;
    say(`${formatBytes(size)} on 6 disk nodes: replicas 3 put ${rep.putMBps.toFixed(0)} MB/s, get ${rep.getMBps.toFixed(0)} MB/s`);
    say(`${formatBytes(size)} on 6 disk nodes: ec 4+2     put ${ec.putMBps.toFixed(0)} MB/s, get ${ec.getMBps.toFixed(0)} MB/s`);
    say(`ratios ec ÷ replicas (speed): put ${(rep.putS / ec.putS).toFixed(2)}×, get ${(rep.getS / ec.getS).toFixed(2)}×; stored bytes 1.5× vs 3×`);

    // Repair: a spare node joins (so 4+2 stripes still have 6 distinct nodes after a loss), the
    // rebalance it causes settles, then the node holding the most is killed.
    await cluster.addNode({ args: [] });
    await quiet('the join to settle', cluster.nodes.map((n) => n.index), true);
    const held = await Promise.all(cluster.nodes.map(async (n) => ({ i: n.index, bytes: (await n.client.status()).store.used })));
    const victim = held.sort((a, b) => b.bytes - a.bytes)[0]!;
    say(`killing node ${victim.i}, which holds ${formatBytes(victim.bytes)}`);
    const live = cluster.nodes.map((n) => n.index).filter((i) => i !== victim.i);
    const base = (await activity(cluster, live)).restored;
    await cluster.kill(victim.i, 'SIGKILL');
    const { first, lastRestore, restored: lastBytes } = await quiet('repair to finish', live, true);
    const bytes = lastBytes - base;
    const secs = (lastRestore - first) / 1000 || 0.001;
    out.repair = { victimBytes: victim.bytes, restoredBytes: bytes, seconds: secs, MBps: bytes / 1e6 / secs };
    say(`repair: ${formatBytes(bytes)} restored in ${secs.toFixed(1)} s = ${(bytes / 1e6 / secs).toFixed(0)} MB/s (from the first copy to the last)`);
  } finally {
    await cluster.destroy();
  }
  if (json) process.stdout.write(JSON.stringify(out) + '\n');
}
