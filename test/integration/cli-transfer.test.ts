/**
 * Large transfers through the real `tessera` command against a real node: a download larger than
 * the client's batches, read by a slow pipe (the download pauses and resumes), written to a file
 * given as standard output, and with -o; and the no-partial-output guarantee when a get -o is
 * interrupted or its node dies mid-transfer (the node is stopped with SIGSTOP first, so the
 * transfer is caught in the middle every time).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, openSync } from 'node:fs';
import type { Socket } from 'node:net';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI_PATH, LocalCluster } from '../../src/cli/local-cluster.js';
import { DOWNLOAD_BATCHES, DOWNLOAD_BATCH_BYTES } from '../../src/client/download.js';
import { RANGE_WINDOW_BYTES } from '../../src/client/ranges.js';
import { EXIT_CODES } from '../../src/errors.js';
import { serveRaw } from '../helpers/raw-http-server.js';

/** Three times what the client's batches hold, so a slow reader makes the download pause. */
const SIZE = 3 * DOWNLOAD_BATCHES * DOWNLOAD_BATCH_BYTES + 54_321;

let cluster: LocalCluster;
let tmp: string;
let data: Buffer;
let api: string[];

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

function tessera(args: string[], stdout: 'pipe' | number = 'pipe') {
  const r = spawnSync(CLI_PATH, [...args, ...api], { stdio: ['ignore', stdout, 'pipe'], timeout: 120_000, maxBuffer: SIZE * 2 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr.toString('utf8') };
}

before(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'tessera-cli-transfer-'));
  data = randomBytes(SIZE);
  await writeFile(join(tmp, 'source.bin'), data);
  cluster = await LocalCluster.create({ nodes: 1, memory: true, logLevel: 'warn' });
  const n = cluster.node(0);
  api = ['--api', n.api, '--token', n.apiToken];
  const put = tessera(['put', join(tmp, 'source.bin'), '--name', 'big.bin', '--replicas', '1']);
  assert.equal(put.code, 0, put.stderr);
});

