/**
 * The shared disk helpers: positional reads and writes that finish what a short call left, and
 * durable whole-file writes. Short calls are forced by capping FileHandle.read/write for a test,
 * on real files; the state file of a volume (block/volume/storage.ts) is read whole through them.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, open, readFile, readdir, rm, stat, writeFile, type FileHandle } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createFileDurably, pathExists, readAt, readAtZeroFilled, replaceFileDurably, writeAt, writevAt, MAX_IO_ROUNDS, MAX_IOVECS_PER_CALL } from '../../../src/disk-io.js';
import { FileBlobStorage, FileLogStorage } from '../../../src/block/volume/storage.js';

const CAP = 1000;

/** Makes every FileHandle read and write move at most `cap` bytes while `fn` runs, as a kernel may. */
async function withShortIo<T>(cap: number, fn: () => Promise<T>): Promise<T> {
  const probe = await open(process.execPath, 'r');
  const proto = Object.getPrototypeOf(probe) as FileHandle;
  await probe.close();
  const { read, write } = proto;
  const calls = { reads: 0, writes: 0 };
  // Only the (buffer, offset, length, position) form is capped; the helpers use no other.
  proto.read = function (this: FileHandle, ...args: unknown[]) {
    calls.reads++;
    if (Buffer.isBuffer(args[0]) && typeof args[2] === 'number') args[2] = Math.min(args[2], cap);
    return (read as (...a: unknown[]) => ReturnType<FileHandle['read']>).apply(this, args);
  } as FileHandle['read'];
  proto.write = function (this: FileHandle, ...args: unknown[]) {
    calls.writes++;
    if (Buffer.isBuffer(args[0]) && typeof args[2] === 'number') args[2] = Math.min(args[2], cap);
    return (write as (...a: unknown[]) => ReturnType<FileHandle['write']>).apply(this, args);
  } as FileHandle['write'];
  try {
    return await fn();
  } finally {
    proto.read = read;
    proto.write = write;
  }
}

async function tempDir(t: { after: (fn: () => Promise<void>) => void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'tessera-disk-io-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

test('reads and writes finish what short calls left, byte-exact', async (t) => {
  const dir = await tempDir(t);
  const data = randomBytes(10 * CAP + 7);
  const fh = await open(join(dir, 'f'), 'w+');
  try {
    await withShortIo(CAP, async () => {
      await writeAt(fh, data, 5);
      const back = Buffer.alloc(data.length);
      assert.equal(await readAt(fh, back, 5), data.length);
      assert.deepEqual(back, data);
      // Past the end: readAt says how much there was, readAtZeroFilled zeroes the rest.
      const tail = Buffer.alloc(3 * CAP, 0xee);
      assert.equal(await readAt(fh, tail, 5 + data.length - CAP), CAP);
      const zeroed = Buffer.alloc(2 * CAP, 0xee);
      await readAtZeroFilled(fh, zeroed, 5 + data.length - 10);
      assert.deepEqual(zeroed.subarray(0, 10), data.subarray(data.length - 10));
      assert.ok(zeroed.subarray(10).every((b) => b === 0));
    });
  } finally {
    await fh.close();
  }
  assert.equal((await stat(join(dir, 'f'))).size, data.length + 5);
});

test('a write that makes no progress is an IO error after a bounded number of rounds', async () => {
  let calls = 0;
  const stuck = { write: async () => ({ bytesWritten: 0 }), read: async () => ({ bytesRead: 0 }) } as unknown as FileHandle;
  const counting = { write: async () => ({ bytesWritten: (calls++, 0) }) } as unknown as FileHandle;
  await assert.rejects(writeAt(stuck, Buffer.alloc(10), 0), { code: 'IO', message: /no progress/ });
  await assert.rejects(writeAt(counting, Buffer.alloc(10), 0), { code: 'IO' });
  assert.equal(calls, MAX_IO_ROUNDS);
});

test('a gather write finishes what short calls left, in slices of at most MAX_IOVECS_PER_CALL buffers', async (t) => {
  const dir = await tempDir(t);
  // More buffers than one call may pass, of uneven sizes (some empty), so a short write ends mid-buffer.
  const bufs = Array.from({ length: MAX_IOVECS_PER_CALL * 2 + 3 }, (_, i) => randomBytes(i % 7 === 0 ? 0 : 1 + (i % 13)));
  const whole = Buffer.concat(bufs);
  const fh = await open(join(dir, 'g'), 'w+');
  const proto = Object.getPrototypeOf(fh) as FileHandle;
  const { writev } = proto;
  const slices: number[] = [];
  // Each call writes at most 37 bytes, as a kernel may, and never sees more than the slice limit.
  proto.writev = async function (this: FileHandle, b: NodeJS.ArrayBufferView[], pos?: number) {
    slices.push(b.length);
    let room = 37;
    const part: Buffer[] = [];
    for (const x of b as Buffer[]) {
      if (room === 0) break;
      part.push(x.subarray(0, room));
      room -= Math.min(room, x.length);
    }
    return writev.call(this, part, pos);
  } as FileHandle['writev'];
  try {
    await writevAt(fh, bufs, 11);
  } finally {
    proto.writev = writev;
    await fh.close();
  }
  assert.ok(slices.length > Math.ceil(whole.length / 37) - 1, 'the short writes were continued');
  assert.ok(slices.every((n) => n <= MAX_IOVECS_PER_CALL), 'no call passed more buffers than the limit');
  assert.deepEqual((await readFile(join(dir, 'g'))).subarray(11), whole);
  const stuck = { writev: async () => ({ bytesWritten: 0 }) } as unknown as FileHandle;
  await assert.rejects(writevAt(stuck, [Buffer.alloc(1)], 0), { code: 'IO', message: /no progress/ });
});

test('pathExists: absent is false, present is true, other errors are thrown', async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, 'file'), 'x');
  assert.equal(await pathExists(join(dir, 'file')), true);
  assert.equal(await pathExists(join(dir, 'nope')), false);
  await assert.rejects(pathExists(join(dir, 'file', 'below')), { code: 'ENOTDIR' });
});

