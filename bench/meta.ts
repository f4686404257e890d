/**
 * Object metadata on 3 local nodes: record writes, point reads and listed entries per second, with
 * 32 requests in flight through the HTTP API, each against a same-run baseline of the same work on
 * one node's table store in this process (LMDB, no network, no replication): the cost of
 * replication and of the API made visible.
 *   npm run bench -- meta [--records N] [--concurrency C] [--batch B] [--phase P [--repeat K]] [--cpu-prof DIR]
 * Writes are measured twice: one record per request, and B records per request (how an import or
 * the S3 face's multi-object operations write). The same number of API requests that do nothing
 * (`GET /api/v1/repair`, a small reply from memory) is timed too: no rate of one record per
 * request can pass it on this machine, whatever the table layer behind the API costs.
 * `--phase reads` or `--phase list` measures the point reads or the listing alone: the records are
 * first written B per request, then the phase runs K times (`--repeat`, default 5; each run's rate
 * is printed, a steadier figure on a shared machine than the full run's one pass).
 * `--cpu-prof DIR` profiles one phase alone (`--phase`: `writes`, the single-record writes, the
 * default, or `reads` or `list`): the run ends after it, each node writes its profile into DIR as
 * it exits, and this process (the HTTP client) its own profile of the phase.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Session } from 'node:inspector/promises';
import { LocalCluster } from '../src/cli/local-cluster.js';
import { makeEntry } from '../src/tables/entry.js';
import { EntryStore } from '../src/tables/entry-store.js';
import { encodeRecord } from '../src/tables/records.js';
import { flag, intArg as arg } from './cli-args.js';
import { pool, timed } from './bench-run.js';
import { ownCpuMicros, processCpuMs } from './cpu-time.js';
import { sampleObjectRecord as record } from '../test/helpers/object-record.js';

const key = (i: number) => `bench/${String(i).padStart(8, '0')}`;
const rate = (n: number, s: number) => Math.round(n / s);
const PHASES = ['writes', 'reads', 'list'];

/** A V8 profile of this process over `fn`, written to `file`. */
async function profiled<T>(file: string, fn: () => Promise<T>): Promise<T> {
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.start');
  try {
    return await fn();
  } finally {
    const { profile } = await session.post('Profiler.stop');
    await writeFile(file, JSON.stringify(profile));
    session.disconnect();
  }
}

