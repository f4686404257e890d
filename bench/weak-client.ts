/**
 * One client of the weak bench, run inside a host's network namespace (`ip netns exec`), so it
 * reaches that host's API over the host's own loopback and none of its transfer crosses the
 * host's capped link: a device reading from and writing to its own node.
 *
 *   node weak-client.js put API TOKEN SIZE SEED   → {"fileId","sha","bytes","start","end"}
 *   node weak-client.js get API TOKEN FILEID      → {"sha","bytes","start","end"}
 *
 * start and end are wall-clock milliseconds around the transfer alone (not the process start-up),
 * so the bench can time clients that run at once against one clock.
 */
import { connect } from '../src/client/index.js';
import { API_CERT_ENV, drain, hashedSource } from '../test/netns/weak-cluster.js';

const IDLE_MS = 120_000;

const [op, api, token, arg, seed] = process.argv.slice(2);
if ((op !== 'put' && op !== 'get') || !api || !token || !arg) {
  process.stderr.write('usage: weak-client put API TOKEN SIZE SEED | get API TOKEN FILEID\n');
  process.exit(2);
}
const certPem = process.env[API_CERT_ENV];
const client = connect({ api, token, timeoutMs: IDLE_MS, ...(certPem ? { tls: { certPem } } : {}) });
if (op === 'put') {
  const size = Number(arg);
  if (!Number.isSafeInteger(size) || size < 1) throw new Error(`size must be a positive whole number of bytes, not ${arg}`);
  const src = hashedSource(size, Number(seed ?? 0));
  const start = Date.now();
  const r = await client.put(src.stream, { replicas: 3, quorum: 2, chunkSize: 1 << 20 });
  const end = Date.now();
  process.stdout.write(JSON.stringify({ fileId: r.fileId, sha: src.sha(), bytes: r.size, start, end }) + '\n');
} else {
  const start = Date.now();
  const res = await client.get(arg);
  const got = await drain(res.stream as AsyncIterable<Buffer>);
  process.stdout.write(JSON.stringify({ sha: got.sha, bytes: got.bytes, start, end: Date.now() }) + '\n');
}
