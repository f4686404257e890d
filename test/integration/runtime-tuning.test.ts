import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { CLI_PATH, LocalCluster } from '../../src/cli/local-cluster.js';
import { MALLOC_ENV, NODE_FLAGS, hasMallocEnv, withMallocEnv } from '../../src/cli/runtime-tuning.js';

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
  assert.ok(hasMallocEnv(env));
  assert.deepEqual(execArgv.slice(0, NODE_FLAGS.length), [...NODE_FLAGS]);
});

test('a value the user set is kept', () => {
  const env = withMallocEnv({ MALLOC_TRIM_THRESHOLD_: '4096', HOME: '/h' });
  assert.equal(env.MALLOC_TRIM_THRESHOLD_, '4096');
  assert.equal(env.MALLOC_MMAP_THRESHOLD_, MALLOC_ENV.MALLOC_MMAP_THRESHOLD_);
  assert.equal(env.HOME, '/h');
  assert.equal(hasMallocEnv({ MALLOC_TRIM_THRESHOLD_: '1' }), false);
});

test('nodes of a local cluster run with the runtime tuning', async () => {
  const cluster = await LocalCluster.create({ nodes: 1, memory: true, logLevel: 'warn' });
  try {
    const pid = cluster.node(0).proc!.pid!;
    const env = environOf(pid);
    for (const [k, v] of Object.entries(MALLOC_ENV)) assert.equal(env[k], v, k);
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    for (const f of NODE_FLAGS) assert.ok(argv.includes(f), `${f} missing from ${argv.join(' ')}`);
  } finally {
    await cluster.destroy();
  }
});
