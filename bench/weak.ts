/**
 * Many weak nodes, one fast network: for each N, N hosts in network namespaces, each running one
 * node whose link is capped with tc tbf (default 25 MB/s each way), plus an uncapped gateway host
 * that stores nothing (test/netns/weak-cluster.ts). The baseline is the cap itself, which the
 * kernel enforces: every figure is printed as a multiple of one host's cap, or of what N capped
 * links could carry at most.
 *
 *   npm run bench -- weak [--nodes 2,4,8] [--size 256M] [--agg-size SIZE] [--cap-mb 25]
 *                         [--memory] [--heap-mb MB] [--json]
 *
 * Per N: a put of one file through the gateway (replicas 3; then ec 4+2 where N ≥ 6) and a get of
 * it back through the gateway, one reader; then N clients at once, each on its own capped host
 * (bench/weak-client.ts, over the host's loopback, as a device using its own node), put N files
 * and then read them back, each client another host's file. CPU: every node process, this one
 * and its clients, as cores busy over each step's wall time and as CPU ms per MiB, and the
 * whole machine's busy cores: where the machine is busy, the cores and not the caps end the
 * curve, and the CPU per MiB says how far two cores of our own would carry it. Needs root,
 * `ip netns`, nft and tc.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { nodeRuntimeArgs, withMallocEnv } from '../src/cli/runtime-tuning.js';
import { cpus, loadavg } from 'node:os';
import { formatBytes, parseSize } from '../src/cli/format.js';
import { connect, type TesseraClient } from '../src/client/index.js';
import { cleanStale, netnsUnavailable, type NetnsCluster } from '../test/netns/harness.js';
import { API_CERT_ENV, drain, hashedSource, startWeakCluster, type WeakCluster } from '../test/netns/weak-cluster.js';
import { machineBusyMs, ownCpuMicros, processCpuMs, reapedChildrenCpuMs } from './cpu-time.js';
import { flag } from './cli-args.js';

const MB = 1e6;
const SINGLE_GOAL_AT_8 = 5;
const AGGREGATE_GOAL = 0.7;
const MAX_NODES = 16;
/** The harness's 5 s idle timeout is for control calls; a put queued behind capped links may wait longer. */
const CLIENT_IDLE_MS = 120_000;
const cores = cpus().length;
const CLIENT_SCRIPT = fileURLToPath(new URL('./weak-client.js', import.meta.url));
const run = promisify(execFile);

interface Step {
  what: string;
  bytes: number;
  ms: number;
  mbps: number;
  /** Multiple of one host's cap. */
  xCap: number;
  /** Fraction of the most N capped links could carry for this step. */
  ofBound: number;
  bound: string;
  /** CPU seconds per wall second, all node processes plus this one. */
  cores: number;
  nodeCores: number;
  /** Cores busy on the whole machine meanwhile, this run's processes and everyone else's. */
  machineCores: number;
  /** CPU milliseconds this run's processes spent per MiB moved. */
  cpuMsPerMiB: number;
  /** What the machine's cores could carry at that cost, had they been this run's alone: a multiple of the bound. */
  cpuCeilingOfBound: number;
}

/** Runs `fn`, returning its wall time and the CPU the cluster's node processes and this process spent meanwhile. */
async function withCpu<T>(pids: number[], fn: () => Promise<T>): Promise<{ result: T; ms: number; nodeCpuMs: number; ownCpuMs: number; machineMs: number }> {
  const nodes = () => pids.reduce((s, p) => s + processCpuMs(p), 0);
  const n0 = nodes();
  const o0 = ownCpuMicros() / 1000 + reapedChildrenCpuMs();
  const m0 = machineBusyMs();
  const t0 = performance.now();
  const result = await fn();
  const ms = performance.now() - t0;
  return { result, ms, nodeCpuMs: nodes() - n0, ownCpuMs: ownCpuMicros() / 1000 + reapedChildrenCpuMs() - o0, machineMs: machineBusyMs() - m0 };
}

async function put(client: TesseraClient, size: number, seed: number, opts: { ec?: string }): Promise<{ fileId: string; sha: string }> {
  const src = hashedSource(size, seed);
  const r = await client.put(src.stream, { chunkSize: 1 << 20, ...(opts.ec ? { ec: opts.ec } : { replicas: 3, quorum: 2 }) });
  if (r.size !== size) throw new Error(`put stored ${r.size} bytes of ${size}`);
  return { fileId: r.fileId, sha: src.sha() };
}

async function getChecked(client: TesseraClient, f: { fileId: string; sha: string }, size: number): Promise<void> {
  const res = await client.get(f.fileId);
  const got = await drain(res.stream as AsyncIterable<Buffer>);
  if (got.bytes !== size || got.sha !== f.sha) throw new Error(`file ${f.fileId.slice(0, 16)} read back differs from what was put (${got.bytes} of ${size} bytes)`);
}

