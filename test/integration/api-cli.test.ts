/**
 * The CLI around the API: `tessera node` reading DATA/tessera.json with flags overriding it,
 * refusing a bad config with exit 2, `tessera dashboard` printing the address with the token in the
 * fragment, shell completion that completes, and `--help` with an example on every command.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI_PATH, freePort, waitFor } from '../../src/cli/local-cluster.js';
import { initDataDir, newClusterKeys } from '../../src/cluster/identity.js';

function cli(args: string[], input?: string): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI_PATH, ...args], { encoding: 'utf8', input, timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function getStatus(api: string, headers: Record<string, string> = {}): Promise<{ status: number; cors: string | undefined; body: string }> {
  const [host, port] = api.split(':') as [string, string];
  return new Promise((resolve, reject) => {
    const req = request({ host, port: Number(port), path: '/api/v1/status', headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, cors: res.headers['access-control-allow-origin'] as string | undefined, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

test('tessera node: settings from DATA/tessera.json, flags win, a bad file is refused', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'tessera-cfg-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const data = join(dir, 'n');
  const id = await initDataDir(data, newClusterKeys());
  const [peerPort, filePort, flagPort] = [await freePort(), await freePort(), await freePort()];
  const origin = 'http://ops.example.test';
  await writeFile(join(data, 'tessera.json'), JSON.stringify({
    listen: `127.0.0.1:${peerPort}`, api: `127.0.0.1:${filePort}`, memory: true, logLevel: 'warn', cors: origin, probeIntervalMs: 500,
  }));

  const proc = spawn(process.execPath, [CLI_PATH, 'node', '--data', data, '--api', `127.0.0.1:${flagPort}`], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  proc.stdout.on('data', (c: Buffer) => (output += c.toString()));
  proc.stderr.on('data', (c: Buffer) => (output += c.toString()));
  t.after(() => {
    if (proc.exitCode === null) proc.kill('SIGKILL');
  });
  const api = `127.0.0.1:${flagPort}`;
  const first = await waitFor(`the node to answer on ${api}`, 20_000, async () => {
    if (proc.exitCode !== null) throw new Error(`node exited: ${output}`);
    return getStatus(api, { origin, authorization: `Bearer ${id.apiToken}` });
  });
  const status = JSON.parse(first.body) as { nodeId: string; listen: string; store: { engine: string } };
  assert.equal(status.nodeId, id.credentials.nodeId);
  assert.equal(status.listen, `127.0.0.1:${peerPort}`, 'listen came from the file');
  assert.equal(status.store.engine, 'memory', 'memory came from the file');
  assert.equal(first.cors, origin, 'cors came from the file');
  await assert.rejects(getStatus(`127.0.0.1:${filePort}`), 'the --api flag overrode the file');

  const dash = cli(['dashboard', '--data', data, '--json']);
  assert.equal(dash.status, 0, dash.stderr);
  const d = JSON.parse(dash.stdout) as { url: string; api: string };
  assert.equal(d.api, api);
  const token = (await readFile(join(data, 'api-token'), 'utf8')).trim();
  assert.equal(d.url, `http://${api}/#token=${encodeURIComponent(token)}`);

  proc.kill('SIGTERM');
  await new Promise((r) => proc.once('exit', r));
  assert.equal(proc.exitCode, 0);
  assert.equal(cli(['dashboard', '--data', data]).status, 9, 'no running node: unavailable');

  const bad: Array<[unknown, RegExp]> = [
    [{ listen: 7400 }, /listen/],
    [{ lisen: '127.0.0.1:1' }, /known keys: listen/],
    [{ logLevel: 'loud' }, /logLevel/],
  ];
  for (const [config, message] of bad) {
    await writeFile(join(data, 'tessera.json'), JSON.stringify(config));
    const r = cli(['node', '--data', data, '--memory', '--api', '127.0.0.1:0', '--listen', '127.0.0.1:0']);
    assert.equal(r.status, 2, `${JSON.stringify(config)} → exit 2 (${r.stderr})`);
    assert.match(r.stderr, message);
  }
  await writeFile(join(data, 'tessera.json'), '{"listen": ');
  assert.match(cli(['node', '--data', data]).stderr, /not valid JSON/);
  await writeFile(join(data, 'tessera.json'), ' '.repeat(70_000));
  assert.match(cli(['node', '--data', data]).stderr, /over the/);
  const missing = cli(['node', '--data', data, '--config', join(dir, 'nope.json')]);
  assert.equal(missing.status, 3);
});

test('tessera completion: bash completes commands, subcommands and flags; zsh is produced', async (t) => {
  const script = cli(['completion', 'bash']);
  assert.equal(script.status, 0);
  const dir = await mkdtemp(join(tmpdir(), 'tessera-completion-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'tessera.bash');
  await writeFile(file, script.stdout);
  const complete = (words: string[]) => {
    const prog = `source "$1"; COMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}; _tessera; printf '%s\\n' "\${COMPREPLY[@]}"`;
    const r = spawnSync('bash', ['-c', prog, 'bash', file], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    return r.stdout.split('\n').filter(Boolean);
  };
  assert.deepEqual(complete(['tessera', 'vol']), ['volume']);
  assert.deepEqual(complete(['tessera', 'volume', 'cr']), ['create']);
  assert.ok(complete(['tessera', 'volume', 'create', '--la']).includes('--layout'));
  assert.ok(complete(['tessera', 'put', '--']).includes('--replicas'));
  assert.ok(complete(['tessera', '--data', '/tmp', 'sta']).includes('status'), 'flags before the command are skipped');
  const zsh = cli(['completion', 'zsh']);
  assert.equal(zsh.status, 0);
  assert.match(zsh.stdout, /^#compdef tessera/);
  assert.match(zsh.stdout, /'volume create'\)/);
  assert.equal(cli(['completion', 'fish']).status, 2);
});

function cliAsync(args: string[]): Promise<{ status: number | null; stdout: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [CLI_PATH, ...args], { stdio: ['ignore', 'pipe', 'ignore'] });
    let stdout = '';
    p.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    p.on('error', reject);
    p.on('close', (status) => resolve({ status, stdout }));
  });
}

test('every command has --help with an example, and client commands take --json', async () => {
  const commands = ['init', 'token', 'node', 'peers', 'status', 'put', 'get', 'rm', 'ls', 'stat', 'demo', 'volume', 'volume create', 'volume ls',
    'volume info', 'volume rm', 'volume replace', 'volume check', 'nbd', 'dashboard', 'completion'];
  const noJson = new Set(['volume', 'nbd']);
  const missing: string[] = [];
  // Two at a time: each is a fresh process that loads the whole CLI.
  const answers = new Map<string, { status: number | null; stdout: string }>();
  for (let i = 0; i < commands.length; i += 2) {
    const batch = commands.slice(i, i + 2);
    const rs = await Promise.all(batch.map((c) => cliAsync([...c.split(' '), '--help'])));
    batch.forEach((c, j) => answers.set(c, rs[j] as { status: number | null; stdout: string }));
  }
  for (const c of commands) {
    const r = answers.get(c) as { status: number | null; stdout: string };
    assert.equal(r.status, 0, `${c} --help exits 0`);
    if (!/Examples?:/.test(r.stdout)) missing.push(`${c}: no example`);
    if (!noJson.has(c) && !r.stdout.includes('--json')) missing.push(`${c}: no --json`);
  }
  assert.deepEqual(missing, []);
});
