/**
 * End-to-end file throughput: put and get of one large file through a 3-node loopback cluster of
 * disk nodes (R=3, W=2, durable), against baselines measured in the same run by one process
 * with no network (bench/files-baseline.ts). Ratios compare times: baseline time ÷ cluster time.
 *
 *   npm run bench -- files [--size 1G] [--chunk-size 1M] [--dir DIR] [--no-verify] [--json]
 *
 * Goals: put ≥ 0.5× its baseline, get ≥ 0.6× its baseline. Peak memory is each process's VmHWM.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdtemp, open, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomStream } from '../src/cli/commands/demo.js';
import { formatBytes, parseSize } from '../src/cli/format.js';
import { LocalCluster } from '../src/cli/local-cluster.js';
import { nodeRuntimeArgs, withMallocEnv } from '../src/cli/runtime-tuning.js';
import { checkChunkSize } from '../src/content/chunker.js';
import { flag } from './cli-args.js';

const PUT_GOAL = 0.5;
const GET_GOAL = 0.6;
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

const mbps = (bytes: number, ms: number) => bytes / 1e6 / (ms / 1000);
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

export async function main(args: string[]): Promise<void> {
  const size = parseSize(flag(args, '--size') ?? '1G', '--size');
  const chunkBytes = checkChunkSize(parseSize(flag(args, '--chunk-size') ?? '1M', '--chunk-size'));
  const verify = !args.includes('--no-verify');
  const json = args.includes('--json');
  const say = (s: string) => {
    if (!json) process.stdout.write(s + '\n');
  };
  const base = await mkdtemp(join(flag(args, '--dir') ?? tmpdir(), 'tessera-bench-files-'));
  let cluster: LocalCluster | undefined;
  try {
    const source = join(base, 'source.bin');
    say(`files: ${formatBytes(size)} file, ${formatBytes(chunkBytes)} chunks, 3 disk nodes on loopback, R=3 W=2, in ${base}`);
    const sourceSha = await makeSource(source, size);

    // Each baseline runs right before and right after the cluster's own run, and their mean is
    // the reference: on a shared machine the load drifts over minutes, and this brackets it.
    const baseDir = join(base, 'baseline');
    const basePut = () => runBaseline(['put', source, baseDir, String(chunkBytes)]);
    const baseGet = () => runBaseline(['get', baseDir, String(chunkBytes)]);
    const putBase: number[] = [await basePut()];

    cluster = await LocalCluster.create({ nodes: 3, dir: join(base, 'cluster'), logLevel: 'warn' });
    await cluster.waitForMembers({ alive: 3 });
    const writer = cluster.node(0);
    const reader = cluster.node(1);

    let t0 = performance.now();
    const put = await writer.client.put(createReadStream(source, { highWaterMark: chunkBytes }), {
      name: 'bench.bin',
      replicas: 3,
      quorum: 2,
      chunkSize: chunkBytes,
    });
    const putMs = performance.now() - t0;
    if (put.size !== size) throw new Error(`put stored ${put.size} bytes of ${size}`);
    putBase.push(await basePut());
    const getBase: number[] = [await baseGet()];

    t0 = performance.now();
    const res = await reader.client.get(put.fileId);
    let got = 0;
    for await (const piece of res.stream as AsyncIterable<Buffer>) got += piece.length;
    const getMs = performance.now() - t0;
    if (got !== size) throw new Error(`get returned ${got} bytes of ${size}`);
    getBase.push(await baseGet());
    await rm(baseDir, { recursive: true, force: true });

    // Checked in a separate, untimed read so hashing in this process does not tax the timed one.
    let verified: boolean | undefined;
    if (verify) {
      const again = await reader.client.get(put.fileId);
      const h = createHash('sha256');
      for await (const piece of again.stream as AsyncIterable<Buffer>) h.update(piece);
      verified = h.digest('hex') === sourceSha;
      if (!verified) throw new Error('the file read back differs from the source (SHA-256 mismatch)');
    }

    const rss = {
      node0: await peakRss(cluster.node(0).proc?.pid ?? 0),
      node1: await peakRss(cluster.node(1).proc?.pid ?? 0),
      node2: await peakRss(cluster.node(2).proc?.pid ?? 0),
      client: await peakRss('self'),
    };
    const figures = {
      size,
      chunkBytes,
      put: { mbps: mbps(size, putMs), baselineMbps: putBase.map((ms) => mbps(size, ms)), ratio: mean(putBase) / putMs, goal: PUT_GOAL },
      get: { mbps: mbps(size, getMs), baselineMbps: getBase.map((ms) => mbps(size, ms)), ratio: mean(getBase) / getMs, goal: GET_GOAL },
      peakRssBytes: rss,
      verified,
    };
    if (json) {
      process.stdout.write(JSON.stringify(figures) + '\n');
      return;
    }
    const row = (what: string, v: number | number[]) =>
      `  ${what.padEnd(62)} ${(Array.isArray(v) ? v.map((x) => x.toFixed(0)).join(' / ') : v.toFixed(0)).padStart(9)} MB/s`;
    const verdict = (ratio: number, goal: number) => `${ratio.toFixed(2)}× baseline (goal ≥ ${goal}×: ${ratio >= goal ? 'met' : 'NOT met'})`;
    say(row('baseline put (before / after): hash, encrypt, 3 fsynced copies', figures.put.baselineMbps));
    say(row('tessera put through node 0 (R=3, W=2, durable)', figures.put.mbps) + `   ${verdict(figures.put.ratio, PUT_GOAL)}`);
    say(row('baseline get (before / after): read a copy, verify, decrypt', figures.get.baselineMbps));
    say(row('tessera get through node 1', figures.get.mbps) + `   ${verdict(figures.get.ratio, GET_GOAL)}`);
    const fmt = (n: number | undefined) => (n === undefined ? 'n/a' : formatBytes(n));
    say(`  peak RSS (VmHWM): node0 ${fmt(rss.node0)}, node1 ${fmt(rss.node1)}, node2 ${fmt(rss.node2)}, bench client ${fmt(rss.client)}`);
    say(verify ? '  read-back SHA-256 matches the source' : '  read-back not verified (--no-verify)');
  } finally {
    await cluster?.destroy();
    await rm(base, { recursive: true, force: true });
  }
}