interface ClientResult {
  fileId?: string;
  sha: string;
  bytes: number;
  start: number;
  end: number;
}

/** Runs one bench client inside host `i`'s namespace, talking to that host's API over its own loopback. */
async function inHost(c: NetnsCluster, i: number, args: string[]): Promise<ClientResult> {
  const h = c.host(i);
  const { stdout } = await run('ip', ['netns', 'exec', h.ns, process.execPath, ...nodeRuntimeArgs(), CLIENT_SCRIPT, args[0]!, h.api, h.apiToken, ...args.slice(1)], {
    // The host's API is beyond loopback, so HTTPS with its self-signed certificate, pinned.
    env: { ...withMallocEnv(), [API_CERT_ENV]: h.apiTls.certPem ?? '' },
    maxBuffer: 1 << 20,
  });
  return JSON.parse(stdout) as ClientResult;
}

/** Clients that ran at once: their bytes over the span from the first start to the last end. */
function span(rs: ClientResult[]): { ms: number; bytes: number } {
  return { ms: Math.max(...rs.map((r) => r.end)) - Math.min(...rs.map((r) => r.start)), bytes: rs.reduce((a, r) => a + r.bytes, 0) };
}

async function runN(n: number, o: { size: number; aggSize: number; cap: number; memory: boolean; heapMb: number | undefined }, say: (s: string) => void): Promise<Step[]> {
  let made: NetnsCluster | undefined;
  const steps: Step[] = [];
  try {
    const w: WeakCluster = await startWeakCluster(
      { storageHosts: n, capBytes: o.cap, memory: o.memory, ...(o.heapMb ? { runtimeFlags: [`--max-old-space-size=${o.heapMb}`] } : {}) },
      (c) => (made = c),
    );
    const c = w.c;
    const client = (i: number) => connect({ api: c.host(i).api, token: c.host(i).apiToken, timeoutMs: CLIENT_IDLE_MS, tls: c.host(i).apiTls });
    const pids = c.hosts.map((h) => c.pid(h.index)).filter((p): p is number => p !== undefined);
    say(`  node processes: ${pids.map((p) => `${p}:${readFileSync(`/proc/${p}/comm`, 'utf8').trim()}`).join(' ')}`);
    const gw = client(w.gateway);
    const copies = Math.min(3, n);
    /** `spanMs`: the transfer's own time when it differs from the step's wall time (clients' start-up excluded); CPU is over the wall time. */
    const record = (what: string, bytes: number, r: { ms: number; nodeCpuMs: number; ownCpuMs: number; machineMs: number }, bound: number, boundText: string, spanMs = r.ms) => {
      const mbps = bytes / MB / (spanMs / 1000);
      const s: Step = {
        what,
        bytes,
        ms: spanMs,
        mbps,
        xCap: (mbps * MB) / o.cap,
        ofBound: (mbps * MB) / bound,
        bound: boundText,
        cores: (r.nodeCpuMs + r.ownCpuMs) / r.ms,
        nodeCores: r.nodeCpuMs / r.ms,
        machineCores: r.machineMs / r.ms,
        cpuMsPerMiB: (r.nodeCpuMs + r.ownCpuMs) / (bytes / 2 ** 20),
        cpuCeilingOfBound: 0,
      };
      s.cpuCeilingOfBound = (((cores * 1000) / s.cpuMsPerMiB) * 2 ** 20) / bound;
      steps.push(s);
      say(
        `  ${what.padEnd(44)} ${formatBytes(bytes).padStart(9)} in ${(spanMs / 1000).toFixed(1).padStart(5)} s: ${mbps.toFixed(1).padStart(6)} MB/s = ${s.xCap.toFixed(2)}× cap, ${s.ofBound.toFixed(2)} of ${boundText}\n` +
          `  ${''.padEnd(44)} CPU ${s.cores.toFixed(2)} cores (nodes ${s.nodeCores.toFixed(2)}), machine ${s.machineCores.toFixed(2)} of ${cores} busy; ${s.cpuMsPerMiB.toFixed(1)} CPU ms/MiB: ${cores} cores to itself would carry ${s.cpuCeilingOfBound.toFixed(2)} of ${boundText}`,
      );
    };

    // One file through the gateway: each copy crosses one holder's capped downlink.
    const one = await withCpu(pids, () => put(gw, o.size, 1, {}));
    record('put via uncapped gateway, replicas 3', o.size, one, (n * o.cap) / copies, `N×cap/${copies}`);
    const get1 = await withCpu(pids, () => getChecked(gw, one.result, o.size));
    record('get, 1 reader via uncapped gateway', o.size, get1, n * o.cap, 'N×cap');
    if (n >= 6) {
      const ec = await withCpu(pids, () => put(gw, o.size, 2, { ec: '4+2' }));
      record('put via uncapped gateway, ec 4+2', o.size, ec, (n * o.cap) / 1.5, 'N×cap/1.5');
      const getEc = await withCpu(pids, () => getChecked(gw, ec.result, o.size));
      record('get ec 4+2, 1 reader via uncapped gateway', o.size, getEc, n * o.cap, 'N×cap');
    }

    // N devices at once, each with a client on its own host (over that host's loopback): N files
    // put, then read back, each by the client of another host.
    const puts = await withCpu(pids, () => Promise.all(w.storage.map((i) => inHost(c, i, ['put', String(o.aggSize), String(100 + i)]))));
    const putSpan = span(puts.result);
    record(`put ${n} files at once, ${n} clients on ${n} hosts`, putSpan.bytes, puts, (n * o.cap) / copies, `N×cap/${copies}`, putSpan.ms);
    const gets = await withCpu(pids, () => Promise.all(w.storage.map((i) => inHost(c, i, ['get', puts.result[(i + 1) % n]!.fileId!]))));
    gets.result.forEach((g, i) => {
      const want = puts.result[(i + 1) % n]!;
      if (g.bytes !== o.aggSize || g.sha !== want.sha) throw new Error(`host ${i} read back a file that differs from what was put (${g.bytes} of ${o.aggSize} bytes)`);
    });
    const getSpan = span(gets.result);
    // copies/N of each file's chunks sit on its reader's own host, so N×cap binds only the rest.
    record(`get ${n} files at once, ${n} clients on ${n} hosts`, getSpan.bytes, gets, n * o.cap, 'N×cap', getSpan.ms);
    return steps;
  } finally {
    await made?.destroy();
  }
}

