/**
 * The S3 face against tessera's own client, in the same run on the same 3-node loopback cluster
 * (disk nodes, R = 3):
 *  - one large object: PUT and GET with aws-cli (`s3 cp`, its default 8 MiB multipart parts and
 *    10 requests in flight) against `tessera put` / `tessera get` of a file of the same size; ratios
 *    are native time ÷ S3 time (goal ≥ 0.85), the native time being the mean of the native rounds
 *    run just before and just after the S3 client's (native, SDK, native, aws-cli, native); each
 *    native round also puts a fresh file under a name, an object with its ETag's MD5 as an S3 PUT
 *    makes, and the PUTs are given against those too;
 *  - the same object through `@aws-sdk/client-s3` (s3-sdk.ts: one PutObject, one GetObject, the
 *    SDK's defaults), in this process; the goal's ratio is taken with the SDK, since aws-cli's own
 *    Python work per MiB (about three times the native client's) is what bounds its GET on two cores.
 *    The SDK GET's body is written to its file as `tessera get -o` writes one (the same batches and
 *    file sink, one fsync at the end), so that both GETs do the same work with the bytes; and
 *    each GET is also made with its body dropped (`tessera get > /dev/null`, the SDK's body read
 *    and discarded), which leaves the client's disk out. The SDK's GETs are compared with native
 *    gets of the first round's file taken in turn with them (SDK, native, native, SDK, …,
 *    GETS_PER_STEP of each), so that both see the same moments of a machine whose load drifts;
 *    the SDK's PUT step is SDK_PUTS PUTs, as many as the native rounds around it (aws-cli's
 *    steps stay one each);
 *  - the goal's PUT ratio is taken against the named native put: an S3 PUT always makes an object
 *    under a key with its ETag, the MD5 of its bytes, as `tessera put --name` does, while a put
 *    without a name stores a file and computes no MD5 (about 1.5 CPU-ms per MiB less, on a
 *    machine whose two cores a PUT keeps busy); the ratio against the unnamed put is printed too;
 *  - the CPU each large step cost, its client apart from the nodes (and node 0 apart), in ms per MiB;
 *  - 4 KiB objects: PUTs, then GETs of each `--get-passes` times, per second with 32 requests in flight, signed in this process
 *    with the face's SigV4 functions (test/helpers/s3-client.ts) (goals ≥ 1,000 PUT/s and ≥ 3,000 GET/s),
 *    and the CPU each of them cost: this process, the S3 node and the other nodes, in µs per op.
 *
 *   npm run bench -- s3 [--size 1G] [--small 4000] [--warm-up N] [--inflight 32] [--get-passes 3] [--cpu-prof DIR] [--no-small] [--no-large] [--no-aws-cli] [--json]
 *
 * `--warm-up N` 4 KiB PUTs (default: as many as `--small`, at most 1,000) go before the measured
 * ones, to other keys, and are not counted: V8 compiles the hot paths of the nodes and of this
 * process in the first thousand or so requests, which cost 20–30 % more CPU each than later ones.
 * `--cpu-prof DIR` writes each node's CPU profile there when the run ends (node 0 serves S3).
 * `--no-small` skips the 4 KiB phases, `--no-large` the large-object steps (native, SDK, aws-cli)
 * and `--no-aws-cli` the aws-cli steps, so a profile holds only the steps it is about.
 */
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatBytes, parseSize } from '../src/cli/format.js';
import { CLI_PATH } from '../src/cli/local-cluster.js';
import { randomStream } from '../src/cli/random-stream.js';
import { nodeRuntimeArgs, withMallocEnv } from '../src/cli/runtime-tuning.js';
import { UNSIGNED_PAYLOAD } from '../src/s3/sigv4.js';
import { s3 as s3Request, type S3Creds } from '../test/helpers/s3-client.js';
import { awsEnv, mustRun, startS3Cluster } from '../test/helpers/s3-cluster.js';
import { mean } from './bench-stats.js';
import { flag, intArg } from './cli-args.js';
import { processCpuMs, reapedChildrenCpuMs } from './cpu-time.js';
import { sdkTransfers } from './s3-sdk.js';

