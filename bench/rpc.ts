/**
 * RPC transport throughput and latency between two processes on loopback, against a raw TLS 1.3
 * stream between the same two processes measured in the same run; then the bulk plane (payloads
 * beside TLS on a plain TCP connection) against a raw TCP stream, with CPU per MiB on both ends.
 *   node dist/bench/main.js rpc [--mib 512] [--inflight 8] [--rounds 3]
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import net from 'node:net';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { silentLogger } from '../src/log.js';
import { generateCredentials } from '../src/net/credentials.js';
import { Transport } from '../src/net/transport.js';
import { ownCpuMicros } from './cpu-time.js';

const MIB = 1 << 20;
/** Hard ceiling on any one measured phase, so a broken peer cannot hang the run. */
const PHASE_DEADLINE_MS = 25_000;

function arg(args: string[], name: string, dflt: number): number {
  const i = args.indexOf(`--${name}`);
  const v = i >= 0 ? Number(args[i + 1]) : dflt;
  if (!Number.isFinite(v) || v <= 0) throw new Error(`--${name} must be a positive number`);
  return v;
}

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

async function rpcPhase(t: Transport, addr: string, payload: Buffer, count: number, inflight: number) {
  const peerCpu0 = (await t.call(addr, 'cpu', null)).body as number;
  const cpu0 = ownCpuMicros();
  const lat: number[] = [];
  let next = 0;
  const deadline = Date.now() + PHASE_DEADLINE_MS;
  const start = process.hrtime.bigint();
  const worker = async () => {
    while (next < count && Date.now() < deadline) {
      next++;
      const t0 = process.hrtime.bigint();
      const r = await t.call(addr, 'sink', null, payload);
      if (r.body !== payload.length) throw new Error(`peer saw ${String(r.body)} bytes, sent ${payload.length}`);
      lat.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
  };
  await Promise.all(Array.from({ length: inflight }, worker));
  const secs = Number(process.hrtime.bigint() - start) / 1e9;
  const senderMicros = ownCpuMicros() - cpu0;
  const receiverMicros = ((await t.call(addr, 'cpu', null)).body as number) - peerCpu0;
  const mib = (lat.length * payload.length) / MIB;
  lat.sort((a, b) => a - b);
  return {
    mbps: (lat.length * payload.length) / 1e6 / secs, p50: pct(lat, 50), p99: pct(lat, 99), calls: lat.length,
    senderMsPerMiB: senderMicros / 1000 / mib, receiverMsPerMiB: receiverMicros / 1000 / mib,
  };
}

interface RawResult {
  mbps: number;
  /** CPU milliseconds per MiB moved, on each end. */
  senderMsPerMiB: number;
  receiverMsPerMiB: number;
}

/** `key` empty: a plain TCP stream, the floor of what a bulk connection could cost. */
async function rawPhase(port: number, key: string, cert: string, payload: Buffer, count: number): Promise<RawResult> {
  const s = key === ''
    ? net.connect({ host: '127.0.0.1', port, highWaterMark: MIB } as net.NetConnectOpts)
    : tls.connect({ host: '127.0.0.1', port, key, cert, rejectUnauthorized: false, minVersion: 'TLSv1.3', highWaterMark: MIB } as tls.ConnectionOptions);
  await once(s, key === '' ? 'connect' : 'secureConnect');
  s.setNoDelay(true);
  const head = Buffer.alloc(8);
  head.writeBigUInt64BE(BigInt(count * payload.length));
  const ack = readExactly(s, 8);
  const cpu0 = ownCpuMicros();
  const start = process.hrtime.bigint();
  s.write(head);
  const deadline = Date.now() + PHASE_DEADLINE_MS;
  for (let i = 0; i < count && Date.now() < deadline; i++) {
    if (!s.write(payload)) await once(s, 'drain');
  }
  const receiverMicros = Number((await ack).readBigUInt64BE(0));
  const secs = Number(process.hrtime.bigint() - start) / 1e9;
  const senderMicros = ownCpuMicros() - cpu0;
  s.destroy();
  const mib = (count * payload.length) / MIB;
  return { mbps: (count * payload.length) / 1e6 / secs, senderMsPerMiB: senderMicros / 1000 / mib, receiverMsPerMiB: receiverMicros / 1000 / mib };
}

/** The next `n` bytes the socket receives. */
function readExactly(s: net.Socket, n: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let got = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      got = Buffer.concat([got, chunk]);
      if (got.length < n) return;
      s.off('data', onData);
      s.off('error', reject);
      resolve(got.subarray(0, n));
    };
    s.on('data', onData);
    s.once('error', reject);
  });
}

