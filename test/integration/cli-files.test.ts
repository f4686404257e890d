/**
 * The file commands through the real `tessera` binary against real node processes: put, ls, get
 * (by name, by id, ranges, -o), stat, rm, and their failure modes (one line, meaningful code).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI_PATH, LocalCluster } from '../../src/cli/local-cluster.js';
import { formatFileId } from '../../src/content/ids.js';
import type { FileEntryView, FileStatView, PutResultView } from '../../src/api/types.js';

const CHUNK = 64 << 10;
/** Five chunks, the last one partial, so ranges cross chunk boundaries. */
const SIZE = 4 * CHUNK + 12_345;

let cluster: LocalCluster;
let tmp: string;
let src: string;
let data: Buffer;
let dataDir: string;

interface Run {
  code: number | null;
  stdout: Buffer;
  stderr: string;
}

function tessera(args: string[], input?: Buffer): Run {
  const r = spawnSync(process.execPath, [CLI_PATH, ...args], {
    input,
    timeout: 60_000,
    maxBuffer: 64 << 20,
    env: { ...process.env, TESSERA_API: '', TESSERA_TOKEN: '' },
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr.toString('utf8') };
}

/** A client command against node `i` of the cluster. */
function at(i: number, ...args: string[]): Run {
  return tessera([...args, '--data', cluster.node(i).dataDir]);
}

function ok(r: Run): Run {
  assert.equal(r.code, 0, `exit 0 expected; stderr:\n${r.stderr}`);
  return r;
}

function assertOneLineError(r: Run, pattern: RegExp, code?: number): void {
  assert.notEqual(r.code, 0, 'non-zero exit');
  if (code !== undefined) assert.equal(r.code, code, `exit code; stderr:\n${r.stderr}`);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, `one line of error, got:\n${r.stderr}`);
  assert.match(r.stderr, /^tessera: /);
  assert.match(r.stderr, pattern);
}

before(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'tessera-cli-files-'));
  data = randomBytes(SIZE);
  src = join(tmp, 'source.bin');
  await writeFile(src, data);
  cluster = await LocalCluster.create({ nodes: 3, memory: true, logLevel: 'warn' });
  await cluster.waitForMembers({ alive: 3 });
  dataDir = cluster.node(0).dataDir;
});

after(async () => {
  await cluster?.destroy();
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

let fileId: string;

test('put with --name prints the put result, quietly when not on a terminal', () => {
  const r = ok(at(0, 'put', src, '--name', 'docs/a.bin', '--chunk-size', '64K', '--json'));
  assert.equal(r.stderr, '', 'no progress bar or chatter when stderr is not a terminal');
  const put = JSON.parse(r.stdout.toString('utf8')) as PutResultView;
  assert.match(put.fileId, /^tsr1[a-z2-7]+$/);
  assert.equal(put.name, 'docs/a.bin');
  assert.equal(put.size, SIZE);
  assert.equal(put.chunks, 5);
  fileId = put.fileId;

  // Without --json stdout is the id alone, so `ID=$(tessera put f)` works.
  const plain = ok(at(0, 'put', src, '--chunk-size', '64K'));
  assert.match(plain.stdout.toString('utf8'), /^tsr1[a-z2-7]+\n$/);
});

test('ls lists the named file', () => {
  const text = ok(at(1, 'ls')).stdout.toString('utf8');
  assert.match(text, /^NAME\s+SIZE\s+CREATED\s+ETAG/m);
  assert.match(text, /^docs\/a\.bin\s+\S+ KiB\s+\d{4}-\d\d-\d\d \d\d:\d\d\s+[0-9a-f]{32}\s/m);
  const list = JSON.parse(ok(at(1, 'ls', '--json')).stdout.toString('utf8')) as FileEntryView[];
  const entry = list.find((f) => f.name === 'docs/a.bin');
  assert.ok(entry, 'entry in ls --json');
  assert.equal(entry.fileId, fileId);
  assert.equal(entry.size, SIZE);
});

test('ls pages: a prefix, --limit and --after; the next page is named on stderr', () => {
  const names = ['pg/c', 'pg/a', 'pg/é', 'pg/b', 'pg/a b'];
  for (const n of names) ok(at(0, 'put', src, '--name', n, '--chunk-size', '64K'));
  const sorted = [...names].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y)));
  const seen: string[] = [];
  let args = ['ls', 'pg/', '--limit', '2', '--json'];
  for (let page = 0; page < 10; page++) {
    const r = ok(at(page % 3, ...args));
    const list = JSON.parse(r.stdout.toString('utf8')) as FileEntryView[];
    assert.ok(list.length <= 2);
    seen.push(...list.map((f) => f.name));
    const hint = /^more names follow: tessera ls pg\/ --limit 2 --after (.+)$/m.exec(r.stderr);
    if (hint === null) break;
    // The hint is a shell word: quoted when the name has a space.
    const after = hint[1]!.replace(/^'(.*)'$/, '$1');
    assert.equal(after, list[list.length - 1]!.name);
    args = ['ls', 'pg/', '--limit', '2', '--after', after, '--json'];
  }
  assert.deepEqual(seen, sorted);
  const text = ok(at(1, 'ls', 'pg/', '--limit', '1')).stdout.toString('utf8');
  assert.match(text, /^pg\/a\s/m);
  assert.equal(text.split('\n').filter((l) => l.startsWith('pg/')).length, 1);
  assertOneLineError(at(1, 'ls', '--limit', '0'), /limit/, 2);
  for (const n of names) ok(at(2, 'rm', n));
});

