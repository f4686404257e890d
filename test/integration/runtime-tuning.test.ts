import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI_PATH, LocalCluster, freePort } from '../../src/cli/local-cluster.js';
import { initDataDir, newClusterKeys } from '../../src/cluster/identity.js';
import { MALLOC_ENV, NODE_FLAGS, missingTuning, withMallocEnv } from '../../src/cli/runtime-tuning.js';

/** Bytes of a #! line Linux reads (5.1 and later). */
const SHEBANG_MAX_BYTES = 256;
const PRINT_ENV = `process.stdout.write(JSON.stringify({ env: process.env, execArgv: process.execArgv }))`;

function environOf(pid: number): Record<string, string> {
  const pairs = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').filter(Boolean);
  return Object.fromEntries(pairs.map((p) => [p.slice(0, p.indexOf('=')), p.slice(p.indexOf('=') + 1)]));
}

test('the tessera command starts node with the runtime tuning through its #! line', () => {
  const first = readFileSync(CLI_PATH, 'utf8').split('\n', 1)[0]!;
  const m = /^#!(\S+) (.+)$/.exec(first);
  assert.ok(m, `no #! line in ${CLI_PATH}: ${first}`);
  // The kernel hands everything after the interpreter to it as one argument, as here.
  const line = m[2]!.replace(/ node( |$)/, ` ${process.execPath}$1`);
  const r = spawnSync(m[1]!, [line, '-e', PRINT_ENV], { encoding: 'utf8', env: { PATH: process.env.PATH } });
  assert.equal(r.status, 0, r.stderr);
  const { env, execArgv } = JSON.parse(r.stdout) as { env: Record<string, string>; execArgv: string[] };
  for (const [k, v] of Object.entries(MALLOC_ENV)) assert.equal(env[k], v, k);
  assert.deepEqual(execArgv.slice(0, NODE_FLAGS.length), [...NODE_FLAGS]);
  assert.deepEqual(missingTuning(env, execArgv), []);
});

test('the #! line fits what Linux reads of it', () => {
  // Linux 5.1 and later read 256 bytes of a #! line (BINPRM_BUF_SIZE) and cut a longer one short:
  // node would be handed the first half of a flag and refuse to start.
  const first = readFileSync(CLI_PATH, 'utf8').split('\n', 1)[0]!;
  assert.ok(Buffer.byteLength(first) + 1 < SHEBANG_MAX_BYTES, `#! line of ${Buffer.byteLength(first)} bytes: ${first}`);
  for (const f of NODE_FLAGS) assert.ok(first.split(' ').includes(f), `${f} missing from the #! line: ${first}`);
});

test('a value the user set is kept', () => {
  const env = withMallocEnv({ MALLOC_TRIM_THRESHOLD_: '4096', HOME: '/h' });
  assert.equal(env.MALLOC_TRIM_THRESHOLD_, '4096');
  assert.equal(env.MALLOC_MMAP_THRESHOLD_, MALLOC_ENV.MALLOC_MMAP_THRESHOLD_);
  assert.equal(env.HOME, '/h');
  assert.deepEqual(missingTuning({ MALLOC_TRIM_THRESHOLD_: '1' }, []), ['MALLOC_MMAP_THRESHOLD_', ...NODE_FLAGS]);
  const others = NODE_FLAGS.filter((f) => !f.startsWith('--initial-old-space-size'));
  assert.deepEqual(missingTuning({ ...MALLOC_ENV }, ['--initial-old-space-size=512', ...others]), [], 'a flag the user set is kept');
  assert.deepEqual(missingTuning({ ...MALLOC_ENV }, [...NODE_FLAGS.filter((f) => f !== '--no-memory-reducer'), '--memory_reducer']), [], 'a flag the user turned back on is kept');
  assert.deepEqual(missingTuning({ ...MALLOC_ENV }, ['--initial-old-space-size=64']), NODE_FLAGS.filter((f) => !f.startsWith('--initial-old-space-size')));
  assert.deepEqual(missingTuning({ ...MALLOC_ENV }, [...NODE_FLAGS.filter((f) => !f.startsWith('--max-semi-space-size')), '--max_semi_space_size=16']), [], 'a young generation the user sized is kept');
});

test('a node started without the tuning says so in its log', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'tessera-tuning-'));
  await initDataDir(dir, newClusterKeys());
  // Started as `node main.js`, which skips the #! line, and with none of the settings in the environment.
  const node = spawn(process.execPath, [CLI_PATH, 'node', '--data', dir, '--memory', '--json',
    '--listen', `127.0.0.1:${await freePort()}`, '--api', `127.0.0.1:${await freePort()}`], { stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: process.env.PATH } });
  try {
    let out = '';
    const line = await new Promise<Record<string, unknown>>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no tuning warning in the log: ${out}`)), 20_000);
      const seen = (d: Buffer) => {
        out += d.toString();
        const hit = out.split('\n').find((l) => l.includes('runtime tuning'));
        if (hit !== undefined) {
          clearTimeout(timer);
          resolve(JSON.parse(hit) as Record<string, unknown>);
        }
      };
      node.stdout!.on('data', seen);
      node.stderr!.on('data', seen);
      node.once('exit', (code) => { clearTimeout(timer); reject(new Error(`node exited (${code}): ${out}`)); });
    });
    assert.deepEqual(line.missing, [...Object.keys(MALLOC_ENV), ...NODE_FLAGS]);
  } finally {
    node.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
  }
});

test('nodes of a local cluster run with the runtime tuning', async () => {
  const cluster = await LocalCluster.create({ nodes: 1, memory: true, logLevel: 'warn' });
  try {
    const pid = cluster.node(0).proc!.pid!;
    const env = environOf(pid);
    for (const [k, v] of Object.entries(MALLOC_ENV)) assert.equal(env[k], v, k);
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    for (const f of NODE_FLAGS) assert.ok(argv.includes(f), `${f} missing from ${argv.join(' ')}`);
    // The flags go before the script: after it they would be the command's arguments, not Node's.
    const script = argv.indexOf(CLI_PATH);
    assert.ok(script > 0, `${CLI_PATH} not in ${argv.join(' ')}`);
    for (const f of NODE_FLAGS) assert.ok(argv.indexOf(f) < script, `${f} comes after the script in ${argv.join(' ')}`);
    assert.ok(NODE_FLAGS.includes('--no-memory-reducer'), 'nodes keep the heap they grew over an idle spell');
  } finally {
    await cluster.destroy();
  }
});