export async function main(args: string[]): Promise<void> {
  const mib = arg(args, 'mib', 512);
  const inflight = arg(args, 'inflight', 8);
  const rounds = arg(args, 'rounds', 3);
  const secret = randomBytes(32);
  const peerFile = fileURLToPath(new URL('./rpc-peer.js', import.meta.url));
  const child = spawn(process.execPath, [peerFile], {
    env: { ...process.env, TESSERA_BENCH_SECRET: secret.toString('hex') },
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  try {
    const lines = createInterface({ input: child.stdout! });
    const [first] = (await Promise.race([
      once(lines, 'line'),
      new Promise((_, rej) => setTimeout(() => rej(new Error('peer process did not start within 10 s')), 10_000).unref()),
    ])) as [string];
    const { rpcPort, bulkPort, rawPort, tcpPort } = JSON.parse(first) as { rpcPort: number; bulkPort: number; rawPort: number; tcpPort: number };
    const creds = await generateCredentials();
    const transport = (bulk: boolean) =>
      new Transport({
        credentials: creds,
        clusterId: 'bench',
        clusterSecret: secret,
        host: '127.0.0.1',
        port: 0,
        logger: silentLogger,
        handler: async () => ({}),
        ...(bulk ? { bulkPlane: { requests: ['sink'], replies: [] } } : {}),
      });
    const t = transport(false);
    const tb = transport(true);
    const addr = `127.0.0.1:${rpcPort}`;
    const bulkAddr = `127.0.0.1:${bulkPort}`;
    const payload = randomBytes(MIB);
    // Warm-up: connection, TLS session, JIT.
    await rpcPhase(t, addr, payload, 32, inflight);
    await rawPhase(rawPort, creds.privateKeyPem, creds.certificatePem, payload, 32);
    await rawPhase(tcpPort, '', '', payload, 32);
    await tb.call(bulkAddr, 'cpu', null);
    const bound = Date.now() + 5000;
    while (!tb.hasBulkTo(tb.peers[0]?.nodeId ?? '') && Date.now() < bound) await new Promise((r) => setTimeout(r, 10));
    if (!tb.hasBulkTo(tb.peers[0]?.nodeId ?? '')) throw new Error('the bulk connection was not bound within 5 s');
    await rpcPhase(tb, bulkAddr, payload, 32, inflight);

    // Alternating rounds, medians: the machine is shared and noisy, and a drift in load must
    // not land on one side of the ratio only.
    const raws: RawResult[] = [];
    const rpcs: Array<Awaited<ReturnType<typeof rpcPhase>>> = [];
    for (let r = 0; r < rounds; r++) {
      raws.push(await rawPhase(rawPort, creds.privateKeyPem, creds.certificatePem, payload, mib));
      rpcs.push(await rpcPhase(t, addr, payload, mib, inflight));
    }
    const raw = [...raws].sort((a, b) => a.mbps - b.mbps)[Math.floor(rounds / 2)]!;
    const rpc = [...rpcs].sort((a, b) => a.mbps - b.mbps)[Math.floor(rounds / 2)]!;
    const single = await rpcPhase(t, addr, payload, Math.min(mib, 128), 1);
    // The bulk plane against its floor and its ceiling, each the median of alternating rounds.
    const tcps: RawResult[] = [];
    const bulks: Array<Awaited<ReturnType<typeof rpcPhase>>> = [];
    for (let r = 0; r < rounds; r++) {
      tcps.push(await rawPhase(tcpPort, '', '', payload, mib));
      bulks.push(await rpcPhase(tb, bulkAddr, payload, mib, inflight));
    }
    const tcp = [...tcps].sort((a, b) => a.mbps - b.mbps)[Math.floor(rounds / 2)]!;
    const bulk = [...bulks].sort((a, b) => a.mbps - b.mbps)[Math.floor(rounds / 2)]!;
    if (tb.counters.bulkBytesOut < mib * MIB) throw new Error(`only ${tb.counters.bulkBytesOut} bytes went on the bulk plane`);
    await t.close();
    await tb.close();
    const cpu = (x: { senderMsPerMiB: number; receiverMsPerMiB: number }) =>
      `CPU per MiB: sender ${x.senderMsPerMiB.toFixed(2)} ms + receiver ${x.receiverMsPerMiB.toFixed(2)} ms = ${(x.senderMsPerMiB + x.receiverMsPerMiB).toFixed(2)} ms`;

    console.log(`rpc benchmark: ${mib} x 1 MiB request payloads, two processes on loopback, median of ${rounds} alternating rounds`);
    console.log(`  rounds raw ${raws.map((x) => x.mbps.toFixed(0)).join(' ')}  rpc ${rpcs.map((x) => x.mbps.toFixed(0)).join(' ')} MB/s`);
    console.log(`  raw TLS 1.3 stream          ${raw.mbps.toFixed(0)} MB/s   CPU per MiB: sender ${raw.senderMsPerMiB.toFixed(2)} ms + receiver ${raw.receiverMsPerMiB.toFixed(2)} ms = ${(raw.senderMsPerMiB + raw.receiverMsPerMiB).toFixed(2)} ms`);
    console.log(`  rpc, ${inflight} in flight          ${rpc.mbps.toFixed(0)} MB/s   p50 ${rpc.p50.toFixed(2)} ms   p99 ${rpc.p99.toFixed(2)} ms   (${rpc.calls} calls)   ${cpu(rpc)}`);
    console.log(`  rpc, 1 in flight            ${single.mbps.toFixed(0)} MB/s   p50 ${single.p50.toFixed(2)} ms   p99 ${single.p99.toFixed(2)} ms`);
    console.log(`  ratio rpc/raw               ${(rpc.mbps / raw.mbps).toFixed(2)}   (goal >= 0.80)`);
    console.log(`  raw TCP stream              ${tcp.mbps.toFixed(0)} MB/s   ${cpu(tcp)}`);
    console.log(`  rpc on the bulk plane, ${inflight} in flight ${bulk.mbps.toFixed(0)} MB/s   p50 ${bulk.p50.toFixed(2)} ms   p99 ${bulk.p99.toFixed(2)} ms   ${cpu(bulk)}`);
    console.log(`  rounds tcp ${tcps.map((x) => x.mbps.toFixed(0)).join(' ')}  bulk ${bulks.map((x) => x.mbps.toFixed(0)).join(' ')} MB/s`);
    const total = (x: { senderMsPerMiB: number; receiverMsPerMiB: number }) => x.senderMsPerMiB + x.receiverMsPerMiB;
    console.log(`  CPU per MiB, bulk plane vs raw TLS ${(total(bulk) / total(raw)).toFixed(2)}×, vs raw TCP ${(total(bulk) / total(tcp)).toFixed(2)}×, vs rpc over TLS ${(total(bulk) / total(rpc)).toFixed(2)}×`);
  } finally {
    child.stdin!.end();
    const exited = once(child, 'exit');
    const timer = setTimeout(() => child.kill(), 5000);
    await exited;
    clearTimeout(timer);
  }
}