const LARGE_GOAL = 0.85;
const PUT_RATE_GOAL = 1000;
const GET_RATE_GOAL = 3000;
const OBJECT_BYTES = 4096;
/** Small objects measured at most, and the longest a phase may run before it stops counting. */
const MAX_SMALL = 100_000;
const PHASE_LIMIT_MS = 120_000;
/** 4 KiB PUTs made before the measured ones by default (`--warm-up`). */
const MAX_WARM_UP = 1000;
/**
 * GETs of the large object in each native round and for the SDK, their mean the step's time: a GET
 * lasts about two seconds, and one alone moved by a third between rounds when other work shared
 * the two cores; the put before it stays one (each needs fresh bytes, see freshSource).
 */
const GETS_PER_STEP = 2;
/** SDK PUTs whose mean is compared with the two native rounds around them. */
const SDK_PUTS = 2;
/** Reads of each small object in the GET phase, at most. */
const MAX_GET_PASSES = 10;

/** Runs `count` operations with `inflight` at once; returns operations per second (bounded by PHASE_LIMIT_MS). */
async function rate(count: number, inflight: number, op: (i: number) => Promise<void>): Promise<{ perSecond: number; done: number }> {
  let next = 0;
  let done = 0;
  const began = Date.now();
  const worker = async () => {
    while (next < count && Date.now() - began < PHASE_LIMIT_MS) {
      const i = next++;
      await op(i);
      done++;
    }
  };
  await Promise.all(Array.from({ length: inflight }, worker));
  return { perSecond: (done * 1000) / (Date.now() - began), done };
}

/** Wall time of one step, and the CPU its client (reaped children and this process) and the nodes spent on it. */
interface Timed {
  ms: number;
  clientCpuMs: number;
  serverCpuMs: number;
  /** The part of serverCpuMs spent by node 0, which serves S3 and takes the native client's requests. */
  s3NodeCpuMs: number;
}

/** The mean of steps, field by field: the native rounds around a step are its baseline. */
function meanTimed(ts: readonly Timed[]): Timed {
  const m = (f: (t: Timed) => number) => mean(ts.map(f));
  return { ms: m((t) => t.ms), clientCpuMs: m((t) => t.clientCpuMs), serverCpuMs: m((t) => t.serverCpuMs), s3NodeCpuMs: m((t) => t.s3NodeCpuMs) };
}

let profiling = false;

async function timed(serverPids: readonly number[], step: string, fn: () => Promise<unknown>): Promise<Timed> {
  const servers = () => serverPids.reduce((sum, pid) => sum + processCpuMs(pid), 0);
  const first = () => (serverPids[0] === undefined ? 0 : processCpuMs(serverPids[0]));
  const s0 = servers();
  const f0 = first();
  const c0 = reapedChildrenCpuMs();
  const own0 = process.cpuUsage();
  const began = process.hrtime.bigint();
  await fn();
  const ended = process.hrtime.bigint();
  const ms = Number(ended - began) / 1e6;
  const own = process.cpuUsage(own0);
  // The monotonic clock the nodes' CPU profiles count in (µs), so a profile can be cut to this step.
  if (profiling) process.stderr.write(`step ${step} ${began / 1000n}-${ended / 1000n} µs\n`);
  return { ms, clientCpuMs: reapedChildrenCpuMs() - c0 + (own.user + own.system) / 1000, serverCpuMs: servers() - s0, s3NodeCpuMs: first() - f0 };
}

/** CPU microseconds per operation: this process (the signing client), the S3 node, the other nodes. */
interface OpCpu {
  client: number;
  s3Node: number;
  otherNodes: number;
}

/**
 * Runs a rate phase and adds what each operation cost in CPU: on two shared cores the rate moves
 * with the machine's load, the CPU per operation much less.
 */
async function perOp(pids: readonly number[], phase: () => Promise<{ perSecond: number; done: number }>): Promise<{ perSecond: number; done: number; cpuUs: OpCpu }> {
  const nodes = () => pids.map((pid) => processCpuMs(pid));
  const n0 = nodes();
  const c0 = process.cpuUsage();
  const r = await phase();
  const c = process.cpuUsage(c0);
  const n1 = nodes();
  const per = (ms: number) => (ms * 1000) / Math.max(1, r.done);
  return {
    ...r,
    cpuUs: {
      client: (c.user + c.system) / Math.max(1, r.done),
      s3Node: per(n1[0]! - n0[0]!),
      otherNodes: per(n1.slice(1).reduce((a, b) => a + b, 0) - n0.slice(1).reduce((a, b) => a + b, 0)),
    },
  };
}