test('get by name and by id, through any node, returns the same bytes', () => {
  const byName = ok(at(2, 'get', 'docs/a.bin'));
  assert.ok(byName.stdout.equals(data), 'get by name equals the source');
  assert.equal(byName.stderr, '');
  const byId = ok(at(1, 'get', fileId));
  assert.ok(byId.stdout.equals(data), 'get by id equals the source');
});

test('get --range: A-B inclusive, A- to the end, -N the last N bytes, across chunk boundaries', () => {
  const cases: Array<[string, Buffer]> = [
    ['0-0', data.subarray(0, 1)],
    ['10-99', data.subarray(10, 100)],
    [`${CHUNK - 5}-${CHUNK + 4}`, data.subarray(CHUNK - 5, CHUNK + 5)],
    [`${3 * CHUNK + 7}-`, data.subarray(3 * CHUNK + 7)],
    ['-500', data.subarray(SIZE - 500)],
    [`-${SIZE + 100}`, data],
    [`0-${SIZE - 1}`, data],
  ];
  for (const [range, want] of cases) {
    const r = ok(at(0, 'get', 'docs/a.bin', '--range', range));
    assert.equal(r.stdout.length, want.length, `--range ${range}: length`);
    assert.ok(r.stdout.equals(want), `--range ${range}: bytes`);
  }
  for (const bad of ['5-2', 'abc', '-', '-0', '1-2-3', '99999999999999999999-']) {
    assertOneLineError(at(0, 'get', 'docs/a.bin', '--range', bad), /--range/, 2);
  }
});

test('get -o writes the whole file and leaves nothing else behind', async () => {
  const dir = join(tmp, 'out');
  await mkdir(dir);
  const out = join(dir, 'a.bin');
  const r = ok(at(1, 'get', 'docs/a.bin', '-o', out));
  assert.equal(r.stdout.length, 0);
  assert.ok((await readFile(out)).equals(data));
  const ranged = join(dir, 'part.bin');
  ok(at(1, 'get', fileId, '-o', ranged, '--range', '100-199'));
  assert.ok((await readFile(ranged)).equals(data.subarray(100, 200)));
  assert.deepEqual((await readdir(dir)).sort(), ['a.bin', 'part.bin'], 'no temporary files left');

  // A failed get must not create the output, nor leave its temporary file.
  const missing = join(dir, 'never.bin');
  const bad = at(1, 'get', 'no/such/name', '-o', missing);
  assertOneLineError(bad, /./, 3);
  assert.deepEqual((await readdir(dir)).sort(), ['a.bin', 'part.bin']);

  assertOneLineError(at(1, 'get', 'docs/a.bin', '-o', dir), /is a directory/, 2);
  assertOneLineError(at(1, 'get', 'docs/a.bin', '-o', join(tmp, 'nodir', 'x')), /nodir/);
});

test('stat shows chunks, policy and holders', () => {
  const text = ok(at(2, 'stat', 'docs/a.bin')).stdout.toString('utf8');
  assert.match(text, /^chunks\s+5 of 64\.0 KiB$/m);
  assert.match(text, /^size\s+.*\(\d+ bytes\)$/m);
  // The third copy may still be on its way (put waits for W=2), so only "nothing lost" is certain.
  assert.match(text, /^health\s+\d at full redundancy, \d degraded, 0 lost$/m);
  assert.match(text, /^CHUNK\s+ID\s+SIZE\s+COPIES\s+HOLDERS/m);
  const s = JSON.parse(ok(at(2, 'stat', fileId, '--json')).stdout.toString('utf8')) as FileStatView;
  assert.equal(s.chunks, 5);
  assert.equal(s.size, SIZE);
  assert.equal(s.chunkHealth.length, 5);
  for (const c of s.chunkHealth) {
    assert.ok(c.holders.length >= 2, `chunk ${c.index} held by at least the write quorum`);
    assert.equal(c.expected.length, 3, `chunk ${c.index} placed on three nodes`);
  }
});

test('put from stdin', () => {
  const small = randomBytes(5000);
  const id = ok(tessera(['put', '-', '--name', 'stdin.bin', '--data', dataDir], small)).stdout.toString('utf8').trim();
  assert.match(id, /^tsr1/);
  assert.ok(ok(at(1, 'get', 'stdin.bin')).stdout.equals(small));
});

