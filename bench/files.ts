/**
 * End-to-end file throughput: put and get of one large file through a 3-node loopback cluster of
 * disk nodes (R=3, W=2, durable), against baselines measured in the same run by one process
 * with no network (bench/files-baseline.ts). Ratios compare times: baseline time ÷ cluster time.
 *
 *   npm run bench -- files [--size 1G] [--chunk-size 1M] [--rounds 3] [--dir DIR] [--no-verify] [--no-get]
 *                          [--cpu-prof DIR] [--threads] [--node-stats] [--unnamed] [--json]
 *
 * --no-get skips the gets (and their baselines); --cpu-prof writes a V8 CPU profile of every node
 * and of the client into DIR. Each put and get also reports the CPU milliseconds per MiB each
 * process spent on it (from /proc), which is what a CPU-bound cluster on two cores is limited by;
 * --threads splits that per thread (event loop, libuv pool, V8 helpers, worker threads) into user
 * and system time. --node-stats prints what each node's status and metrics say at the start, after
 * the puts and after the gets: chunks held, capacity, repair passes and the copies they made, chunks
 * served and fetched (the reader's fetched-but-not-served-elsewhere chunks were local reads), hedged
 * fetches, peer bytes sent, GC seconds and the size of V8's new space. --unnamed adds to each round
 * a put of another file with no name (no object record, so no MD5 ETag), bracketed by baselines
 * like the named one and alternating which goes first, so the name's cost shows in the same run;
 * only the named files are read back.
 *
 * Goals: put ≥ 0.8× its baseline, get ≥ 0.85× its baseline, as the median over rounds of each
 * run's ratio to the baselines timed right before and after it. Peak memory is each process's VmHWM.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomStream } from '../src/cli/random-stream.js';
import { formatBytes, parseSize } from '../src/cli/format.js';
import { LocalCluster } from '../src/cli/local-cluster.js';
import { nodeRuntimeArgs, withMallocEnv } from '../src/cli/runtime-tuning.js';
import { checkChunkSize } from '../src/content/chunker.js';
import { bracketingBaselines, mean, median } from './bench-stats.js';
import { ownCpuMicros, processCpuMs, threadCpuMs } from './cpu-time.js';
import { flag } from './cli-args.js';

const PUT_GOAL = 0.8;
const GET_GOAL = 0.85;
/** Rounds of put and get, each with a file of its own; the verdict is the median ratio. */
const DEFAULT_ROUNDS = 3;
const MAX_ROUNDS = 20;
const BASELINE_SCRIPT = fileURLToPath(new URL('./files-baseline.js', import.meta.url));

/** Peak resident set of a process in bytes, from the kernel's high-water mark. */
async function peakRss(pid: number | 'self'): Promise<number | undefined> {
  try {
    const m = /^VmHWM:\s+(\d+)\s+kB$/m.exec(await readFile(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

async function makeSource(path: string, size: number): Promise<string> {
  const hash = createHash('sha256');
  const fh = await open(path, 'w');
  try {
    for await (const piece of randomStream(size)) {
      hash.update(piece);
      await fh.write(piece);
    }
    await fh.sync();
  } finally {
    await fh.close();
  }
  return hash.digest('hex');
}

/** One half of the baseline in its own process, with the nodes' runtime tuning; returns its time in ms. */
async function runBaseline(args: string[]): Promise<number> {
  const child = spawn(process.execPath, [...nodeRuntimeArgs(), BASELINE_SCRIPT, ...args], { stdio: ['ignore', 'pipe', 'inherit'], env: withMallocEnv() });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (s: string) => (out += s));
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  if (code !== 0) throw new Error(`baseline ${args[0]} exited with ${code}`);
  return (JSON.parse(out) as { ms: number }).ms;
}

/** Per-thread CPU spent between two readings, per MiB moved. */
function perMiB(after: Map<string, { user: number; system: number }>, before: Map<string, { user: number; system: number }>, bytes: number): Map<string, { user: number; system: number }> {
  const mib = bytes / 2 ** 20;
  const out = new Map<string, { user: number; system: number }>();
  for (const [name, t] of after) {
    const b = before.get(name) ?? { user: 0, system: 0 };
    out.set(name, { user: (t.user - b.user) / mib, system: (t.system - b.system) / mib });
  }
  return out;
}

/** What each node did, as its status and metrics tell: where the chunks are, repair passes, reads served and fetched. */
interface NodeStats {
  chunks: number;
  capacityGiB: number;
  repairPasses: number;
  copiesMade: number;
  served: number;
  fetched: number;
  hedged: number;
  peerBytesOut: number;
  /** Seconds the node spent in garbage collection so far, and the size of V8's new space now (MiB). */
  gcSeconds: number;
  newSpaceMiB: number;
}

/** A counter of a Prometheus text exposition, summed over the series whose labels include `labels`. */
function metric(text: string, name: string, labels: string[] = []): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name + '{') && !line.startsWith(name + ' ')) continue;
    if (labels.every((l) => line.includes(l))) sum += Number(line.slice(line.lastIndexOf(' ') + 1)) || 0;
  }
  return sum;
}

