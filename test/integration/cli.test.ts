/** The CLI's failure modes: one clear line on stderr and a meaningful non-zero exit code. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmod, mkdtemp, writeFile, stat, rm, mkdir } from 'node:fs/promises';
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

function tesseraWith(opts: { env?: Record<string, string>; input?: string }, ...args: string[]) {
  const r = spawnSync(process.execPath, [CLI_PATH, ...args], { encoding: 'utf8', timeout: 30_000, input: opts.input ?? '', env: { ...process.env, TESSERA_API: '', ...opts.env } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('init makes secret files 0600 in a 0700 dir, never prints the token as JSON, and refuses to overwrite', async () => {
  const dir = join(tmp, 'n1');
  // A directory that already exists with a loose mode is narrowed to its owner.
  await mkdir(dir, { mode: 0o755 });
  const r = tessera('init', '--data', dir, '--json');
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { nodeId: string; clusterId: string };
  assert.match(out.nodeId, /^[0-9a-f]{40}$/);
  assert.doesNotMatch(r.stdout, /tsrj1_/, 'init --json must not echo the join token');
  assert.equal((await stat(dir)).mode & 0o777, 0o700);
  for (const f of ['identity.json', 'cluster.json', 'api-token']) {
    assert.equal((await stat(join(dir, f))).mode & 0o777, 0o600, `${f} is 0600`);
  }
  assertOneLineError(tessera('init', '--data', dir), /already holds a node identity/);
  const token = tessera('token', '--data', dir).stdout.trim();
  assert.match(token, /^tsrj1_/);

  // Every way of passing the token joins the same cluster.
  const tokenFile = join(tmp, 'token.txt');
  await writeFile(tokenFile, token + '\n', { mode: 0o600 });
  const ways: Array<[string, ReturnType<typeof tessera>]> = [
    ['--join', tessera('init', '--data', join(tmp, 'n2'), '--join', token, '--json')],
    ['--join-file', tessera('init', '--data', join(tmp, 'n2f'), '--join-file', tokenFile, '--json')],
    ['stdin', tesseraWith({ input: token + '\n' }, 'init', '--data', join(tmp, 'n2s'), '--join-file', '-', '--json')],
    ['env', tesseraWith({ env: { TESSERA_JOIN_TOKEN: token } }, 'init', '--data', join(tmp, 'n2e'), '--json')],
  ];
  for (const [how, joined] of ways) {
    assert.equal(joined.code, 0, `${how}: ${joined.stderr}`);
    assert.equal((JSON.parse(joined.stdout) as { clusterId: string }).clusterId, out.clusterId, how);
    assert.doesNotMatch(joined.stdout, /tsrj1_/, `${how}: the token is not echoed`);
  }
  assertOneLineError(tesseraWith({ env: { TESSERA_JOIN_TOKEN: token } }, 'init', '--data', join(tmp, 'n5'), '--join-file', tokenFile), /more than once/);
  assertOneLineError(tessera('init', '--data', join(tmp, 'n6'), '--join-file', join(tmp, 'missing')), /check the --join-file path/);
  assertOneLineError(tessera('init', '--data', join(tmp, 'n3'), '--join', 'tsrj1_garbage'), /join token is damaged/);
  assertOneLineError(tessera('init', '--data', join(tmp, 'n4'), '--join', 'hello'), /must start with 'tsrj1_'/);
});

test('a node refuses a data directory other users can read, naming the fix', async () => {
  const dir = join(tmp, 'loose');
  assert.equal(tessera('init', '--data', dir).code, 0);
  await chmod(dir, 0o750);
  assertOneLineError(tessera('node', '--data', dir), /accessible to other users .*chmod 700/);
  assertOneLineError(tessera('token', '--data', dir), /chmod 700/);
});

test('a data dir that does not exist, is a file, or holds a damaged identity', async () => {
  assertOneLineError(tessera('node', '--data', join(tmp, 'nope')), /does not exist.*tessera init/);
  const file = join(tmp, 'file');
  await writeFile(file, 'x');
  assertOneLineError(tessera('node', '--data', file), /not a directory/);
  const bad = join(tmp, 'bad');
  await mkdir(bad, { mode: 0o700 });
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
