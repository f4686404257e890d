/**
 * The `tessera` command against what the same job costs without it, in the same run: start-up
 * against `node -e 0`, and downloads and uploads through a node's HTTP API against curl talking
 * to the same node (3 disk nodes on loopback, R=3 W=2).
 *
 *   npm run bench -- cli [--size 256M] [--starts 21] [--rounds 3] [--dir DIR] [--cli PATH] [--no-put] [--json]
 *
 * Goals: `tessera --version` and `--help` take ≤ 1.5× the time of `node -e 0`, `status --json`
 * ≤ 2× (medians of --starts interleaved runs); `get > /dev/null` ≥ 0.9× the speed of
 * `curl -o /dev/null`, `get -o FILE` ≥ 0.85× of `curl -o FILE` and an fsync, `put FILE` ≥ 0.9× of
 * `curl -T FILE` (median over rounds of each round's ratio; the two sides of a pair alternate
 * which goes first). Client CPU is what the command's own process used, from its rusage.
 * `get > /dev/null` is measured twice: as the command fetches by default (one request) and with
 * `--streams 2` (byte ranges, two at a time, for a file over one window), each against curl.
 * `--cli PATH` measures another build's command (e.g. the one before a change) against the same
 * nodes and baselines; `--no-put` leaves out the uploads (the slowest part, each on fresh bytes).
 * It also fetches the file as 2 and 4 concurrent byte ranges with curl against one request, with
 * the serving node's CPU: what splitting a get (as `tessera get` does for a file over one window,
 * see src/client/ranges.ts) can gain from the same node on this machine; and as two halves from
 * two nodes at once (node 0 and node 1, each holding a full copy) against one request from node
 * 0: whether a get spread over nodes, each opening its own chunks on its own event loop, would
 * gain on this machine. `tessera get` itself always fetches from the one node it is given.
 *
 * Every timed download starts after `sync` and a pause (see quiet): the kernel's writeback of
 * what an earlier step wrote would otherwise land on whichever download runs next.
 */
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, createReadStream, openSync, readFileSync } from 'node:fs';
import { mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomStream } from '../src/cli/random-stream.js';
import { formatBytes, parseSize } from '../src/cli/format.js';
import { CLI_PATH, LocalCluster, type LocalNode } from '../src/cli/local-cluster.js';
import { median } from './bench-stats.js';
import { flag } from './cli-args.js';
import { processCpuMs, reapedChildrenCpuMs } from './cpu-time.js';

const GOALS = { version: 1.5, help: 1.5, status: 2, getStdout: 0.9, getFile: 0.85, put: 0.9 } as const;
/**
 * curl fetching the file as this many concurrent byte ranges from the same node, against one
 * whole request: whether a client could go faster than one stream by splitting a get.
 */
const RANGE_STREAMS = [2, 4] as const;
const DEFAULT_STARTS = 21;
const MAX_STARTS = 200;
/** Even, so each side of a pair goes first equally often. */
const DEFAULT_ROUNDS = 4;
const MAX_ROUNDS = 20;
/** Pause for the third copy of a put to land before the disk is flushed (see settle). */
const SETTLE_MS = 1000;
/** Pause before each timed download, after `sync` (see quiet). */
const QUIET_MS = 200;
/** A stuck command must fail the benchmark, not hang it. */
const COMMAND_TIMEOUT_MS = 300_000;

interface Timed {
  ms: number;
  cpuMs: number;
}