async function readNodeStats(cluster: LocalCluster): Promise<NodeStats[]> {
  return Promise.all(
    [0, 1, 2].map(async (i) => {
      const client = cluster.node(i).client;
      const status = await client.status();
      let text = '';
      for await (const piece of await client.raw('/metrics')) text += String(piece);
      return {
        chunks: status.store.count,
        capacityGiB: status.store.capacity / 2 ** 30,
        repairPasses: status.repair?.passes ?? 0,
        copiesMade: status.repair?.totals.copiesMade ?? 0,
        served: metric(text, 'tessera_chunk_ops_total', ['op="serve"', 'result="ok"']),
        fetched: metric(text, 'tessera_chunk_ops_total', ['op="fetch"', 'result="ok"']),
        hedged: metric(text, 'tessera_chunk_ops_total', ['op="fetch"', 'result="hedged"']),
        gcSeconds: metric(text, 'nodejs_gc_duration_seconds_sum'),
        newSpaceMiB: metric(text, 'nodejs_heap_space_size_total_bytes', ['space="new"']) / 2 ** 20,
        peerBytesOut: metric(text, 'tessera_peer_bytes_total', ['direction="out"']) + metric(text, 'tessera_peer_bulk_bytes_total', ['direction="out"']),
      };
    }),
  );
}

const mbps = (bytes: number, ms: number) => bytes / 1e6 / (ms / 1000);

/** The ratio of each cluster run's speed to that of the baselines timed right before and right after it. */
const bracketedRatios = (baseMs: number[], runMs: number[]) => bracketingBaselines(baseMs, runMs.length).map((b, i) => b / (runMs[i] as number));

