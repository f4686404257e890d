/** The CLI's failure modes: one clear line on stderr and a meaningful non-zero exit code. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, writeFile, stat, rm, mkdir } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI_PATH } from '../../src/cli/local-cluster.js';

function tessera(...args: string[]) {
  const r = spawnSync(process.execPath, [CLI_PATH, ...args], { encoding: 'utf8', timeout: 30_000, env: { ...process.env, TESSERA_API: '' } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function assertOneLineError(r: { code: number | null; stderr: string }, pattern: RegExp) {
  assert.notEqual(r.code, 0, 'non-zero exit');
  const lines = r.stderr.trim().split('\n');
  assert.ok(lines.length <= 2, `at most one line of error (plus a suggestion), got:\n${r.stderr}`);
  assert.match(r.stderr, pattern);
}

const tmp = await mkdtemp(join(tmpdir(), 'tessera-cli-'));
test.after(() => rm(tmp, { recursive: true, force: true }));

test('unknown command', () => {
  const r = tessera('frobnicate');
  assertOneLineError(r, /unknown command 'frobnicate'/);
  assert.equal(r.code, 2);
});

test('missing --data', () => {
  assertOneLineError(tessera('node'), /--data/);
  assertOneLineError(tessera('init'), /--data/);
});

test('init makes secret files 0600, prints a join token, and refuses to overwrite', async () => {
  const dir = join(tmp, 'n1');
  const r = tessera('init', '--data', dir, '--json');
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { nodeId: string; joinToken: string };
  assert.match(out.nodeId, /^[0-9a-f]{40}$/);
  for (const f of ['identity.json', 'cluster.json', 'api-token']) {
    assert.equal((await stat(join(dir, f))).mode & 0o777, 0o600, `${f} is 0600`);
  }
  assertOneLineError(tessera('init', '--data', dir), /already holds a node identity/);

  const joined = tessera('init', '--data', join(tmp, 'n2'), '--join', out.joinToken, '--json');
  assert.equal(joined.code, 0, joined.stderr);
  assert.equal((JSON.parse(joined.stdout) as { clusterId: string }).clusterId, JSON.parse(r.stdout).clusterId);
  assertOneLineError(tessera('init', '--data', join(tmp, 'n3'), '--join', 'tsrj1_garbage'), /join token is damaged/);
  assertOneLineError(tessera('init', '--data', join(tmp, 'n4'), '--join', 'hello'), /must start with 'tsrj1_'/);
});

test('a data dir that does not exist, is a file, or holds a damaged identity', async () => {
  assertOneLineError(tessera('node', '--data', join(tmp, 'nope')), /does not exist.*tessera init/);
  const file = join(tmp, 'file');
  await writeFile(file, 'x');
  assertOneLineError(tessera('node', '--data', file), /not a directory/);
  const bad = join(tmp, 'bad');
  await mkdir(bad);
  await writeFile(join(bad, 'identity.json'), '{not json');
  assertOneLineError(tessera('node', '--data', bad), /not valid JSON/);
});

test('bad flag values', () => {
  assertOneLineError(tessera('node', '--data', join(tmp, 'n1'), '--listen', 'nonsense'), /--listen 'nonsense' is not HOST:PORT/);
  assertOneLineError(tessera('node', '--data', join(tmp, 'n1'), '--quota', 'lots'), /--quota 'lots' is not a size/);
});

test('port in use', async () => {
  const blocker: Server = createServer();
  await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', () => r()));
  const port = (blocker.address() as { port: number }).port;
  try {
    const r = tessera('node', '--data', join(tmp, 'n1'), '--listen', `127.0.0.1:${port}`, '--api', '127.0.0.1:0', '--log-level', 'silent');
    assertOneLineError(r, new RegExp(`127\\.0\\.0\\.1:${port} is already in use`));
    const r2 = tessera('node', '--data', join(tmp, 'n1'), '--listen', '127.0.0.1:0', '--api', `127.0.0.1:${port}`, '--log-level', 'silent');
    assertOneLineError(r2, new RegExp(`API address 127\\.0\\.0\\.1:${port} is already in use`));
  } finally {
    blocker.close();
  }
});

test('a client command with no node to talk to', () => {
  const r = tessera('peers', '--api', '127.0.0.1:1');
  assertOneLineError(r, /no tessera node answers at 127\.0\.0\.1:1/);
  assert.equal(r.code, 9);
});