/** Runs a command to completion with stdout to `stdoutPath` (or nowhere); rejects on a failure exit. */
async function run(cmd: string, args: string[], stdoutPath = '/dev/null'): Promise<void> {
  const fd = openSync(stdoutPath, 'w');
  try {
    const child = spawn(cmd, args, { stdio: ['ignore', fd, 'pipe'] });
    let stderr = '';
    child.stderr?.setEncoding('utf8').on('data', (s: string) => (stderr = (stderr + s).slice(-2000)));
    const timer = setTimeout(() => child.kill('SIGKILL'), COMMAND_TIMEOUT_MS);
    const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
    clearTimeout(timer);
    if (code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited with ${code}: ${stderr.trim()}`);
  } finally {
    closeSync(fd);
  }
}

/** Runs commands side by side to completion; times them together and reads their CPU. */
async function timedAll(cmds: Array<{ cmd: string; args: string[]; stdoutPath?: string }>): Promise<Timed> {
  const cpu0 = reapedChildrenCpuMs();
  const t0 = performance.now();
  await Promise.all(cmds.map((c) => run(c.cmd, c.args, c.stdoutPath)));
  return { ms: performance.now() - t0, cpuMs: reapedChildrenCpuMs() - cpu0 };
}

function timed(cmd: string, args: string[], stdoutPath?: string): Promise<Timed> {
  return timedAll([{ cmd, args, ...(stdoutPath !== undefined ? { stdoutPath } : {}) }]);
}

/**
 * How the kernel runs a script file: its #! interpreter with the rest of that line as one
 * argument, then the file. Spelled out so the file need not be executable.
 */
function viaShebang(file: string): { cmd: string; pre: string[] } {
  const first = readFileSync(file, 'utf8').split('\n', 1)[0] ?? '';
  if (!first.startsWith('#!')) return { cmd: process.execPath, pre: [file] };
  const line = first.slice(2).trim();
  const space = line.indexOf(' ');
  return space < 0 ? { cmd: line, pre: [file] } : { cmd: line.slice(0, space), pre: [line.slice(space + 1).trim(), file] };
}

async function fsyncFile(path: string): Promise<void> {
  const fh = await open(path, 'r+');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

async function makeSource(path: string, size: number): Promise<void> {
  const fh = await open(path, 'w');
  try {
    for await (const piece of randomStream(size)) await fh.write(piece);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

function requireCurl(): void {
  const r = spawnSync('curl', ['--version'], { stdio: 'ignore' });
  if (r.error || r.status !== 0) throw new Error('curl is needed as the baseline: apt-get install curl');
}

/**
 * Waits for the disk to be quiet: a put returns once two of its three copies are durable, and the
 * third, with the kernel's writeback of everything just written, would otherwise land on whatever
 * runs next (it made the first of each pair up to twice as slow).
 */
async function settle(path: string): Promise<void> {
  await new Promise((r) => setTimeout(r, SETTLE_MS));
  spawnSync('sync', ['-f', path], { stdio: 'ignore' });
}

/**
 * Flushes what earlier steps wrote and waits a moment before a timed download, so each side of a
 * pair starts from the same state: with dirty pages of a 256 MiB put still being written back,
 * the first download after it paid for the disk's work.
 */
async function quiet(path: string): Promise<void> {
  spawnSync('sync', ['-f', path], { stdio: 'ignore' });
  await new Promise((r) => setTimeout(r, QUIET_MS));
}

interface ServedTimed extends Timed {
  /** CPU the serving node's process used meanwhile. */
  serverCpuMs: number;
}

/** Times `f` with the CPU the node processes `pids` used meanwhile, summed. */
async function withNodesCpu(pids: number[], f: () => Promise<Timed>): Promise<ServedTimed> {
  const cpu0 = pids.map((pid) => processCpuMs(pid));
  const t = await f();
  return { ...t, serverCpuMs: pids.reduce((sum, pid, i) => sum + processCpuMs(pid) - (cpu0[i] as number), 0) };
}

function withServerCpu(pid: number, f: () => Promise<Timed>): Promise<ServedTimed> {
  return withNodesCpu([pid], f);
}

/** curl's -r values that split `size` bytes into `k` ranges of (nearly) equal length. */
function byteRanges(size: number, k: number): string[] {
  const step = Math.ceil(size / k);
  const out: string[] = [];
  for (let start = 0; start < size; start += step) out.push(`${start}-${Math.min(size, start + step) - 1}`);
  return out;
}

/** Runs a and b in turn, in alternating order from round to round, so drift in load hits both alike. */
async function pair<T>(round: number, a: () => Promise<T>, b: () => Promise<T>): Promise<[T, T]> {
  if (round % 2 === 0) {
    const ra = await a();
    return [ra, await b()];
  }
  const rb = await b();
  return [await a(), rb];
}

export async function main(args: string[]): Promise<void> {
  const size = parseSize(flag(args, '--size') ?? '256M', '--size');
  const starts = Number(flag(args, '--starts') ?? DEFAULT_STARTS);
  if (!Number.isInteger(starts) || starts < 1 || starts > MAX_STARTS) throw new Error(`--starts must be 1..${MAX_STARTS}`);
  const rounds = Number(flag(args, '--rounds') ?? DEFAULT_ROUNDS);
  if (!Number.isInteger(rounds) || rounds < 1 || rounds > MAX_ROUNDS) throw new Error(`--rounds must be 1..${MAX_ROUNDS}`);
  const json = args.includes('--json');
  const noPut = args.includes('--no-put');
  const say = (s: string) => {
    if (!json) process.stdout.write(s + '\n');
  };
  requireCurl();
  const base = await mkdtemp(join(flag(args, '--dir') ?? tmpdir(), 'tessera-bench-cli-'));
  let cluster: LocalCluster | undefined;
  try {
    say(`cli: ${flag(args, '--cli') ?? CLI_PATH}, ${formatBytes(size)} file, 3 disk nodes on loopback (R=3 W=2), ${starts} starts, ${rounds} rounds, in ${base}`);
    cluster = await LocalCluster.create({ nodes: 3, dir: join(base, 'cluster'), logLevel: 'warn' });
    await cluster.waitForMembers({ alive: 3 });
    const node: LocalNode = cluster.node(0);
    const url = `http://${node.api}/api/v1/files`;
    const auth = `authorization: Bearer ${node.apiToken}`;
    const apiFlags = ['--api', node.api, '--token', node.apiToken];
    const cli = viaShebang(flag(args, '--cli') ?? CLI_PATH);
    const tessera = (cliArgs: string[], stdoutPath?: string) => timed(cli.cmd, [...cli.pre, ...cliArgs], stdoutPath);

    // Start-up: each command and its baseline interleaved, one of each per pass.
    const startup = { node: [] as number[], version: [] as number[], help: [] as number[], status: [] as number[] };
    for (let i = 0; i < starts; i++) {
      startup.node.push((await timed(process.execPath, ['-e', '0'])).ms);
      startup.version.push((await tessera(['--version'])).ms);
      startup.help.push((await tessera(['--help'])).ms);
      startup.status.push((await tessera(['status', '--json', ...apiFlags])).ms);
    }
    const nodeMs = median(startup.node);
    const startRatio = (xs: number[]) => median(xs) / nodeMs;

    const source = join(base, 'source.bin');
    await makeSource(source, size);
    const stored = await node.client.put(createReadStream(source, { highWaterMark: 1 << 20 }), { name: 'bench.bin' });
    await settle(base);
    // One untimed read, so the serving node's page cache is the same for every timed one.
    await timed('curl', ['-sSf', '-o', '/dev/null', '-H', auth, `${url}/${stored.fileId}`]);
    const out = join(base, 'out.bin');
    const curlOut = join(base, 'curl-out.bin');
    const get = { tessera: [] as Timed[], curl: [] as Timed[] };
    const getTwo = { tessera: [] as Timed[], curl: [] as Timed[] };
    const servingPid = node.proc?.pid;
    if (servingPid === undefined) throw new Error('the serving node has no process id');
    const ranged = Object.fromEntries(RANGE_STREAMS.map((k) => [k, { whole: [] as ServedTimed[], split: [] as ServedTimed[] }])) as Record<
      (typeof RANGE_STREAMS)[number],
      { whole: ServedTimed[]; split: ServedTimed[] }
    >;
    const twoNodes = { whole: [] as ServedTimed[], split: [] as ServedTimed[] };
    const otherNode: LocalNode = cluster.node(1);
    const otherPid = otherNode.proc?.pid;
    if (otherPid === undefined) throw new Error('the second node has no process id');
    const otherUrl = `http://${otherNode.api}/api/v1/files`;
    const otherAuth = `authorization: Bearer ${otherNode.apiToken}`;
    // Its page cache as warm as the serving node's.
    await timed('curl', ['-sSf', '-o', '/dev/null', '-H', otherAuth, `${otherUrl}/${stored.fileId}`]);
    const getFile = { tessera: [] as Timed[], curl: [] as Timed[] };
    const put = { tessera: [] as Timed[], curl: [] as Timed[] };
    for (let r = 0; r < rounds; r++) {
      const [gt, gc] = await pair(
        r,
        async () => (await quiet(base), tessera(['get', stored.fileId, ...apiFlags])),
        async () => (await quiet(base), timed('curl', ['-sSf', '-o', '/dev/null', '-H', auth, `${url}/${stored.fileId}`])),
      );
      get.tessera.push(gt);
      get.curl.push(gc);
      // The same get in two byte ranges at once, against curl again: whether ranges pay here.
      const [st, sc] = await pair(
        r,
        async () => (await quiet(base), tessera(['get', stored.fileId, '--streams', '2', ...apiFlags])),
        async () => (await quiet(base), timed('curl', ['-sSf', '-o', '/dev/null', '-H', auth, `${url}/${stored.fileId}`])),
      );
      getTwo.tessera.push(st);
      getTwo.curl.push(sc);

      for (const k of RANGE_STREAMS) {
        const [whole, split] = await pair(
          r,
          async () => (await quiet(base), withServerCpu(servingPid, () => timed('curl', ['-sSf', '-o', '/dev/null', '-H', auth, `${url}/${stored.fileId}`]))),
          async () => (await quiet(base), withServerCpu(servingPid, () => timedAll(byteRanges(size, k).map((range) => ({ cmd: 'curl', args: ['-sSf', '-o', '/dev/null', '-r', range, '-H', auth, `${url}/${stored.fileId}`] }))))),
        );
        ranged[k].whole.push(whole);
        ranged[k].split.push(split);
      }
      {
        const [first, second] = byteRanges(size, 2) as [string, string];
        const bothCpu = (f: () => Promise<Timed>) => withNodesCpu([servingPid, otherPid], f);
        const [whole, split] = await pair(
          r,
          async () => (await quiet(base), bothCpu(() => timed('curl', ['-sSf', '-o', '/dev/null', '-H', auth, `${url}/${stored.fileId}`]))),
          async () =>
            (await quiet(base),
            bothCpu(() =>
              timedAll([
                { cmd: 'curl', args: ['-sSf', '-o', '/dev/null', '-r', first, '-H', auth, `${url}/${stored.fileId}`] },
                { cmd: 'curl', args: ['-sSf', '-o', '/dev/null', '-r', second, '-H', otherAuth, `${otherUrl}/${stored.fileId}`] },
              ]),
            )),
        );
        twoNodes.whole.push(whole);
        twoNodes.split.push(split);
      }

      const [ft, fc] = await pair(
        r,
        async () => (await quiet(base), tessera(['get', stored.fileId, '-o', out, ...apiFlags])),
        async () => {
          await quiet(base);
          const t0 = performance.now();
          const t = await timed('curl', ['-sSf', '-o', curlOut, '-H', auth, `${url}/${stored.fileId}`]);
          await fsyncFile(curlOut);
          return { ms: performance.now() - t0, cpuMs: t.cpuMs };
        },
      );
      getFile.tessera.push(ft);
      getFile.curl.push(fc);
      await rm(out, { force: true });
      await rm(curlOut, { force: true });

      if (noPut) continue;
      // Each upload carries fresh bytes: the same bytes again would be deduplicated and cost less.
      const [pt, pc] = await pair(
        r,
        async () => {
          await makeSource(source, size);
          await settle(base);
          return tessera(['put', source, '-q', ...apiFlags], join(base, 'put-id.txt'));
        },
        async () => {
          await makeSource(source, size);
          await settle(base);
          return timed('curl', ['-sSf', '-T', source, '-H', auth, url]);
        },
      );
      put.tessera.push(pt);
      put.curl.push(pc);
      await settle(base);
    }

    const speedRatios = (s: { tessera: Timed[]; curl: Timed[] }) => s.tessera.map((t, i) => (s.curl[i] as Timed).ms / t.ms);
    const mbps = (ms: number) => size / 1e6 / (ms / 1000);
    const side = (s: { tessera: Timed[]; curl: Timed[] }, goal: number) => ({
      tesseraMbps: s.tessera.map((t) => mbps(t.ms)),
      curlMbps: s.curl.map((t) => mbps(t.ms)),
      tesseraCpuMs: s.tessera.map((t) => t.cpuMs),
      curlCpuMs: s.curl.map((t) => t.cpuMs),
      ratios: speedRatios(s),
      ratio: s.tessera.length > 0 ? median(speedRatios(s)) : NaN,
      goal,
    });
    const figures = {
      size,
      starts,
      rounds,
      startup: {
        nodeMs,
        versionMs: median(startup.version),
        helpMs: median(startup.help),
        statusMs: median(startup.status),
        version: { ratio: startRatio(startup.version), goal: GOALS.version },
        help: { ratio: startRatio(startup.help), goal: GOALS.help },
        status: { ratio: startRatio(startup.status), goal: GOALS.status },
      },
      getStdout: side(get, GOALS.getStdout),
      getStdoutTwoStreams: side(getTwo, GOALS.getStdout),
      getFile: side(getFile, GOALS.getFile),
      put: side(put, GOALS.put),
      ranges: RANGE_STREAMS.map((k) => {
        const f = ranged[k];
        return {
          streams: k,
          wholeMbps: f.whole.map((t) => mbps(t.ms)),
          splitMbps: f.split.map((t) => mbps(t.ms)),
          wholeServerCpuMs: f.whole.map((t) => t.serverCpuMs),
          splitServerCpuMs: f.split.map((t) => t.serverCpuMs),
          speedup: median(f.split.map((t, i) => (f.whole[i] as Timed).ms / t.ms)),
        };
      }),
      twoNodes: {
        wholeMbps: twoNodes.whole.map((t) => mbps(t.ms)),
        splitMbps: twoNodes.split.map((t) => mbps(t.ms)),
        wholeNodesCpuMs: twoNodes.whole.map((t) => t.serverCpuMs),
        splitNodesCpuMs: twoNodes.split.map((t) => t.serverCpuMs),
        speedup: median(twoNodes.split.map((t, i) => (twoNodes.whole[i] as Timed).ms / t.ms)),
      },
      // What a command that starts as fast as `node -e 0` and then moves the bytes as fast as
      // curl would score against curl: the start-up alone bounds the ratio at this size.
      startBound: median(get.curl.map((t) => t.ms / (t.ms + nodeMs))),
      // The same with the bytes moved as fast as curl in RANGES_IN_FLIGHT (2) ranges at once, as
      // `tessera get` fetches a large file: each round's pair of curl runs from the same node.
      rangedBound: median(ranged[2].whole.map((t, i) => t.ms / ((ranged[2].split[i] as Timed).ms + nodeMs))),
    };
    if (json) {
      process.stdout.write(JSON.stringify(figures) + '\n');
      return;
    }
    const list = (xs: number[], digits: number) => xs.map((x) => x.toFixed(digits)).join(' / ');
    const atMost = (ratio: number, goal: number) => `${ratio.toFixed(2)}× (goal ≤ ${goal}×: ${ratio <= goal ? 'met' : 'NOT met'})`;
    const atLeast = (ratio: number, goal: number) => `median ${ratio.toFixed(2)}× (goal ≥ ${goal}×: ${ratio >= goal ? 'met' : 'NOT met'})`;
    const st = figures.startup;
    say(`  start-up, medians of ${starts} runs: node -e 0 ${st.nodeMs.toFixed(0)} ms`);
    say(`    tessera --version       ${st.versionMs.toFixed(0)} ms   ${atMost(st.version.ratio, st.version.goal)}`);
    say(`    tessera --help          ${st.helpMs.toFixed(0)} ms   ${atMost(st.help.ratio, st.help.goal)}`);
    say(`    tessera status --json   ${st.statusMs.toFixed(0)} ms   ${atMost(st.status.ratio, st.status.goal)}`);
    const transfer = (title: string, curlTitle: string, f: ReturnType<typeof side>) => {
      say(`  ${title}: ${list(f.tesseraMbps, 0)} MB/s, client CPU ${list(f.tesseraCpuMs, 0)} ms`);
      say(`    ${curlTitle}: ${list(f.curlMbps, 0)} MB/s, client CPU ${list(f.curlCpuMs, 0)} ms`);
      say(`    ratios ${list(f.ratios, 2)}   ${atLeast(f.ratio, f.goal)}`);
    };
    transfer('tessera get > /dev/null', 'curl -o /dev/null', figures.getStdout);
    transfer('tessera get --streams 2 > /dev/null (two ranges at once)', 'curl -o /dev/null', figures.getStdoutTwoStreams);
    transfer('tessera get -o FILE (fsynced)', 'curl -o FILE, then fsync', figures.getFile);
    if (!noPut) transfer('tessera put FILE', 'curl -T FILE', figures.put);
    say(`  a command starting like node -e 0, then as fast as curl, would reach get ${figures.startBound.toFixed(2)}× at this size;`);
    say(`    then as fast as curl in 2 ranges at once (as tessera get --streams 2 fetches), ${figures.rangedBound.toFixed(2)}×`);
    for (const f of figures.ranges) {
      say(`  curl in ${f.streams} ranges at once: ${list(f.splitMbps, 0)} MB/s, serving node CPU ${list(f.splitServerCpuMs, 0)} ms`);
      say(`    one request: ${list(f.wholeMbps, 0)} MB/s, serving node CPU ${list(f.wholeServerCpuMs, 0)} ms   median speed-up ${f.speedup.toFixed(2)}×`);
    }
    const tn = figures.twoNodes;
    say(`  curl in 2 halves from 2 nodes at once: ${list(tn.splitMbps, 0)} MB/s, both nodes' CPU ${list(tn.splitNodesCpuMs, 0)} ms`);
    say(`    one request from one node: ${list(tn.wholeMbps, 0)} MB/s, both nodes' CPU ${list(tn.wholeNodesCpuMs, 0)} ms   median speed-up ${tn.speedup.toFixed(2)}×`);
    say(`    (tessera get fetches from the one node it is given, in one request unless --streams N)`);
  } finally {
    await cluster?.destroy();
    await rm(base, { recursive: true, force: true });
  }
}