export async function main(args: string[]): Promise<void> {
  const size = parseSize(flag(args, '--size') ?? '1G', '--size');
  const chunkBytes = checkChunkSize(parseSize(flag(args, '--chunk-size') ?? '1M', '--chunk-size'));
  const rounds = Number(flag(args, '--rounds') ?? DEFAULT_ROUNDS);
  if (!Number.isInteger(rounds) || rounds < 1 || rounds > MAX_ROUNDS) throw new Error(`--rounds must be 1..${MAX_ROUNDS}`);
  const withGet = !args.includes('--no-get');
  const verify = withGet && !args.includes('--no-verify');
  const profDir = flag(args, '--cpu-prof');
  const json = args.includes('--json');
  const nodeStats = args.includes('--node-stats');
  const say = (s: string) => {
    if (!json) process.stdout.write(s + '\n');
  };
  const base = await mkdtemp(join(flag(args, '--dir') ?? tmpdir(), 'tessera-bench-files-'));
  let cluster: LocalCluster | undefined;
  let clientProfile: import('node:inspector/promises').Session | undefined;
  try {
    say(`files: ${rounds} × ${formatBytes(size)} file, ${formatBytes(chunkBytes)} chunks, 3 disk nodes on loopback, R=3 W=2, in ${base}`);
    const baseDir = join(base, 'baseline');
    const basePut = (source: string) => runBaseline(['put', source, baseDir, String(chunkBytes)]);
    const baseGet = () => runBaseline(['get', baseDir, String(chunkBytes)]);

    cluster = await LocalCluster.create({
      nodes: 3,
      dir: join(base, 'cluster'),
      logLevel: 'warn',
      ...(profDir !== undefined ? { execArgv: ['--cpu-prof', '--cpu-prof-dir', profDir] } : {}),
    });
    if (profDir !== undefined) {
      await mkdir(profDir, { recursive: true });
      // The client's own profile: started here, written when the benchmark ends.
      const { Session } = await import('node:inspector/promises');
      clientProfile = new Session();
      clientProfile.connect();
      await clientProfile.post('Profiler.enable');
      await clientProfile.post('Profiler.start');
    }
    await cluster.waitForMembers({ alive: 3 });
    const statsAtStart = nodeStats ? await readNodeStats(cluster) : undefined;
    const writer = cluster.node(0);
    const reader = cluster.node(1);

    // Each round puts a file of fresh random bytes (the same bytes again would be deduplicated),
    // and every cluster run is bracketed by baseline runs: on a shared machine the load drifts
    // over seconds, so a ratio is only fair against the baseline timed right beside it, and the
    // median over rounds keeps one noisy moment from deciding the verdict.
    const files: { id: string; sha: string }[] = [];
    const putBase: number[] = [];
    const putMs: number[] = [];
    const pids = [0, 1, 2].map((i) => cluster!.node(i).proc?.pid ?? 0);
    const cpuNow = () => [...pids.map((pid) => processCpuMs(pid)), ownCpuMicros() / 1000];
    const putCpu: number[][] = [];
    const byThread = args.includes('--threads');
    const threadsNow = () => [...pids, process.pid].map((pid) => threadCpuMs(pid));
    const putThreads: Map<string, { user: number; system: number }>[][] = [];
    const unnamed = args.includes('--unnamed');
    /** Whether each put, in the order they ran, had a name. */
    const putNamed: boolean[] = [];
    const order = (i: number) => (!unnamed ? [true] : i % 2 === 0 ? [true, false] : [false, true]);
    for (let i = 0; i < rounds; i++) for (const named of order(i)) {
      const source = join(base, 'source.bin');
      const sha = await makeSource(source, size);
      if (putBase.length === 0) putBase.push(await basePut(source));
      const c0 = cpuNow();
      const th0 = byThread ? threadsNow() : [];
      const t0 = performance.now();
      const put = await writer.client.put(createReadStream(source, { highWaterMark: chunkBytes }), {
        ...(named ? { name: `bench-${i}.bin` } : {}),
        replicas: 3,
        quorum: 2,
        chunkSize: chunkBytes,
      });
      putNamed.push(named);
      putMs.push(performance.now() - t0);
      putCpu.push(cpuNow().map((c, k) => (c - (c0[k] as number)) / (size / 2 ** 20)));
      if (byThread) putThreads.push(threadsNow().map((m, k) => perMiB(m, th0[k]!, size)));
      if (put.size !== size) throw new Error(`put stored ${put.size} bytes of ${size}`);
      putBase.push(await basePut(source));
      await rm(source, { force: true });
      if (named) files.push({ id: put.fileId, sha });
    }

    const statsAfterPuts = nodeStats ? await readNodeStats(cluster) : undefined;
    const getBase: number[] = withGet ? [await baseGet()] : [];
    const getMs: number[] = [];
    const getCpu: number[][] = [];
    const getThreads: Map<string, { user: number; system: number }>[][] = [];
    for (const file of withGet ? files : []) {
      const c0 = cpuNow();
      const th0 = byThread ? threadsNow() : [];
      const t0 = performance.now();
      const res = await reader.client.get(file.id);
      let got = 0;
      for await (const piece of res.stream as AsyncIterable<Buffer>) got += piece.length;
      getMs.push(performance.now() - t0);
      getCpu.push(cpuNow().map((c, k) => (c - (c0[k] as number)) / (size / 2 ** 20)));
      if (byThread) getThreads.push(threadsNow().map((m, k) => perMiB(m, th0[k]!, size)));
      if (got !== size) throw new Error(`get returned ${got} bytes of ${size}`);
      getBase.push(await baseGet());
    }
    const statsAfterGets = nodeStats ? await readNodeStats(cluster) : undefined;
    await rm(baseDir, { recursive: true, force: true });

    // Checked in separate, untimed reads so hashing in this process does not tax the timed ones.
    let verified: boolean | undefined;
    if (verify) {
      for (const [i, file] of files.entries()) {
        const again = await reader.client.get(file.id);
        const h = createHash('sha256');
        for await (const piece of again.stream as AsyncIterable<Buffer>) h.update(piece);
        if (h.digest('hex') !== file.sha) throw new Error(`file ${i} read back differs from its source (SHA-256 mismatch)`);
      }
      verified = true;
    }

    const rss = {
      node0: await peakRss(cluster.node(0).proc?.pid ?? 0),
      node1: await peakRss(cluster.node(1).proc?.pid ?? 0),
      node2: await peakRss(cluster.node(2).proc?.pid ?? 0),
      client: await peakRss('self'),
    };
    const side = (baseMs: number[], runMs: number[], goal: number) => {
      const ratios = bracketedRatios(baseMs, runMs);
      return {
        mbps: runMs.map((ms) => mbps(size, ms)),
        baselineMbps: baseMs.map((ms) => mbps(size, ms)),
        ratios,
        ratio: median(ratios),
        goal,
      };
    };
    // Each put is judged against its own bracketing baselines; the named and unnamed ones are then told apart.
    const putRatios = bracketedRatios(putBase, putMs);
    const pick = <T>(xs: T[], named: boolean) => xs.filter((_, k) => putNamed[k] === named);
    const putSide = (named: boolean) => {
      const ratios = pick(putRatios, named);
      return { mbps: pick(putMs, named).map((ms) => mbps(size, ms)), baselineMbps: putBase.map((ms) => mbps(size, ms)), ratios, ratio: median(ratios), goal: PUT_GOAL, cpuMsPerMiB: pick(putCpu, named) };
    };
    const figures = {
      size,
      chunkBytes,
      rounds,
      put: putSide(true),
      ...(unnamed ? { unnamedPut: putSide(false) } : {}),
      ...(withGet ? { get: { ...side(getBase, getMs, GET_GOAL), cpuMsPerMiB: getCpu } } : {}),
      peakRssBytes: rss,
      verified,
      ...(nodeStats ? { nodeStats: { atStart: statsAtStart, afterPuts: statsAfterPuts, afterGets: statsAfterGets } } : {}),
    };
    if (json) {
      process.stdout.write(JSON.stringify(figures) + '\n');
      return;
    }
    const list = (xs: number[], digits: number) => xs.map((x) => x.toFixed(digits)).join(' / ');
    const verdict = (ratio: number, goal: number) => `median ${ratio.toFixed(2)}× (goal ≥ ${goal}×: ${ratio >= goal ? 'met' : 'NOT met'})`;
    say(`  baselines, one before each run and one after the last (MB/s):`);
    say(`    put: hash, encrypt, 3 fsynced copies    ${list(figures.put.baselineMbps, 0)}`);
    if (figures.get) say(`    get: read a copy, verify, decrypt       ${list(figures.get.baselineMbps, 0)}`);
    if (unnamed) say(`    (one baseline before each put, named or not, in the order they ran: ${putNamed.map((n) => (n ? 'named' : 'unnamed')).join(', ')})`);
    for (const [label, p] of [['tessera put through node 0 (R=3, W=2, durable)', figures.put], ...(figures.unnamedPut ? [['same, unnamed (no object record, no MD5)', figures.unnamedPut] as const] : [])] as const) {
      say(`  ${label}: ${list(p.mbps, 0)} MB/s`);
      say(`    ratios to the bracketing baselines ${list(p.ratios, 2)}   ${verdict(p.ratio, PUT_GOAL)}`);
      say(`    CPU ms per MiB, node0 + node1 + node2 + client = sum, per round:`);
      for (const c of p.cpuMsPerMiB) say(`      ${list(c, 2).replaceAll(' / ', ' + ')} = ${c.reduce((a, b) => a + b, 0).toFixed(2)}`);
    }
    for (const [r, procs] of putThreads.entries()) {
      say(`    put ${r + 1}${unnamed ? ` (${putNamed[r] ? 'named' : 'unnamed'})` : ''}, CPU ms per MiB by thread, user+system:`);
      procs.forEach((m, k) => {
        const parts = [...m].filter(([, t]) => t.user + t.system >= 0.01).sort((a, b) => b[1].user + b[1].system - (a[1].user + a[1].system));
        say(`      ${['node0', 'node1', 'node2', 'client'][k]}: ${parts.map(([n, t]) => `${n} ${t.user.toFixed(2)}+${t.system.toFixed(2)}`).join(', ')}`);
      });
    }
    if (figures.get) {
      say(`  tessera get through node 1: ${list(figures.get.mbps, 0)} MB/s`);
      say(`    ratios to the bracketing baselines ${list(figures.get.ratios, 2)}   ${verdict(figures.get.ratio, GET_GOAL)}`);
      say(`    CPU ms per MiB, node0 + node1 + node2 + client = sum, per round:`);
      for (const c of getCpu) say(`      ${list(c, 2).replaceAll(' / ', ' + ')} = ${c.reduce((a, b) => a + b, 0).toFixed(2)}`);
      for (const [r, procs] of getThreads.entries()) {
        const m = procs[1]!;
        const parts = [...m].filter(([, t]) => t.user + t.system >= 0.01).sort((a, b) => b[1].user + b[1].system - (a[1].user + a[1].system));
        say(`    get round ${r + 1}, node1 CPU ms per MiB by thread: ${parts.map(([n, t]) => `${n} ${t.user.toFixed(2)}+${t.system.toFixed(2)}`).join(', ')}`);
      }
    }
    if (nodeStats) {
      say('  nodes (0 / 1 / 2): chunks, capacity GiB, repair passes, copies made by repair, chunks served, fetched, hedged, peer MB out, GC s, new space MiB');
      for (const [when, st] of [['at start', statsAtStart], ['after puts', statsAfterPuts], ['after gets', statsAfterGets]] as const) {
        say(`    ${when}: ${(st ?? []).map((n) => `${n.chunks} ${n.capacityGiB.toFixed(2)} ${n.repairPasses} ${n.copiesMade} ${n.served} ${n.fetched} ${n.hedged} ${(n.peerBytesOut / 1e6).toFixed(0)} ${n.gcSeconds.toFixed(2)} ${n.newSpaceMiB.toFixed(1)}`).join(' / ')}`);
      }
    }
    const fmt = (n: number | undefined) => (n === undefined ? 'n/a' : formatBytes(n));
    say(`  peak RSS (VmHWM): node0 ${fmt(rss.node0)}, node1 ${fmt(rss.node1)}, node2 ${fmt(rss.node2)}, bench client ${fmt(rss.client)}`);
    say(verify ? '  every file read back matches its source (SHA-256)' : `  read-back not verified (${withGet ? '--no-verify' : '--no-get'})`);
  } finally {
    if (clientProfile && profDir !== undefined) {
      const { profile } = await clientProfile.post('Profiler.stop');
      await writeFile(join(profDir, `client-${process.pid}.cpuprofile`), JSON.stringify(profile));
      clientProfile.disconnect();
    }
    await cluster?.destroy();
    await rm(base, { recursive: true, force: true });
  }
}