async function md5File(path: string): Promise<string> {
  const h = createHash('md5');
  const fh = await open(path, 'r');
  try {
    for await (const piece of fh.createReadStream()) h.update(piece as Buffer);
  } finally {
    await fh.close();
  }
  return h.digest('hex');
}

export async function main(args: string[]): Promise<void> {
  const size = parseSize(flag(args, '--size') ?? '1G', '--size');
  const small = Math.min(intArg(args, '--small', 4000), MAX_SMALL);
  const warmUpFlag = flag(args, '--warm-up');
  const warmUp = warmUpFlag === undefined ? Math.min(small, MAX_WARM_UP) : Math.min(Number(warmUpFlag), MAX_SMALL);
  if (!Number.isSafeInteger(warmUp) || warmUp < 0) throw new Error('--warm-up must be a whole number of PUTs (0 for none)');
  const inflight = intArg(args, '--inflight', 32);
  const passes = Math.min(Math.max(1, intArg(args, '--get-passes', 3)), MAX_GET_PASSES);
  const json = args.includes('--json');
  const withSmall = !args.includes('--no-small');
  const withAwsCli = !args.includes('--no-aws-cli');
  const withLarge = !args.includes('--no-large');
  const dir = await mkdtemp(join(tmpdir(), 'tessera-bench-s3-'));
  const profDir = flag(args, '--cpu-prof');
  profiling = profDir !== undefined;
  const s3 = await startS3Cluster({ nodes: 3, ...(profDir !== undefined ? { execArgv: ['--cpu-prof', `--cpu-prof-dir=${profDir}`] } : {}) });
  try {
    const key = await s3.createKey('bench');
    const n0 = s3.cluster.node(0);
    // Each client puts bytes of its own: chunks are content-addressed, so a second put of the same
    // bytes would only reference the chunks the first one stored, and look twice as fast.
    const freshSource = async (name: string): Promise<{ path: string; md5: string }> => {
      const path = join(dir, name);
      const fh = await open(path, 'w');
      for await (const piece of randomStream(size)) await fh.write(piece);
      await fh.sync();
      await fh.close();
      return { path, md5: await md5File(path) };
    };
    const checkOutput = async (source: { md5: string }, out: string, what: string) => {
      if ((await md5File(out)) !== source.md5) throw new Error(`${what} returned other bytes`);
      await rm(out);
    };
    const checkAndDrop = async (source: { path: string; md5: string }, out: string, what: string) => {
      await checkOutput(source, out, what);
      await rm(source.path);
    };
    const cli = [process.execPath, ...nodeRuntimeArgs(), CLI_PATH];
    const cliOptions = { env: withMallocEnv({ ...process.env }) as Record<string, string>, timeoutMs: 30 * 60_000 };
    const tessera = (...a: string[]) => mustRun(cli[0]!, [...cli.slice(1), ...a, '--api', n0.api, '--data', n0.dataDir], cliOptions);
    // Standard output on /dev/null, which `tessera get` writes with plain writes of whole pieces.
    const tesseraToDevNull = (...a: string[]) => mustRun('/bin/sh', ['-c', 'exec "$@" > /dev/null', 'sh', ...cli, ...a, '--api', n0.api, '--data', n0.dataDir], cliOptions);
    const pids = s3.cluster.nodes.map((n) => n.proc?.pid).filter((p): p is number => p !== undefined);
    /** One GET of an object to `out` (undefined: its body dropped), checked and removed. */
    const timedGet = async (step: string, source: { md5: string }, out: string | undefined, what: string, get: () => Promise<unknown>): Promise<Timed> => {
      const t = await timed(pids, step, get);
      if (out !== undefined) await checkOutput(source, out, what);
      return t;
    };
    /** GETS_PER_STEP GETs in a row; their mean. */
    const timedGets = async (step: string, source: { md5: string }, out: string | undefined, what: string, get: () => Promise<unknown>): Promise<Timed> => {
      const ts: Timed[] = [];
      for (let i = 1; i <= GETS_PER_STEP; i++) ts.push(await timedGet(`${step}-${i}`, source, out, what, get));
      return meanTimed(ts);
    };
    if (profDir !== undefined) process.stderr.write(`profiles in ${profDir}; node pids ${pids.join(' ')} (the first serves S3)\n`);
    // Each S3 client's steps run between two native rounds and are compared with their mean: on
    // this machine a put costs the nodes more kernel time the more the run has written before it
    // (page-cache copies into memory not touched yet: 1.1 ms/MiB of system time per node for the
    // first 512 MiB, 2.6 for the third), so a native round measured only first, on empty nodes,
    // made every later S3 put look about 3 ms/MiB dearer than it was.
    const nativeRound = async (n: number) => {
      let fileId = '';
      const src = await freshSource(`native${n}.in`);
      const put = await timed(pids, `native-put-${n}`, async () => {
        fileId = (JSON.parse((await tessera('put', src.path, '-q', '--json')).stdout) as { fileId: string }).fileId;
      });
      const get = await timedGets(`native-get-${n}`, src, join(dir, 'native.out'), 'tessera get', () => tessera('get', fileId, '-q', '-o', join(dir, 'native.out')));
      await rm(src.path);
      // A named put makes an object with an ETag, so it hashes the body with MD5 as every S3 PUT
      // must (about 1.5 CPU-ms per MiB here); the put above stores a file no key names, without it.
      const namedSrc = await freshSource(`named${n}.in`);
      const named = await timed(pids, `native-named-put-${n}`, () => tessera('put', namedSrc.path, '--name', `bench-named-${n}`, '-q'));
      await rm(namedSrc.path);
      return { put, get, named, fileId, md5: src.md5 };
    };
    const creds: S3Creds = { endpoint: `${s3.host}:${s3.port}`, accessKeyId: key.accessKeyId, secret: key.secretKey };
    const largeSteps = async () => {
      const natives = [await nativeRound(1)];

      const env = awsEnv(key, dir);
      await writeFile(env.AWS_CONFIG_FILE!, '[default]\nregion = us-east-1\n');
      const aws = (...a: string[]) => mustRun('/usr/bin/aws', ['--endpoint-url', s3.endpoint, ...a], { env, timeoutMs: 30 * 60_000 });
      await aws('s3', 'mb', 's3://bench');
      const sdk = await sdkTransfers(s3.endpoint, key);
      // As many PUTs as the native rounds around them hold (one each), of fresh bytes under keys
      // of their own (an overwrite would add the old object's removal); the last one is read back.
      const sdkPuts: Timed[] = [];
      let sdkSrc = { path: '', md5: '' };
      for (let i = 1; i <= SDK_PUTS; i++) {
        if (i > 1) await rm(sdkSrc.path);
        sdkSrc = await freshSource(`sdk${i}.in`);
        const from = sdkSrc.path;
        sdkPuts.push(await timed(pids, `sdk-put-${i}`, () => sdk.put(from, 'bench', `large-sdk-${i}`, size)));
      }
      const sdkPut = meanTimed(sdkPuts);
      const sdkKey = `large-sdk-${SDK_PUTS}`;
      // The SDK's GETs are compared with native gets of the first round's file taken in turn with
      // them, GETS_PER_STEP of each in the order SDK, native, native, SDK, ...: both sides see
      // the same moments of a machine whose load drifts, and neither is always the first GET
      // after the PUT (which came out slower for both clients).
      const first = natives[0]!;
      const nativeOut = join(dir, 'native.out');
      const sdkOut = join(dir, 'sdk.out');
      const inTurn = async (native: (i: number) => Promise<Timed>, viaSdk: (i: number) => Promise<Timed>) => {
        const n: Timed[] = [];
        const k: Timed[] = [];
        for (let i = 0; i < GETS_PER_STEP; i++) {
          if (i % 2 === 0) k.push(await viaSdk(i));
          n.push(await native(i));
          if (i % 2 === 1) k.push(await viaSdk(i));
        }
        return { native: meanTimed(n), sdk: meanTimed(k) };
      };
      const getsInTurn = await inTurn(
        (i) => timedGet(`native-get-in-turn-${i}`, first, nativeOut, 'tessera get', () => tessera('get', first.fileId, '-q', '-o', nativeOut)),
        (i) => timedGet(`sdk-get-${i}`, sdkSrc, sdkOut, 'the SDK GET', () => sdk.get('bench', sdkKey, sdkOut)),
      );
      await rm(sdkSrc.path);
      const droppedInTurn = await inTurn(
        (i) => timedGet(`native-get-dropped-${i}`, first, undefined, 'tessera get', () => tesseraToDevNull('get', first.fileId, '-q')),
        (i) => timedGet(`sdk-get-dropped-${i}`, sdkSrc, undefined, 'the SDK GET', async () => {
          const bytes = await sdk.getDropped('bench', sdkKey);
          if (bytes !== size) throw new Error(`the SDK GET read ${bytes} bytes of a ${size}-byte object`);
        }),
      );
      const sdkGet = getsInTurn.sdk;
      const sdkGetDropped = droppedInTurn.sdk;
      sdk.close();
      natives.push(await nativeRound(2));
      const around = (i: number) => ({
        put: meanTimed([natives[i]!.put, natives[i + 1]!.put]),
        get: meanTimed([natives[i]!.get, natives[i + 1]!.get]),
        named: meanTimed([natives[i]!.named, natives[i + 1]!.named]),
      });
      const sdkBase = around(0);

      const skipped: Timed = { ms: NaN, clientCpuMs: NaN, serverCpuMs: NaN, s3NodeCpuMs: NaN };
      let s3Put = skipped;
      let s3Get = skipped;
      let awsBase = { put: skipped, get: skipped, named: skipped };
      if (withAwsCli) {
        const awsSrc = await freshSource('aws.in');
        s3Put = await timed(pids, 'awscli-put', () => aws('s3', 'cp', '--no-progress', awsSrc.path, 's3://bench/large'));
        s3Get = await timed(pids, 'awscli-get', () => aws('s3', 'cp', '--no-progress', 's3://bench/large', join(dir, 's3.out')));
        await checkAndDrop(awsSrc, join(dir, 's3.out'), 'the S3 GET');
        natives.push(await nativeRound(3));
        awsBase = around(1);
      }
      const nativePut = meanTimed(natives.map((r) => r.put));
      const nativeGet = meanTimed(natives.map((r) => r.get));
      const nativeNamedPut = meanTimed(natives.map((r) => r.named));
      return { natives, nativePut, nativeGet, nativeNamedPut, s3Put, s3Get, awsBase, sdkPut, sdkGet, sdkGetDropped, sdkBase, getsInTurn, droppedInTurn };
    };
    const big = withLarge ? await largeSteps() : undefined;
    if (!withLarge) {
      const made = await s3Request(creds, { method: 'PUT', path: '/bench' });
      if (made.status !== 200) throw new Error(`CreateBucket answered ${made.status}`);
    }

    // Signed in this process (UNSIGNED-PAYLOAD, as SDKs send over TLS), over the global keep-alive agent.
    const body = randomBytes(OBJECT_BYTES);
    let failures = 0;
    await rate(withSmall ? warmUp : 0, inflight, async (i) => {
      const r = await s3Request(creds, { method: 'PUT', path: `/bench/warm-up/${i}`, body, payloadHash: UNSIGNED_PAYLOAD });
      if (r.status !== 200) failures++;
    });
    // The PUT phase on the monotonic clock V8's profiles use, to cut it out of the nodes' profiles.
    const putBegan = process.hrtime.bigint() / 1000n;
    const puts = await perOp(pids, () => rate(withSmall ? small : 0, inflight, async (i) => {
      const r = await s3Request(creds, { method: 'PUT', path: `/bench/small/${i}`, body, payloadHash: UNSIGNED_PAYLOAD });
      if (r.status !== 200) failures++;
    }));
    const putEnded = process.hrtime.bigint() / 1000n;
    // How the PUTs' table writes were coalesced: batches the nodes sent, transactions the holders made.
    const statuses = await Promise.all(s3.cluster.nodes.map((n) => n.client.status()));
    const sum = (xs: Array<{ batches?: number; commits?: number; entries?: number; jobs?: number } | undefined>, k: 'batches' | 'commits' | 'entries' | 'jobs') => xs.reduce((a, x) => a + (x?.[k] ?? 0), 0);
    const putBatches = { batches: sum(statuses.map((st) => st.metadata?.writeBatches), 'batches'), entries: sum(statuses.map((st) => st.metadata?.writeBatches), 'entries'), commits: sum(statuses.map((st) => st.metadata?.storeCommits), 'commits') };
    if (profDir !== undefined) process.stderr.write(`4 KiB PUT phase: monotonic µs ${putBegan}-${putEnded}\n`);
    // Each object is read `passes` times: one pass of 2,000 GETs lasts well under a second, so it
    // measures the nodes' warm-up as much as their steady rate; the first pass is printed apart.
    let firstPass = 0;
    const gets = await perOp(pids, async () => {
      const began = Date.now();
      const getOne = async (i: number) => {
        const r = await s3Request(creds, { method: 'GET', path: `/bench/small/${i % puts.done}`, payloadHash: UNSIGNED_PAYLOAD });
        if (r.status !== 200 || r.body.length !== OBJECT_BYTES) failures++;
      };
      const first = await rate(puts.done, inflight, getOne);
      firstPass = first.perSecond;
      const rest = passes > 1 ? await rate(puts.done * (passes - 1), inflight, getOne) : { done: 0 };
      const done = first.done + rest.done;
      return { done, perSecond: (done * 1000) / (Date.now() - began) };
    });

    const mbps = (t: Timed) => size / 2 ** 20 / (t.ms / 1000);
    // CPU milliseconds per MiB, client and nodes apart: on two shared cores, whose work bounds a step.
    const cpu = (t: Timed) => ({ clientMsPerMiB: t.clientCpuMs / (size / 2 ** 20), serverMsPerMiB: t.serverCpuMs / (size / 2 ** 20), s3NodeMsPerMiB: t.s3NodeCpuMs / (size / 2 ** 20) });
    const largeResult = big && {
      native: { putMs: big.nativePut.ms, getMs: big.nativeGet.ms, putMiBps: mbps(big.nativePut), getMiBps: mbps(big.nativeGet), putCpu: cpu(big.nativePut), getCpu: cpu(big.nativeGet), rounds: big.natives.map((r) => ({ putMiBps: mbps(r.put), getMiBps: mbps(r.get), namedPutMiBps: mbps(r.named) })) },
      // Native gets taken in turn with the SDK's, to a file and to /dev/null.
      nativeInTurn: { getMiBps: mbps(big.getsInTurn.native), getDroppedMiBps: mbps(big.droppedInTurn.native), getCpu: cpu(big.getsInTurn.native), getDroppedCpu: cpu(big.droppedInTurn.native) },
      nativeNamed: { putMs: big.nativeNamedPut.ms, putMiBps: mbps(big.nativeNamedPut), putCpu: cpu(big.nativeNamedPut) },
      s3: { putMs: big.s3Put.ms, getMs: big.s3Get.ms, putMiBps: mbps(big.s3Put), getMiBps: mbps(big.s3Get), putCpu: cpu(big.s3Put), getCpu: cpu(big.s3Get) },
      sdk: { putMs: big.sdkPut.ms, getMs: big.sdkGet.ms, putMiBps: mbps(big.sdkPut), getMiBps: mbps(big.sdkGet), getDroppedMiBps: mbps(big.sdkGetDropped), putCpu: cpu(big.sdkPut), getCpu: cpu(big.sdkGet), getDroppedCpu: cpu(big.sdkGetDropped) },
      // Each against the native rounds just before and just after it; `put` against unnamed puts.
      ratios: { put: big.awsBase.put.ms / big.s3Put.ms, get: big.awsBase.get.ms / big.s3Get.ms },
      sdkRatios: { put: big.sdkBase.put.ms / big.sdkPut.ms, get: big.getsInTurn.native.ms / big.sdkGet.ms, getDropped: big.droppedInTurn.native.ms / big.sdkGetDropped.ms },
      // The PUTs against named native puts, the goal's baseline: the same work on the node, an object with its MD5.
      namedPutRatios: { awsCli: big.awsBase.named.ms / big.s3Put.ms, sdk: big.sdkBase.named.ms / big.sdkPut.ms },
    };
    const result = {
      size,
      ...largeResult,
      small: { objects: puts.done, warmUpPuts: withSmall ? warmUp : 0, tableWrites: putBatches, putPerSecond: puts.perSecond, getPerSecond: gets.perSecond, getPasses: passes, firstPassGetPerSecond: firstPass, inflight, failures, putCpuUs: puts.cpuUs, getCpuUs: gets.cpuUs },
    };
    if (json) {
      process.stdout.write(JSON.stringify(result, null, 2) + '\n');
      return;
    }
    const verdict = (ok: boolean) => (ok ? 'meets' : 'below');
    const us = (c: OpCpu) => `${c.client.toFixed(0)} + ${c.s3Node.toFixed(0)} + ${c.otherNodes.toFixed(0)}`;
    const c = (x: { clientMsPerMiB: number; serverMsPerMiB: number; s3NodeMsPerMiB: number }) => `${x.clientMsPerMiB.toFixed(1)}+${x.serverMsPerMiB.toFixed(1)} (node 0 ${x.s3NodeMsPerMiB.toFixed(1)})`;
    process.stdout.write(
      [
        `S3 benchmark, 3 local disk nodes, R=3${largeResult ? `; object of ${formatBytes(size)}` : ' (large-object steps skipped)'}`,
        ...(largeResult ? [
          `  native  put ${largeResult.native.putMiBps.toFixed(1)} MiB/s   get ${largeResult.native.getMiBps.toFixed(1)} MiB/s   (tessera put/get; mean of rounds ${largeResult.native.rounds.map((r) => `${r.putMiBps.toFixed(0)}/${r.getMiBps.toFixed(0)}`).join(', ')}, one before and one after each S3 client)`,
          `  aws-cli put ${largeResult.s3.putMiBps.toFixed(1)} MiB/s   get ${largeResult.s3.getMiBps.toFixed(1)} MiB/s   (aws s3 cp, its defaults: 8 MiB parts, 10 requests at once)`,
          `  SDK     put ${largeResult.sdk.putMiBps.toFixed(1)} MiB/s   get ${largeResult.sdk.getMiBps.toFixed(1)} MiB/s   (@aws-sdk/client-s3: PutObject, GetObject written as tessera get -o writes, with one fsync)`,
          `  goal    SDK put ${largeResult.namedPutRatios.sdk.toFixed(2)}× of a named native put (${largeResult.nativeNamed.putMiBps.toFixed(1)} MiB/s: an object with its ETag's MD5, as every S3 PUT makes)   get ${largeResult.sdkRatios.get.toFixed(2)}× of native get -o taken in turn with it (${largeResult.nativeInTurn.getMiBps.toFixed(1)} MiB/s)   (goal ≥ ${LARGE_GOAL}: put ${verdict(largeResult.namedPutRatios.sdk >= LARGE_GOAL)}, get ${verdict(largeResult.sdkRatios.get >= LARGE_GOAL)})`,
          `  also    SDK put ${largeResult.sdkRatios.put.toFixed(2)}× of an unnamed native put (no MD5, no key);   aws-cli put ${largeResult.namedPutRatios.awsCli.toFixed(2)}× named, ${largeResult.ratios.put.toFixed(2)}× unnamed, get ${largeResult.ratios.get.toFixed(2)}×`,
          `  to /dev/null (no disk on the client), in turn: native get ${largeResult.nativeInTurn.getDroppedMiBps.toFixed(1)} MiB/s, SDK get ${largeResult.sdk.getDroppedMiBps.toFixed(1)} MiB/s: ${largeResult.sdkRatios.getDropped.toFixed(2)}×`,
          `  CPU ms/MiB client+nodes (of which node 0, the S3 node): native put ${c(largeResult.native.putCpu)}, named ${c(largeResult.nativeNamed.putCpu)} get ${c(largeResult.native.getCpu)}; aws-cli put ${c(largeResult.s3.putCpu)} get ${c(largeResult.s3.getCpu)}; SDK put ${c(largeResult.sdk.putCpu)} get ${c(largeResult.sdk.getCpu)}; native get in turn ${c(largeResult.nativeInTurn.getCpu)}; to /dev/null native get ${c(largeResult.nativeInTurn.getDroppedCpu)} SDK get ${c(largeResult.sdk.getDroppedCpu)}`,
        ] : []),
        `  ${OBJECT_BYTES / 1024} KiB objects, ${inflight} in flight, ${puts.done} each after ${withSmall ? warmUp : 0} PUTs not counted: PUT ${puts.perSecond.toFixed(0)}/s (goal ${PUT_RATE_GOAL}: ${verdict(puts.perSecond >= PUT_RATE_GOAL)}), GET ${gets.perSecond.toFixed(0)}/s over ${passes} passes (goal ${GET_RATE_GOAL}: ${verdict(gets.perSecond >= GET_RATE_GOAL)}; first pass ${firstPass.toFixed(0)}/s), ${failures} failed`,
        `  CPU µs per 4 KiB op, client + S3 node + other nodes: PUT ${us(puts.cpuUs)}, GET ${us(gets.cpuUs)}`,
        `  table writes up to the end of the PUTs: ${putBatches.entries} entries in ${putBatches.batches} batches (${(putBatches.entries / Math.max(1, putBatches.batches)).toFixed(1)} on average), ${putBatches.commits} transactions on the 3 holders`,
        '',
      ].join('\n'),
    );
    if (failures > 0) process.exitCode = 1;
  } finally {
    await s3.destroy();
    await rm(dir, { recursive: true, force: true });
  }
}