export async function main(args: string[]): Promise<void> {
  const n = arg(args, '--records', 5000);
  const concurrency = arg(args, '--concurrency', 32);
  const batch = arg(args, '--batch', 100);
  const profDir = flag(args, '--cpu-prof');
  if (profDir !== undefined) await mkdir(profDir, { recursive: true });
  const phaseGiven = flag(args, '--phase') !== undefined;
  const phase = flag(args, '--phase') ?? 'writes';
  if (!PHASES.includes(phase)) throw new Error(`--phase must be one of ${PHASES.join(', ')}`);
  const repeat = arg(args, '--repeat', 5);
  const base = await mkdtemp(join(tmpdir(), 'tessera-bench-meta-'));
  process.stdout.write(`meta: ${n} records, ${concurrency} requests in flight, batched writes of ${batch}\n`);
  const records = Array.from({ length: n }, (_, i) => record(i));
  let cluster: LocalCluster | undefined;
  try {
    // Baseline: the same records merged into one table store, read back and scanned, in this process.
    const macKey = randomBytes(32);
    const store = await EntryStore.open(join(base, 'baseline'), randomBytes(32));
    const ts = (i: number) => ({ wall: 1_700_000_000_000 + i, logical: 0, node: 'bench' });
    const entry = (i: number) => makeEntry(macKey, { table: 'object', pk: 'bucket', sk: key(i) }, ts(i), encodeRecord(records[i]!));
    const bWrite = await timed(() => pool(n, concurrency, async (i) => void (await store.merge([entry(i)]))));
    const bRead = await timed(() => pool(n, concurrency, async (i) => void store.get({ table: 'object', pk: 'bucket', sk: key(i) })));
    const bList = await timed(async () => {
      let after: string | undefined;
      for (;;) {
        const page = store.scan('object', 'bucket', { limit: 1000, ...(after !== undefined ? { after } : {}) });
        if (!page.more) break;
        after = page.entries[page.entries.length - 1]!.sk;
      }
    });
    await store.close();

    cluster = await LocalCluster.create({
      nodes: 3,
      dir: join(base, 'cluster'),
      logLevel: 'warn',
      ...(profDir !== undefined ? { execArgv: ['--cpu-prof', `--cpu-prof-dir=${profDir}`] } : {}),
    });
    await cluster.waitForMembers({ alive: 3 });
    const clients = cluster.nodes.map((x) => x.client);
    const pids = cluster.nodes.map((x) => x.proc?.pid).filter((p): p is number => p !== undefined);
    // CPU of the nodes and of this process (the HTTP client) per item: what a phase costs the
    // machine, whatever else shares its cores.
    const cpuPer = async (items: number, phase: () => Promise<number>): Promise<{ secs: number; nodeMs: number; clientMs: number }> => {
      const n0 = pids.reduce((a, p) => a + processCpuMs(p), 0);
      const c0 = ownCpuMicros();
      const secs = await phase();
      return { secs, nodeMs: (pids.reduce((a, p) => a + processCpuMs(p), 0) - n0) / items, clientMs: (ownCpuMicros() - c0) / 1000 / items };
    };
    const line = (what: string, got: number, baseline: number) =>
      `  ${what.padEnd(34)} ${String(got).padStart(8)} /s   baseline ${String(baseline).padStart(8)} /s   ratio ${(got / baseline).toFixed(3)}`;
    const cpuLine = (what: string, c: { nodeMs: number; clientMs: number }) =>
      `  CPU per record written, ${what}: nodes ${c.nodeMs.toFixed(3)} ms, bench client ${c.clientMs.toFixed(3)} ms`;
    await clients[0]!.createBucket('bench');
    await clients[0]!.createBucket('bench-batched');
    const writeBatched = (bucket: string) =>
      timed(() =>
        pool(Math.ceil(n / batch), concurrency, async (j) => {
          const items = records.slice(j * batch, (j + 1) * batch).map((r, k) => ({ key: key(j * batch + k), record: r }));
          await clients[j % 3]!.putObjectRecords(bucket, items);
        }),
      );
    const readAll = () => timed(() => pool(n, concurrency, async (i) => void (await clients[i % 3]!.objectRecord('bench', key(i)))));
    let listed = 0;
    const listAll = () =>
      timed(async () => {
        let token: string | undefined;
        for (;;) {
          const page = await clients[1]!.listObjects('bench', { limit: 1000, ...(token ? { token } : {}) });
          listed += page.objects.length;
          if (page.token === null) break;
          token = page.token;
        }
      });
    if (phaseGiven && phase !== 'writes') {
      await writeBatched('bench');
      const runs = async () => {
        const secs: number[] = [];
        for (let k = 0; k < repeat; k++) secs.push(await (phase === 'reads' ? readAll() : listAll()));
        return secs;
      };
      let secs: number[] = [];
      const c = await cpuPer(n * repeat, async () => {
        secs = profDir !== undefined ? await profiled(join(profDir, `bench-client-${phase}.cpuprofile`), runs) : await runs();
        return secs.reduce((a, b) => a + b, 0);
      });
      if (listed !== 0 && listed !== n * repeat) throw new Error(`listing returned ${listed} records, expected ${n * repeat}`);
      const rates = secs.map((x) => rate(n, x)).sort((a, b) => a - b);
      process.stdout.write(`  ${phase}: ${rate(n * repeat, c.secs)} /s over ${repeat} runs (median ${rates[rates.length >> 1]}, runs ${rates.join(' ')}); CPU per item: nodes ${c.nodeMs.toFixed(4)} ms, bench client ${c.clientMs.toFixed(4)} ms\n`);
      if (profDir !== undefined) process.stdout.write(`  profiles of the ${phase} phase in ${profDir} (node pids ${pids.join(' ')})\n`);
      return;
    }
    const writeSingles = () => timed(() => pool(n, concurrency, async (i) => void (await clients[i % 3]!.putObjectRecords('bench', [{ key: key(i), record: records[i]! }]))));
    const w1 = await cpuPer(n, () => (profDir !== undefined ? profiled(join(profDir, 'bench-client-writes.cpuprofile'), writeSingles) : writeSingles()));
    const write1 = w1.secs;
    // How the single-record writes were coalesced on their way to the holders.
    const batched = (await Promise.all(clients.map((c) => c.status()))).map((s) => s.metadata?.writeBatches ?? { batches: 0, entries: 0, largest: 0 });
    const sent = batched.reduce((a, b) => ({ batches: a.batches + b.batches, entries: a.entries + b.entries, largest: Math.max(a.largest, b.largest) }));
    const committed = (await Promise.all(clients.map((c) => c.status()))).map((s) => s.metadata?.storeCommits ?? { commits: 0, jobs: 0, largest: 0 });
    const commits = committed.reduce((a, b) => ({ commits: a.commits + b.commits, jobs: a.jobs + b.jobs, largest: Math.max(a.largest, b.largest) }));
    const coalescing = [
      `  single-record writes went to the holders in ${sent.batches} batches (${(sent.entries / Math.max(1, sent.batches)).toFixed(1)} entries on average, at most ${sent.largest})`,
      `  the holders committed those batches (and the bucket records) in ${commits.commits} transactions (${(commits.jobs / Math.max(1, commits.commits)).toFixed(1)} batches on average, at most ${commits.largest})`,
    ];
    if (profDir !== undefined) {
      process.stdout.write([line('writes, 1 record per request', rate(n, write1), rate(n, bWrite)), cpuLine('1 record per request', w1), ...coalescing].join('\n') + '\n');
      process.stdout.write(`  profiles of the single-record writes in ${profDir} (node pids ${pids.join(' ')})\n`);
      return;
    }
    // The floor under any one-request-per-record figure: the same number of API requests that do
    // nothing (a small JSON reply from memory), same client, same concurrency, same nodes.
    const fl = await cpuPer(n, () => timed(() => pool(n, concurrency, async (i) => void (await clients[i % 3]!.repair()))));
    const wB = await cpuPer(n, () => writeBatched('bench-batched'));
    const writeB = wB.secs;
    const rd = await cpuPer(n, readAll);
    const read = rd.secs;
    const ls = await cpuPer(n, listAll);
    const list = ls.secs;
    if (listed !== n) throw new Error(`listing returned ${listed} records, expected ${n}`);
    process.stdout.write(
      [
        line('writes, 1 record per request', rate(n, write1), rate(n, bWrite)),
        line(`writes, ${batch} records per request`, rate(n, writeB), rate(n, bWrite)),
        line('point reads', rate(n, read), rate(n, bRead)),
        `  ${'API requests that do nothing'.padEnd(34)} ${String(rate(n, fl.secs)).padStart(8)} /s   (the ceiling of any one-request-per-record rate here)`,
        line('listed entries (pages of 1000)', rate(n, list), rate(n, bList)),
        cpuLine('1 record per request', w1),
        cpuLine(`${batch} records per request`, wB),
        `  CPU per point read: nodes ${rd.nodeMs.toFixed(3)} ms, bench client ${rd.clientMs.toFixed(3)} ms`,
        `  CPU per request that does nothing: nodes ${fl.nodeMs.toFixed(3)} ms, bench client ${fl.clientMs.toFixed(3)} ms`,
        `  CPU per listed entry: nodes ${ls.nodeMs.toFixed(4)} ms, bench client ${ls.clientMs.toFixed(4)} ms`,
        ...coalescing,
      ].join('\n') + '\n',
    );
  } finally {
    await cluster?.destroy();
    await rm(base, { recursive: true, force: true });
  }
}