test('rm, then get fails with NOT_FOUND and one line', () => {
  const r = ok(at(0, 'rm', 'docs/a.bin'));
  assert.match(r.stdout.toString('utf8'), /removed 'docs\/a\.bin'/);
  assertOneLineError(at(1, 'get', 'docs/a.bin'), /docs\/a\.bin|not found|no file/i, 3);
  const list = JSON.parse(ok(at(2, 'ls', '--json')).stdout.toString('utf8')) as FileEntryView[];
  assert.ok(!list.some((f) => f.name === 'docs/a.bin'), 'ls no longer shows it');
});

test('unknown id, malformed id, unknown name', () => {
  const unknownId = formatFileId(randomBytes(32), randomBytes(32));
  assertOneLineError(at(0, 'get', unknownId), /./, 3);
  assertOneLineError(at(0, 'stat', unknownId), /./, 3);
  const malformed = at(0, 'get', 'tsr1' + '!'.repeat(20));
  assertOneLineError(malformed, /./);
  assert.ok(malformed.code === 2 || malformed.code === 3, `bad input or not found, got ${malformed.code}`);
  assertOneLineError(at(0, 'get', 'nobody/named/this'), /./, 3);
  assertOneLineError(at(0, 'rm', 'nobody/named/this'), /./, 3);
});

test('unreachable node: one line, exit 9', () => {
  for (const args of [['ls'], ['get', 'x'], ['stat', 'x'], ['rm', 'x'], ['put', src]]) {
    assertOneLineError(tessera([...args, '--api', '127.0.0.1:1']), /no tessera node answers at 127\.0\.0\.1:1/, 9);
  }
});

test('put of a missing file, a directory, and bad flags', () => {
  assertOneLineError(at(0, 'put', join(tmp, 'missing.bin')), /missing\.bin.*no such file/, 3);
  assertOneLineError(at(0, 'put', tmp), /is a directory/, 2);
  assertOneLineError(at(0, 'put', src, '--replicas', '2', '--quorum', '3'), /--quorum 3 is more than --replicas 2/, 2);
  assertOneLineError(at(0, 'put', src, '--replicas', 'many'), /--replicas must be a whole number/, 2);
  assertOneLineError(at(0, 'put', src, '--chunk-size', '1'), /chunk size/, 2);
});

test('put and get draw a progress bar on a terminal', (t) => {
  const probe = spawnSync('script', ['-qec', 'true', '/dev/null'], { stdio: 'ignore' });
  if (probe.status !== 0) {
    t.skip('script(1) from util-linux is not available to provide a pseudo-terminal');
    return;
  }
  const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  const cmd = [process.execPath, CLI_PATH, 'put', src, '--name', 'tty.bin', '--data', dataDir].map(q).join(' ');
  const r = spawnSync('script', ['-qec', cmd, '/dev/null'], { encoding: 'utf8', timeout: 60_000, env: { ...process.env, TESSERA_API: '' } });
  assert.equal(r.status, 0, r.stdout);
  assert.match(r.stdout, /put source\.bin .*100% \| 268\.1 KiB \/ 268\.1 KiB \| .*B\/s \| ETA 0s/);
  assert.match(r.stdout, /tsr1[a-z2-7]+/);
  assert.match(r.stdout, /stored 268\.1 KiB as 1 chunk/);

  const out = join(tmp, 'tty-out.bin');
  const getCmd = [process.execPath, CLI_PATH, 'get', 'tty.bin', '-o', out, '--data', dataDir].map(q).join(' ');
  const g = spawnSync('script', ['-qec', getCmd, '/dev/null'], { encoding: 'utf8', timeout: 60_000, env: { ...process.env, TESSERA_API: '' } });
  assert.equal(g.status, 0, g.stdout);
  assert.match(g.stdout, /get tty-out\.bin .*100%/);

  // --quiet suppresses it even on a terminal.
  const quiet = spawnSync('script', ['-qec', `${cmd} --quiet`, '/dev/null'], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(quiet.status, 0, quiet.stdout);
  assert.doesNotMatch(quiet.stdout, /100%/);
});

test('tessera demo stores and reads back a file, checksums match, exits 0', () => {
  const r = tessera(['demo', '--size', '4M']);
  const out = r.stdout.toString('utf8');
  assert.equal(r.code, 0, `demo failed:\n${r.stderr}\n${out}`);
  const put = /^sha256 of what was put: ([0-9a-f]{64})$/m.exec(out);
  const got = /^sha256 of what was got: ([0-9a-f]{64})$/m.exec(out);
  assert.ok(put && got, `checksums printed:\n${out}`);
  assert.equal(got[1], put[1]);
  assert.match(out, /checksums match/);
  assert.match(out, /stopped; all nodes left the cluster cleanly/);
  assertOneLineError(tessera(['demo', '--size', 'big']), /--size 'big' is not a size/, 2);
});
