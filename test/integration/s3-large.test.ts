/**
 * 300 MiB through the S3 face, streamed both ways: the node serving S3 and the others stay under
 * a memory bound that could not hold the object, and the bytes come back identical.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { request } from 'node:http';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { CLI_PATH, LocalCluster, freePort } from '../../src/cli/local-cluster.js';
import { s3, sign, type S3Creds } from '../helpers/s3-client.js';
import { peakRss, seededBytes } from './files-support.js';
import { execFileSync } from 'node:child_process';

const SIZE = 300 << 20;
const RSS_LIMIT = 256 << 20;
const TIMING = ['--probe-interval', '300', '--suspicion-timeout', '1500'];

test('a 300 MiB PutObject and GetObject stream through the S3 node with every process under 256 MiB, byte-identical', { timeout: 300_000 }, async (t) => {
  const endpoint = `127.0.0.1:${await freePort()}`;
  const cluster = await LocalCluster.create({ nodes: 3, nodeArgs: TIMING, logLevel: 'warn', argsFor: (i) => (i === 0 ? ['--s3', endpoint] : []) });
  t.after(() => cluster.destroy());
  await cluster.waitForMembers({ alive: 3 });
  const key = JSON.parse(execFileSync(process.execPath, [CLI_PATH, 's3', 'key', 'create', '--data', cluster.node(0).dataDir, '--json'], { encoding: 'utf8' })) as { accessKeyId: string; secretKey: string };
  const creds: S3Creds = { endpoint, accessKeyId: key.accessKeyId, secret: key.secretKey };
  assert.equal((await s3(creds, { method: 'PUT', path: '/large' })).status, 200);

  const sent = createHash('md5');
  const s = sign(creds, { method: 'PUT', path: '/large/big.bin', payloadHash: 'UNSIGNED-PAYLOAD', headers: { 'content-length': String(SIZE) } });
  const put = await new Promise<{ status: number; etag: string | undefined; body: string }>((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: Number(endpoint.split(':')[1]), method: 'PUT', path: '/large/big.bin', headers: s.headers }, (res) => {
      let body = '';
      res.on('data', (b: Buffer) => (body += b.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, etag: res.headers.etag, body }));
    });
    req.on('error', reject);
    const source = Readable.from((async function* () {
      for await (const piece of seededBytes('s3-large', SIZE, 1 << 20)) {
        sent.update(piece);
        yield piece;
      }
    })());
    pipeline(source, req).catch(reject);
  });
  assert.equal(put.status, 200, put.body);
  const md5 = sent.digest('hex');
  assert.equal(put.etag, `"${md5}"`, 'the ETag is the MD5 of the bytes');

  // Read back through GetObject, hashing as it streams; the test holds no copy.
  const g = sign(creds, { method: 'GET', path: '/large/big.bin' });
  const got = await new Promise<{ status: number; md5: string; bytes: number; length: string | undefined }>((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: Number(endpoint.split(':')[1]), method: 'GET', path: '/large/big.bin', headers: g.headers }, (res) => {
      const h = createHash('md5');
      let bytes = 0;
      res.on('data', (b: Buffer) => {
        bytes += b.length;
        h.update(b);
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, md5: h.digest('hex'), bytes, length: res.headers['content-length'] }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
  assert.equal(got.status, 200);
  assert.equal(got.length, String(SIZE));
  assert.equal(got.bytes, SIZE);
  assert.equal(got.md5, md5, 'read back byte-identical');

  const peaks = await Promise.all(cluster.nodes.map((n) => peakRss(n.proc!.pid!)));
  t.diagnostic(`peak RSS: nodes ${peaks.map((p) => (p / 2 ** 20).toFixed(0)).join(', ')} MiB (node 0 serves S3)`);
  for (const [i, p] of peaks.entries()) assert.ok(p < RSS_LIMIT, `node ${i} peak RSS ${p} bytes is under ${RSS_LIMIT}`);
  const self = await peakRss(process.pid);
  assert.ok(self < RSS_LIMIT, `test process peak RSS ${self} is under ${RSS_LIMIT}`);
});
