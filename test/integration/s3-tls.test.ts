/**
 * S3 over HTTPS: with --api-tls (and by default beyond loopback) the S3 endpoint serves the API's
 * certificate; a client that pins it talks SigV4 over TLS, and plain HTTP gets no answer.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { CLI_PATH, LocalCluster, freePort } from '../../src/cli/local-cluster.js';
import { sign, type S3Creds } from '../helpers/s3-client.js';

const TIMING = ['--probe-interval', '300', '--suspicion-timeout', '1500'];

test('with --api-tls the S3 endpoint speaks HTTPS with the API certificate, and plain HTTP is not answered', { timeout: 120_000 }, async (t) => {
  const endpoint = `127.0.0.1:${await freePort()}`;
  const cluster = await LocalCluster.create({ nodes: 3, nodeArgs: TIMING, logLevel: 'warn', argsFor: (i) => (i === 0 ? ['--s3', endpoint, '--api-tls'] : []) });
  t.after(() => cluster.destroy());
  await cluster.waitForMembers({ alive: 3 });
  const runtime = JSON.parse(await readFile(join(cluster.node(0).dataDir, 'node.json'), 'utf8')) as { s3?: string; s3Scheme?: string };
  assert.equal(runtime.s3, endpoint);
  assert.equal(runtime.s3Scheme, 'https');
  const key = JSON.parse(execFileSync(process.execPath, [CLI_PATH, 's3', 'key', 'create', '--data', cluster.node(0).dataDir, '--json'], { encoding: 'utf8' })) as { accessKeyId: string; secretKey: string };
  const creds: S3Creds = { endpoint, accessKeyId: key.accessKeyId, secret: key.secretKey };
  const ca = await readFile(join(cluster.node(0).dataDir, 'api-cert.pem'), 'utf8');
  const port = Number(endpoint.split(':')[1]);

  const s = sign(creds, { method: 'PUT', path: '/tls-bucket' });
  const status = await new Promise<number>((resolve, reject) => {
    // The self-signed certificate is pinned: trusted as the only CA, its name not checked (as the CLI does).
    const req = httpsRequest({ host: '127.0.0.1', port, method: 'PUT', path: '/tls-bucket', headers: s.headers, ca, checkServerIdentity: () => undefined }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end();
  });
  assert.equal(status, 200);

  const plain = await new Promise<string>((resolve) => {
    const req = httpRequest({ host: '127.0.0.1', port, method: 'GET', path: '/', headers: sign(creds, { method: 'GET', path: '/' }).headers }, (res) => resolve(`answered ${res.statusCode}`));
    req.setTimeout(10_000, () => req.destroy(new Error('timeout')));
    req.on('error', (e) => resolve(`refused: ${e.message}`));
    req.end();
  });
  assert.match(plain, /^refused/, 'plain HTTP to the HTTPS endpoint gets no S3 answer');
});