test('createFileDurably refuses to overwrite and sets the mode at creation; replaceFileDurably leaves no temporary file', async (t) => {
  const dir = await tempDir(t);
  const secret = join(dir, 'secret');
  await withShortIo(CAP, () => createFileDurably(secret, 'k'.repeat(3 * CAP + 1), 0o600));
  assert.equal(await readFile(secret, 'utf8'), 'k'.repeat(3 * CAP + 1));
  assert.equal((await stat(secret)).mode & 0o777, 0o600);
  await assert.rejects(createFileDurably(secret, 'other'), { code: 'EEXIST' });
  assert.equal(await readFile(secret, 'utf8'), 'k'.repeat(3 * CAP + 1));

  const state = join(dir, 'state');
  const big = randomBytes(5 * CAP);
  await withShortIo(CAP, () => replaceFileDurably(state, big));
  await replaceFileDurably(state, Buffer.from('second'));
  assert.equal(await readFile(state, 'utf8'), 'second');
  assert.deepEqual((await readdir(dir)).sort(), ['secret', 'state']);
});

test('a volume state file is read whole even when the kernel returns it in short reads', async (t) => {
  const dir = await tempDir(t);
  const blob = randomBytes(20 * CAP + 3);
  const storage = new FileBlobStorage(join(dir, 'health'));
  await storage.save(blob);
  const loaded = await withShortIo(CAP, () => storage.load());
  assert.ok(loaded !== null);
  assert.equal(loaded.length, blob.length);
  assert.deepEqual(loaded, blob);

  // The intent log's compaction and appends also survive short writes.
  const log = new FileLogStorage(join(dir, 'wil'), 4 * CAP);
  await withShortIo(CAP, async () => {
    await log.save(blob.subarray(0, 3 * CAP));
    await log.append(blob.subarray(3 * CAP, 6 * CAP));
  });
  const back = await log.load();
  assert.ok(back !== null);
  assert.deepEqual(back.subarray(0, 6 * CAP), blob.subarray(0, 6 * CAP));
});
