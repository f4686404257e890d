/**
 * Receiving side of the rpc benchmark, run as its own process: an RPC transport whose handler
 * discards request payloads, and a raw TLS 1.3 sink for the baseline. Prints its ports as one
 * JSON line on stdout, then serves until stdin closes. A second transport offers the bulk plane
 * for 'sink', and a plain TCP sink is the floor a bulk connection could reach.
 */
import net from 'node:net';
import tls from 'node:tls';
import { silentLogger } from '../src/log.js';
import { generateCredentials } from '../src/net/credentials.js';
import { Transport } from '../src/net/transport.js';
import { ownCpuMicros } from './cpu-time.js';

/**
 * Raw baseline protocol: u64 byte count, then that many bytes; the sink answers with the CPU
 * microseconds it spent receiving them (u64), so the bench can tell what one TLS hop costs.
 */
function rawSink(key: string, cert: string, plain = false): Promise<net.Server> {
  const serve = (sock: net.Socket) => {
    let expected = -1;
    let got = 0;
    let head = Buffer.alloc(0);
    let cpu0 = 0;
    sock.on('data', (chunk: Buffer) => {
      if (expected < 0) {
        if (head.length === 0) cpu0 = ownCpuMicros();
        head = Buffer.concat([head, chunk]);
        if (head.length < 8) return;
        expected = Number(head.readBigUInt64BE(0));
        got = head.length - 8;
      } else {
        got += chunk.length;
      }
      if (got >= expected) {
        const ack = Buffer.alloc(8);
        ack.writeBigUInt64BE(BigInt(Math.max(0, Math.round(ownCpuMicros() - cpu0))));
        sock.write(ack);
        expected = -1;
        got = 0;
        head = Buffer.alloc(0);
      }
    });
    sock.on('error', () => {});
  };
  const server = plain
    ? net.createServer({ highWaterMark: 1 << 20 }, serve)
    : tls.createServer({ key, cert, minVersion: 'TLSv1.3', highWaterMark: 1 << 20 } as tls.TlsOptions, serve);
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

async function run(): Promise<void> {
  const secretHex = process.env.TESSERA_BENCH_SECRET;
  if (!secretHex) throw new Error('TESSERA_BENCH_SECRET is not set; this process is started by bench/rpc.ts');
  const creds = await generateCredentials();
  // 'cpu' answers this process's CPU time so far: the bench's measure of the receiving side.
  const transport = (bulk: boolean) =>
    new Transport({
      credentials: creds,
      clusterId: 'bench',
      clusterSecret: Buffer.from(secretHex, 'hex'),
      host: '127.0.0.1',
      port: 0,
      logger: silentLogger,
      handler: async (req) => ({ body: req.method === 'cpu' ? ownCpuMicros() : req.payload.length }),
      ...(bulk ? { bulkPlane: { requests: ['sink'], replies: [] } } : {}),
    });
  const t = transport(false);
  const tb = transport(true);
  const { port } = await t.start();
  const { port: bulkPort } = await tb.start();
  const raw = await rawSink(creds.privateKeyPem, creds.certificatePem);
  const tcp = await rawSink('', '', true);
  const rawPort = (raw.address() as { port: number }).port;
  const tcpPort = (tcp.address() as { port: number }).port;
  process.stdout.write(`${JSON.stringify({ rpcPort: port, bulkPort, rawPort, tcpPort })}\n`);
  process.stdin.resume();
  process.stdin.on('end', () => {
    void Promise.all([t.close(), tb.close()]).then(() => {
      raw.close();
      tcp.close();
      process.exit(0);
    });
  });
}

void run();