export async function main(args: string[]): Promise<void> {
  const why = await netnsUnavailable();
  if (why !== undefined) throw new Error(`weak bench needs network namespaces: ${why}`);
  await cleanStale();
  const nodes = (flag(args, '--nodes') ?? '2,4,8').split(',').map(Number);
  if (nodes.some((n) => !Number.isInteger(n) || n < 1 || n > MAX_NODES)) throw new Error(`--nodes must list counts 1..${MAX_NODES}, e.g. 2,4,8`);
  const size = parseSize(flag(args, '--size') ?? '256M', '--size');
  const aggSize = parseSize(flag(args, '--agg-size') ?? String(size), '--agg-size');
  const capMb = Number(flag(args, '--cap-mb') ?? 25);
  if (!(capMb > 0 && capMb <= 10_000)) throw new Error('--cap-mb must be 0..10000 (MB/s each way per host)');
  const heapFlag = flag(args, '--heap-mb');
  const heapMb = heapFlag === undefined ? undefined : Number(heapFlag);
  if (heapMb !== undefined && !(Number.isInteger(heapMb) && heapMb >= 64)) throw new Error('--heap-mb must be a whole number ≥ 64');
  const json = args.includes('--json');
  const memory = args.includes('--memory');
  const say = (s: string) => {
    if (!json) process.stdout.write(s + '\n');
  };
  const cap = Math.round(capMb * MB);
  say(`weak: N hosts capped at ${capMb} MB/s each way (tc tbf), ${memory ? 'memory' : 'disk'} stores${heapMb ? `, heap ≤ ${heapMb} MB` : ''}; one file of ${formatBytes(size)}, and N of ${formatBytes(aggSize)}; 1 MiB chunks`);
  const all: Record<number, Step[]> = {};
  for (const n of nodes) {
    say(`N = ${n}: load average ${loadavg().map((l) => l.toFixed(1)).join(' ')}`);
    all[n] = await runN(n, { size, aggSize, cap, memory, heapMb }, say);
  }
  const single8 = all[8]?.find((s) => s.what.startsWith('get, 1 reader'));
  const agg8 = all[8]?.find((s) => s.what.startsWith('get 8 files'));
  say('  (CPU is this run\'s node processes, the bench and its clients; "machine" counts everyone\'s.)');
  if (single8) say(`goal: single reader with 8 capped hosts ≥ ${SINGLE_GOAL_AT_8}× one host's cap: ${single8.xCap.toFixed(2)}× (${single8.xCap >= SINGLE_GOAL_AT_8 ? 'met' : 'NOT met'}; this run's CPU ${single8.cores.toFixed(2)}, machine ${single8.machineCores.toFixed(2)} of ${cores} cores busy)`);
  if (agg8) say(`goal: 8 readers ≥ ${AGGREGATE_GOAL} × 8 × cap: ${agg8.ofBound.toFixed(2)} (${agg8.ofBound >= AGGREGATE_GOAL ? 'met' : 'NOT met'}; this run's CPU ${agg8.cores.toFixed(2)}, machine ${agg8.machineCores.toFixed(2)} of ${cores} cores busy)`);
  if (json) process.stdout.write(JSON.stringify({ capBytes: cap, size, aggSize, memory, heapMb, steps: all }) + '\n');
}
