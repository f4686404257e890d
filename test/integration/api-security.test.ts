/**
 * The API's boundary against real node processes: HTTPS with the self-signed certificate pinned
 * by the CLI from the data directory, reads that need the token on loopback too, a stalled
 * download cut off by the idle timeout, and the cap on concurrent transfers answering 503.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { request, type ClientRequest, type IncomingMessage } from 'node:http';
import { join } from 'node:path';
import { CLI_PATH, LocalCluster, waitFor } from '../../src/cli/local-cluster.js';
import { generateCredentials } from '../../src/net/credentials.js';

function tessera(args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, [CLI_PATH, ...args], {
    timeout: 60_000, maxBuffer: 64 << 20, env: { ...process.env, TESSERA_API: '', TESSERA_TOKEN: '', TESSERA_API_CERT: '', ...env },
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr.toString('utf8') };
}

function get(api: string, path: string, headers: Record<string, string> = {}): Promise<{ req: ClientRequest; res: IncomingMessage }> {
  const [host, port] = api.split(':') as [string, string];
  return new Promise((resolve, reject) => {
    const req = request({ host, port: Number(port), path, headers }, (res) => resolve({ req, res }));
    req.on('error', reject);
    req.end();
  });
}

async function drain(res: IncomingMessage): Promise<string> {
  let text = '';
  for await (const c of res) text += (c as Buffer).toString('utf8');
  return text;
}

test('HTTPS through the CLI with the certificate pinned from the data directory; another certificate is refused', async (t) => {
  const cluster = await LocalCluster.create({ nodes: 1, memory: true, logLevel: 'warn', nodeArgs: ['--api-tls'] });
  t.after(() => cluster.destroy());
  const n = cluster.node(0);
  const status = tessera(['status', '--json', '--data', n.dataDir]);
  assert.equal(status.code, 0, status.stderr);
  assert.equal((JSON.parse(status.stdout.toString()) as { nodeId: string }).nodeId, n.nodeId);

  const content = randomBytes(300_000);
  const src = join(cluster.dir, 'in.bin');
  await writeFile(src, content);
  const put = tessera(['put', src, '--name', 'tls.bin', '--replicas', '1', '--data', n.dataDir]);
  assert.equal(put.code, 0, put.stderr);
  const got = tessera(['get', 'tls.bin', '--data', n.dataDir]);
  assert.equal(got.code, 0, got.stderr);
  assert.ok(Buffer.compare(got.stdout, content) === 0, 'the file came back byte for byte over HTTPS');

  // Plain HTTP to the HTTPS port gets nothing useful.
  await assert.rejects(get(n.api, '/api/v1/status', { authorization: `Bearer ${n.apiToken}` }).then(({ res }) => {
    if (res.statusCode === 200) return;
    throw new Error(`status ${res.statusCode}`);
  }));

  // A client that pins another certificate refuses the node before sending its token.
  const other = await generateCredentials();
  const otherCert = join(cluster.dir, 'other-cert.pem');
  await writeFile(otherCert, other.certificatePem);
  const wrong = tessera(['status', '--api', `https://${n.api}`, '--token', n.apiToken], { TESSERA_API_CERT: otherCert });
  assert.notEqual(wrong.code, 0);
  assert.match(wrong.stderr, /certificate|self-signed|verify/i);
});

test('reads need the token on loopback; a stalled download is cut off; the transfer cap answers 503', async (t) => {
  const cluster = await LocalCluster.create({ nodes: 1, memory: true, logLevel: 'info', nodeArgs: ['--api-idle-timeout-ms', '1500', '--api-max-transfers', '2'] });
  t.after(() => cluster.destroy());
  const n = cluster.node(0);
  const auth = { authorization: `Bearer ${n.apiToken}` };

  const anon = await get(n.api, '/api/v1/status');
  assert.equal(anon.res.statusCode, 401);
  assert.match(await drain(anon.res), /AUTH/);
  const withToken = await get(n.api, '/api/v1/status', auth);
  assert.equal(withToken.res.statusCode, 200);
  await drain(withToken.res);
  // The CLI finds the token in the data directory.
  assert.equal(tessera(['status', '--data', n.dataDir]).code, 0);

  const size = 48 << 20;
  const content = randomBytes(size);
  const put = await n.client.put((async function* () {
    yield content;
  })(), { name: 'big.bin', replicas: 1 });
  assert.equal(put.size, size);

  // Two downloads that read a little and then stop reading: the cap is reached.
  const stalled = await Promise.all([0, 1].map(async () => {
    const { req, res } = await get(n.api, '/api/v1/files/big.bin', auth);
    assert.equal(res.statusCode, 200);
    let received = 0;
    await new Promise<void>((resolve) => res.once('data', (c: Buffer) => {
      received += c.length;
      resolve();
    }));
    res.pause();
    return { req, res, received };
  }));
  const third = await get(n.api, '/api/v1/files/big.bin', auth);
  assert.equal(third.res.statusCode, 503);
  assert.ok(third.res.headers['retry-after'], 'a 503 says when to retry');
  assert.match(await drain(third.res), /UNAVAILABLE.*uploads and downloads/);

  // Nothing moves on the stalled connections, so the node closes them after the idle timeout.
  const logPath = join(cluster.dir, 'node0.log');
  await waitFor('the node to close both stalled downloads', 20_000, async () =>
    (await readFile(logPath, 'utf8')).split('closing an API connection that moved no data').length - 1 >= 2);
  // What was already in flight still arrives, then the response ends short of the file.
  for (const s of stalled) {
    let total = s.received;
    s.res.resume();
    await new Promise<void>((resolve) => {
      s.res.on('data', (c: Buffer) => (total += c.length));
      s.res.once('close', () => resolve());
      s.res.once('error', () => resolve());
    });
    assert.ok(total < size, `the stalled download ended after ${total} of ${size} bytes`);
  }

  // With the slots free again, a download goes through whole.
  const again = await get(n.api, '/api/v1/files/big.bin', auth);
  assert.equal(again.res.statusCode, 200);
  let total = 0;
  for await (const c of again.res) total += (c as Buffer).length;
  assert.equal(total, size);
});