after(async () => {
  await cluster?.destroy();
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

test('get to a pipe whose reader is slower than the node: every byte, in order', async () => {
  const child = spawn(CLI_PATH, ['get', 'big.bin', ...api], { stdio: ['ignore', 'pipe', 'pipe'] });
  const hash = createHash('sha256');
  let got = 0;
  let stderr = '';
  child.stderr.on('data', (s: Buffer) => (stderr += s.toString()));
  // Reads in pauses for the first part of the file, long enough for the client's batches to fill.
  for await (const piece of child.stdout as AsyncIterable<Buffer>) {
    hash.update(piece);
    got += piece.length;
    if (got < DOWNLOAD_BATCHES * DOWNLOAD_BATCH_BYTES * 2) await new Promise((r) => setTimeout(r, 2));
  }
  const code = await new Promise<number | null>((resolve) => (child.exitCode !== null ? resolve(child.exitCode) : child.once('exit', resolve)));
  assert.equal(code, 0, stderr);
  assert.equal(got, SIZE);
  assert.equal(hash.digest('hex'), sha(data));
});

test('get with standard output a file, with -o, and a range into a file', async () => {
  const dir = join(tmp, 'out');
  await mkdir(dir);
  const viaStdout = join(dir, 'stdout.bin');
  const fd = openSync(viaStdout, 'w');
  try {
    const r = tessera(['get', 'big.bin'], fd);
    assert.equal(r.code, 0, r.stderr);
  } finally {
    closeSync(fd);
  }
  assert.equal(sha(await readFile(viaStdout)), sha(data));

  const out = join(dir, 'o.bin');
  const r = tessera(['get', 'big.bin', '-o', out, '--json']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal((JSON.parse(r.stdout.toString()) as { bytes: number }).bytes, SIZE);
  assert.equal(sha(await readFile(out)), sha(data));

  const ranged = join(dir, 'range.bin');
  const rfd = openSync(ranged, 'w');
  try {
    const rr = tessera(['get', 'big.bin', '--range', `${DOWNLOAD_BATCH_BYTES - 10}-${3 * DOWNLOAD_BATCH_BYTES + 10}`], rfd);
    assert.equal(rr.code, 0, rr.stderr);
  } finally {
    closeSync(rfd);
  }
  assert.ok((await readFile(ranged)).equals(data.subarray(DOWNLOAD_BATCH_BYTES - 10, 3 * DOWNLOAD_BATCH_BYTES + 11)));
  assert.deepEqual((await readdir(dir)).sort(), ['o.bin', 'range.bin', 'stdout.bin'], 'no temporary files left');
});

test('files of 0 and 1 bytes and of exactly two windows: the same bytes to standard output and with -o', async () => {
  const dir = join(tmp, 'sizes');
  await mkdir(dir);
  for (const size of [0, 1, 2 * RANGE_WINDOW_BYTES]) {
    const body = randomBytes(size);
    const name = `size-${size}.bin`;
    await writeFile(join(dir, 'source'), body);
    const put = tessera(['put', join(dir, 'source'), '--name', name, '--replicas', '1']);
    assert.equal(put.code, 0, put.stderr);
    const viaStdout = join(dir, 'stdout.bin');
    const fd = openSync(viaStdout, 'w');
    try {
      const r = tessera(['get', name, '--streams', '2'], fd);
      assert.equal(r.code, 0, r.stderr);
    } finally {
      closeSync(fd);
    }
    assert.equal(sha(await readFile(viaStdout)), sha(body), `${size} bytes to standard output`);
    const piped = tessera(['get', name, '--streams', '2']);
    assert.equal(piped.code, 0, piped.stderr);
    assert.equal(sha(piped.stdout), sha(body), `${size} bytes to a pipe`);
    const out = join(dir, 'o.bin');
    const r = tessera(['get', name, '-o', out, '--streams', '2']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(sha(await readFile(out)), sha(body), `${size} bytes with -o`);
    await rm(out);
  }
  assert.deepEqual((await readdir(dir)).sort(), ['source', 'stdout.bin'], 'no temporary files left');
});

test('--streams 1 fetches one range at a time, --streams 3 three; out of bounds is refused', async () => {
  const dir = join(tmp, 'streams');
  await mkdir(dir);
  for (const n of ['1', '3']) {
    const out = join(dir, `s${n}.bin`);
    const r = tessera(['get', 'big.bin', '-o', out, '--streams', n]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(sha(await readFile(out)), sha(data), `--streams ${n}`);
  }
  for (const bad of ['0', '5', 'two']) {
    const r = tessera(['get', 'big.bin', '--streams', bad]);
    assert.equal(r.code, EXIT_CODES.BAD_INPUT, r.stderr);
    assert.match(r.stderr, /--streams '.*' is not a whole number from 1 to 4/);
  }
});

test('a server that answers a later range with other bytes: get -o fails naming the range, and writes nothing', async (t) => {
  // Answers the first window as the node does and the second with a Content-Range one byte off.
  const body = randomBytes(RANGE_WINDOW_BYTES + 4096);
  const { server, api: addr } = await serveRaw((socket: Socket, head: string) => {
    const m = /\r\nrange: bytes=(\d+)-(\d+)\r\n/i.exec(head);
    const start = Number(m?.[1] ?? 0);
    const end = Math.min(body.length - 1, Number(m?.[2] ?? body.length - 1));
    // One byte early: a well-formed answer, for bytes other than those asked for.
    const claimed = start === 0 ? 0 : start - 1;
    socket.write(
      `HTTP/1.1 206 Partial Content\r\ncontent-length: ${end - start + 1}\r\ncontent-range: bytes ${claimed}-${claimed + end - start}/${body.length}\r\n` +
        `x-tessera-file-id: tsr1fake\r\nx-tessera-size: ${body.length}\r\n\r\n`,
    );
    socket.end(body.subarray(start, end + 1));
  });
  t.after(() => server.close());
  const dir = join(tmp, 'wrong-range');
  await mkdir(dir);
  const out = join(dir, 'keep.bin');
  await writeFile(out, 'the old contents');
  // Not spawnSync: the server answers from this process's event loop.
  const child = spawn(CLI_PATH, ['get', 'fake.bin', '-o', out, '--streams', '2', '--api', addr, '--token', 't'], { stdio: ['ignore', 'ignore', 'pipe'], timeout: 60_000 });
  const r = { stderr: '', status: null as number | null };
  child.stderr?.on('data', (b: Buffer) => (r.stderr += b.toString()));
  r.status = await new Promise<number | null>((resolve) => child.once('close', resolve));
  assert.equal(r.status, EXIT_CODES.PROTOCOL, r.stderr);
  assert.match(r.stderr, new RegExp(`answered the range bytes=${RANGE_WINDOW_BYTES}-${body.length - 1} with bytes ${RANGE_WINDOW_BYTES - 1}-${body.length - 2}; nothing was kept`));
  assert.equal(await readFile(out, 'utf8'), 'the old contents');
  assert.deepEqual(await readdir(dir), ['keep.bin']);
});

/**
 * Starts `get -o out` and freezes the node once the temporary file holds bytes. The node runs in
 * slices of a millisecond and is checked frozen, so a fast download cannot finish between a look
 * at the file and the stop.
 */
async function getCaughtMidway(out: string): Promise<{ child: ReturnType<typeof spawn>; stderr: () => string; exit: Promise<number | null> }> {
  const child = spawn(CLI_PATH, ['get', 'big.bin', '-o', out, ...api], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (s: Buffer) => (stderr += s.toString()));
  const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const dir = join(out, '..');
  const pid = cluster.node(0).proc?.pid as number;
  const deadline = Date.now() + 20_000;
  for (;;) {
    process.kill(pid, 'SIGSTOP');
    const part = (await readdir(dir)).find((f) => f.endsWith('.tessera-part'));
    if (part !== undefined && (await stat(join(dir, part))).size > 0) break;
    process.kill(pid, 'SIGCONT');
    if (Date.now() > deadline) assert.fail(`no bytes in the temporary output file within 20 s: ${stderr}`);
    await new Promise((r) => setTimeout(r, 1));
  }
  return { child, stderr: () => stderr, exit };
}

test('an interrupted get -o leaves an existing file untouched and no temporary file', async () => {
  const dir = join(tmp, 'interrupted');
  await mkdir(dir);
  const out = join(dir, 'keep.bin');
  await writeFile(out, 'the old contents');
  const run = await getCaughtMidway(out);
  try {
    run.child.kill('SIGINT');
    assert.equal(await run.exit, EXIT_CODES.CANCELLED, run.stderr());
  } finally {
    process.kill(cluster.node(0).proc?.pid as number, 'SIGCONT');
  }
  assert.match(run.stderr(), /get interrupted: no output file was written/);
  assert.equal(await readFile(out, 'utf8'), 'the old contents');
  assert.deepEqual(await readdir(dir), ['keep.bin']);
});

test('a node that dies mid-transfer: get -o fails and writes nothing', async () => {
  const dir = join(tmp, 'died');
  await mkdir(dir);
  const out = join(dir, 'never.bin');
  const run = await getCaughtMidway(out);
  await cluster.kill(0, 'SIGKILL');
  assert.equal(await run.exit, EXIT_CODES.UNAVAILABLE, run.stderr());
  // The download is several ranges at once: whichever connection the node's death ended first
  // is reported (cut short, closed before its answer, reset, or refused when it began after).
  assert.match(
    run.stderr(),
    /of \d+ bytes before the connection closed; nothing was kept|closed the connection before answering|no tessera node answers at|cannot reach the node API at/,
  );
  assert.deepEqual(await readdir(dir), []);
});
