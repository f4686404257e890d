/**
 * Client commands load only what they use. Every `tessera ls`, `status` or `get` pays for the
 * modules it loads before it does anything, so none of them may pull in the storage engine, the
 * node, the logger, the schema library or the progress bar's library (no terminal here). Each
 * command runs as a user runs it (the file itself, through its #! line), with a preload that
 * records every module the process loads.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { CLI_PATH, LocalCluster } from '../../src/cli/local-cluster.js';

const RECORDER = new URL('../helpers/record-imports.js', import.meta.url).href;
const CLI_URL = pathToFileURL(CLI_PATH).href;
const CLIENT_URL = new URL('../../src/client/index.js', import.meta.url).href;
const ERRORS_URL = new URL('../../src/errors.js', import.meta.url).href;

/** What a client command has no use for, by where it lives. */
const UNWANTED: Array<{ what: string; re: RegExp }> = [
  { what: 'the storage engine (lmdb)', re: /\/node_modules\/lmdb\// },
  { what: 'the store layer', re: /\/dist\/src\/store\// },
  { what: 'the node', re: /\/dist\/src\/node\.js$/ },
  { what: 'the peer network layer', re: /\/dist\/src\/net\// },
  { what: 'the files service', re: /\/dist\/src\/files\// },
  { what: 'the logger or its pretty-printer', re: /\/node_modules\/pino(-pretty)?\// },
  { what: 'the schema library (zod)', re: /\/node_modules\/zod\// },
  { what: 'the progress bar library', re: /\/node_modules\/cli-progress\// },
];

const dir = await mkdtemp(join(tmpdir(), 'tessera-cli-startup-'));
test.after(() => rm(dir, { recursive: true, force: true }));
let runs = 0;

/** Runs `tessera ARGS` and returns what it printed and every module URL it loaded. */
async function traced(args: string[]): Promise<{ status: number | null; stdout: string; stderr: string; loaded: string[] }> {
  const record = join(dir, `loaded-${runs++}.txt`);
  await writeFile(record, '');
  const r = spawnSync(CLI_PATH, args, {
    encoding: 'utf8',
    timeout: 60_000,
    env: { ...process.env, NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --import=${RECORDER}`.trim(), TESSERA_RECORD_IMPORTS: record, TESSERA_API: '' },
  });
  const loaded = (await readFile(record, 'utf8')).split('\n').filter(Boolean);
  return { status: r.status, stdout: r.stdout, stderr: r.stderr, loaded };
}

function assertLean(args: string[], run: { status: number | null; stderr: string; loaded: string[] }): void {
  assert.equal(run.status, 0, `tessera ${args.join(' ')} failed: ${run.stderr}`);
  // The recording itself must have worked, or an empty list would pass for a lean command.
  assert.ok(run.loaded.includes(CLI_URL), `the recorder saw the command's own file (${run.loaded.length} modules recorded)`);
  for (const { what, re } of UNWANTED) {
    const hits = run.loaded.filter((u) => re.test(u));
    assert.deepEqual(hits, [], `tessera ${args.join(' ')} loaded ${what}`);
  }
}

test('--version and --help load no storage engine, logger, schema library or command code', async () => {
  for (const args of [['--version'], ['--help'], ['help', 'get']]) {
    const run = await traced(args);
    assertLean(args, run);
    assert.ok(!run.loaded.includes(CLIENT_URL), `tessera ${args.join(' ')} talks to no node, so it needs no HTTP client`);
    // Each file costs a resolve, a read and a link at every start: the bundle holds the rest.
    const files = run.loaded.filter((u) => u.startsWith('file:') && !u.endsWith('/record-imports-hooks.js') && !u.endsWith('/record-imports.js'));
    assert.deepEqual(files.sort(), [CLI_URL, ERRORS_URL].sort(), `tessera ${args.join(' ')} opened only its own file and errors.js`);
    assert.ok(!run.loaded.includes('node:crypto'), `tessera ${args.join(' ')} loaded node:crypto`);
  }
  assert.match((await traced(['--version'])).stdout, /^\d+\.\d+\.\d+\n$/);
});

test('the recorder sees the packages a command does use: init loads the identity code and its schema library', async () => {
  const run = await traced(['init', '--data', join(dir, 'init-node'), '--json']);
  assert.equal(run.status, 0, run.stderr);
  assert.ok(run.loaded.some((u) => /\/node_modules\/zod\//.test(u)), 'zod is among the modules tessera init loaded');
  assert.ok(run.loaded.some((u) => /\/dist\/src\/cluster\/identity\.js$/.test(u)), 'identity.js is among them');
});

test('client commands against a running node load only the client', async (t) => {
  const cluster = await LocalCluster.create({ nodes: 1, memory: true, dir: join(dir, 'cluster'), logLevel: 'warn' });
  t.after(() => cluster.destroy());
  const n = cluster.node(0);
  const api = ['--api', n.api, '--token', n.apiToken];
  const input = join(dir, 'input.bin');
  await writeFile(input, Buffer.alloc(300_000, 7));
  const output = join(dir, 'output.bin');

  const status = await traced(['status', '--json', ...api]);
  assertLean(['status'], status);
  assert.ok(status.loaded.includes(CLIENT_URL), 'status loaded the HTTP client');
  for (const tlsSide of ['node:tls', 'node:https', 'node:crypto']) {
    assert.ok(!status.loaded.includes(tlsSide), `status against a plain HTTP API loaded ${tlsSide}`);
  }
  assert.equal((JSON.parse(status.stdout) as { nodeId: string }).nodeId, n.nodeId);

  const put = await traced(['put', input, '--name', 'lean.bin', '--replicas', '1', '--json', ...api]);
  assertLean(['put'], put);
  for (const args of [['ls', '--json'], ['peers', '--json'], ['stat', 'lean.bin'], ['get', 'lean.bin', '-o', output], ['get', 'lean.bin']]) {
    const run = await traced([...args, ...api]);
    assertLean(args, run);
  }
  assert.deepEqual(await readFile(output), Buffer.alloc(300_000, 7));

  // A get to standard output is the command whose start delays the bytes: it opens its bundled
  // code, the client and the client's own modules, and loads neither node:http (the download
  // reads its own socket) nor node:crypto (only -o names a temporary file).
  const get = await traced(['get', 'lean.bin', ...api]);
  assertLean(['get'], get);
  assert.equal(get.stdout, '\x07'.repeat(300_000), 'get wrote the file to standard output');
  const opened = get.loaded.filter((u) => u.startsWith('file:') && !u.endsWith('/record-imports-hooks.js') && !u.endsWith('/record-imports.js'));
  const inDist = (path: string) => new URL(`../../src/${path}`, import.meta.url).href;
  assert.deepEqual(
    opened.sort(),
    [CLI_URL, ERRORS_URL, inDist('cli/commands/get.js'), CLIENT_URL, inDist('client/download.js'), inDist('client/http-head.js'), inDist('client/ranges.js')].sort(),
    'get opened its own files only',
  );
  for (const unused of ['node:http', 'node:crypto']) assert.ok(!get.loaded.includes(unused), `get to standard output loaded ${unused}`);
  // --data finds the node's address and token in its data directory, still without the identity code.
  assertLean(['status', '--data'], await traced(['status', '--json', '--data', n.dataDir]));
});
