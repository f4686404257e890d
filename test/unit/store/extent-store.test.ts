import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, stat, readdir, mkdir, writeFile, truncate } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import {
  ExtentStore,
  MAX_EXTENT_GENERATION,
  MAX_EXTENT_IO_BYTES,
  MAX_EXTENT_UNITS,
  MAX_EXTENT_UNIT_BYTES,
  MAX_GENERATIONS_PER_READ,
  MIN_EXTENT_UNIT_BYTES,
  SYNC_READ_MAX_BYTES,
  COLD_READS_POOLED_MS,
} from '../../../src/store/extent-store.js';
import { isTesseraError } from '../../../src/errors.js';

const dirs: string[] = [];
async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'tessera-extent-'));
  dirs.push(d);
  return d;
}
test.after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

const U = 64 << 10;

test('extent: create is sparse and reads zeroes; writes read back at any offset', async () => {
  const root = await tempDir();
  const s = await ExtentStore.open(root);
  const info = await s.create('vol1', { units: 1024, unitSize: U });
  assert.deepEqual(info, { name: 'vol1', units: 1024, unitSize: U, size: 1024 * U });
  const st = await stat(join(root, 'vol1', 'extent'));
  assert.equal(st.size, 1024 * U);
  assert.ok(st.blocks * 512 < st.size / 4, 'extent file is not sparse');
  assert.deepEqual(await s.read('vol1', 1000, 5000), Buffer.alloc(5000));
  const data = randomBytes(3 * U + 17);
  await s.write('vol1', U - 5, data);
  assert.deepEqual(await s.read('vol1', U - 5, data.length), data);
  const into = Buffer.alloc(100);
  await s.readInto('vol1', U - 5 + 50, into);
  assert.deepEqual(into, data.subarray(50, 150));
  // The last byte of the volume is addressable.
  await s.write('vol1', info.size - 1, Buffer.from([0xab]));
  assert.deepEqual(await s.read('vol1', info.size - 1, 1), Buffer.from([0xab]));
  await s.close();
});

test('extent: generations are stamped after the write, per touched unit, and survive a reopen', async () => {
  const root = await tempDir();
  let s = await ExtentStore.open(root);
  await s.create('v', { units: 8, unitSize: U });
  assert.deepEqual(await s.generations('v', 0, 8), [0, 0, 0, 0, 0, 0, 0, 0]);
  await s.write('v', U + 10, Buffer.alloc(U, 1), { generation: 5 }); // touches units 1 and 2
  await s.write('v', 7 * U, Buffer.alloc(10, 2), { generation: MAX_EXTENT_GENERATION, durable: true });
  await s.write('v', 4 * U, Buffer.alloc(10, 3)); // no generation: unchanged
  assert.deepEqual(await s.generations('v', 0, 8), [0, 5, 5, 0, 0, 0, 0, MAX_EXTENT_GENERATION]);
  await s.sync('v');
  await s.close();
  s = await ExtentStore.open(root);
  assert.deepEqual(s.list(), [{ name: 'v', units: 8, unitSize: U, size: 8 * U }]);
  assert.deepEqual(await s.generations('v', 1, 2), [5, 5]);
  assert.deepEqual(await s.read('v', U + 10, 4), Buffer.alloc(4, 1));
  await s.close();
});

test('extent: a write older than a unit\'s generation is refused and changes nothing', async () => {
  const s = await ExtentStore.open(await tempDir());
  await s.create('v', { units: 4, unitSize: U });
  await s.write('v', U, Buffer.alloc(U, 9), { generation: 7 });
  await assert.rejects(s.write('v', 0, Buffer.alloc(2 * U, 1), { generation: 6 }), (e) => isTesseraError(e, 'CONFLICT') && /generation 7/.test(e.message));
  assert.deepEqual(await s.read('v', 0, 2 * U), Buffer.concat([Buffer.alloc(U), Buffer.alloc(U, 9)]));
  assert.deepEqual(await s.generations('v', 0, 2), [0, 7]);
  // Equal generation is the same writer: accepted.
  await s.write('v', U, Buffer.alloc(1, 4), { generation: 7 });
  await s.close();
});

test('extent: concurrent writes to one unit with different generations leave data and generation consistent', async () => {
  const s = await ExtentStore.open(await tempDir());
  await s.create('v', { units: 2, unitSize: U });
  for (let round = 0; round < 20; round++) {
    const gens = [round * 3 + 1, round * 3 + 2, round * 3 + 3];
    await Promise.allSettled(gens.map((g) => s.write('v', 0, Buffer.alloc(U, g & 0xff), { generation: g })));
    const [g] = await s.generations('v', 0, 1);
    const byte = (await s.read('v', 0, 1))[0];
    assert.equal(byte, (g ?? -1) & 0xff, `round ${round}: unit holds data of another generation than it is stamped with`);
  }
  await s.close();
});

test('extent: bounds on ranges, sizes, names and generations', async () => {
  const s = await ExtentStore.open(await tempDir());
  const info = await s.create('v', { units: 4, unitSize: MIN_EXTENT_UNIT_BYTES });
  const bad = (e: unknown) => isTesseraError(e, 'BAD_INPUT');
  const big = (e: unknown) => isTesseraError(e, 'TOO_LARGE');
  await assert.rejects(s.read('v', info.size - 1, 2), bad);
  await assert.rejects(s.read('v', -1, 1), bad);
  await assert.rejects(s.read('v', 0.5, 1), bad);
  await assert.rejects(s.write('v', info.size, Buffer.alloc(1)), bad);
  await assert.rejects(s.write('v', 0, Buffer.alloc(1), { generation: MAX_EXTENT_GENERATION + 1 }), bad);
  await assert.rejects(s.write('v', 0, Buffer.alloc(1), { generation: -1 }), bad);
  await assert.rejects(s.generations('v', 3, 2), bad);
  await assert.rejects(s.generations('v', 0, MAX_GENERATIONS_PER_READ + 1), big);
  await assert.rejects(s.read('nope', 0, 1), (e) => isTesseraError(e, 'NOT_FOUND'));
  await assert.rejects(s.create('v', { units: 1, unitSize: MIN_EXTENT_UNIT_BYTES }), (e) => isTesseraError(e, 'CONFLICT'));
  for (const name of ['../x', '.hidden', '', 'a/b', 'x'.repeat(129)]) {
    await assert.rejects(s.create(name, { units: 1, unitSize: MIN_EXTENT_UNIT_BYTES }), bad, name);
  }
  await assert.rejects(s.create('u', { units: 1, unitSize: MIN_EXTENT_UNIT_BYTES - 512 }), bad);
  await assert.rejects(s.create('u', { units: 1, unitSize: MAX_EXTENT_UNIT_BYTES * 2 }), bad);
  await assert.rejects(s.create('u', { units: 1, unitSize: MIN_EXTENT_UNIT_BYTES + 1 }), bad);
  await assert.rejects(s.create('u', { units: 0, unitSize: MIN_EXTENT_UNIT_BYTES }), bad);
  await assert.rejects(s.create('u', { units: MAX_EXTENT_UNITS + 1, unitSize: MIN_EXTENT_UNIT_BYTES }), big);
  // One I/O call is bounded: a volume big enough to cross the limit refuses it.
  const large = await s.create('large', { units: 16, unitSize: MAX_EXTENT_UNIT_BYTES });
  assert.ok(large.size > MAX_EXTENT_IO_BYTES);
  await assert.rejects(s.read('large', 0, MAX_EXTENT_IO_BYTES + 1), big);
  assert.equal((await s.read('large', 0, MAX_EXTENT_IO_BYTES)).length, MAX_EXTENT_IO_BYTES);
  await s.close();
  await assert.rejects(s.read('v', 0, 1), (e) => isTesseraError(e, 'UNAVAILABLE'));
});

test('extent: delete removes the volume; open clears half-made volumes and skips unreadable ones', async () => {
  const root = await tempDir();
  let s = await ExtentStore.open(root);
  await s.create('a', { units: 2, unitSize: U });
  await s.create('b', { units: 2, unitSize: U });
  assert.equal(await s.delete('a'), true);
  assert.equal(await s.delete('a'), false);
  assert.deepEqual(s.list().map((v) => v.name), ['b']);
  await assert.rejects(s.read('a', 0, 1), (e) => isTesseraError(e, 'NOT_FOUND'));
  await s.close();
  await mkdir(join(root, '.new-c-1234'));
  await mkdir(join(root, 'broken'));
  await writeFile(join(root, 'broken', 'volume.json'), '{"units": -1, "unitSize": 3}');
  s = await ExtentStore.open(root);
  assert.deepEqual(s.list().map((v) => v.name), ['b']);
  assert.deepEqual((await readdir(root)).sort(), ['b', 'broken']);
  await assert.rejects(s.create('broken', { units: 1, unitSize: U }), (e) => isTesseraError(e, 'CONFLICT'));
  // A re-created volume starts from zeroes, not the old data.
  await s.write('b', 0, Buffer.alloc(10, 1), { generation: 3 });
  await s.delete('b');
  await s.create('b', { units: 2, unitSize: U });
  assert.deepEqual(await s.read('b', 0, 10), Buffer.alloc(10));
  assert.deepEqual(await s.generations('b', 0, 2), [0, 0]);
  await s.close();
});

test('extent: reads of cached data are made in line; one that reached the disk sends that volume to the thread pool for a while', async () => {
  let now = 1_000;
  let diskReads = 0;
  // When set, every look at the block-read count finds it grown: the read in between went to the disk.
  let readsHitDisk = false;
  const s = await ExtentStore.open(await tempDir(), { now: () => now, diskReads: () => (readsHitDisk ? ++diskReads : diskReads) });
  await s.create('hot', { units: 64, unitSize: U });
  await s.create('other', { units: 64, unitSize: U });
  const data = randomBytes(8 * U);
  await s.write('hot', 0, data);
  await s.write('other', 0, data);

  assert.deepEqual(await s.read('hot', 4096, 4096), data.subarray(4096, 8192));
  assert.deepEqual(s.readCounters, { inLine: 1, pooled: 0, fromDisk: 0 });

  readsHitDisk = true;
  assert.deepEqual(await s.read('hot', 0, 4096), data.subarray(0, 4096));
  readsHitDisk = false;
  assert.deepEqual(s.readCounters, { inLine: 2, pooled: 0, fromDisk: 1 });

  // Within the interval that volume's reads take the thread pool, and return the same bytes.
  const into = [Buffer.alloc(U), Buffer.alloc(U)];
  await s.readInto('hot', U, into);
  assert.deepEqual(Buffer.concat(into), data.subarray(U, 3 * U));
  assert.equal(s.readCounters.pooled, 1);
  // Other volumes keep reading in line.
  assert.deepEqual(await s.read('other', 0, 100), data.subarray(0, 100));
  assert.equal(s.readCounters.inLine, 3);

  now += COLD_READS_POOLED_MS + 1;
  assert.deepEqual(await s.read('hot', 2 * U, 4096), data.subarray(2 * U, 2 * U + 4096));
  assert.deepEqual(s.readCounters, { inLine: 4, pooled: 1, fromDisk: 1 });

  // Reads larger than the in-line limit always take the thread pool.
  const big = await s.read('other', 0, SYNC_READ_MAX_BYTES + 4096);
  assert.deepEqual(big, data.subarray(0, big.length));
  assert.deepEqual(s.readCounters, { inLine: 4, pooled: 2, fromDisk: 1 });
  await s.close();
});

test('extent: a write of part of a page that had to read the page from disk sends that volume to the thread pool for a while', async () => {
  let now = 1_000;
  let diskReads = 0;
  let writesHitDisk = false;
  const s = await ExtentStore.open(await tempDir(), { now: () => now, diskReads: () => (writesHitDisk ? ++diskReads : diskReads) });
  await s.create('v', { units: 64, unitSize: U });
  const record = randomBytes(4128);
  await s.write('v', 4128, record);
  assert.deepEqual(await s.read('v', 4128, 4128), record);
  assert.deepEqual(s.readCounters, { inLine: 1, pooled: 0, fromDisk: 0 });

  writesHitDisk = true;
  await s.write('v', 3 * 4128, record);
  writesHitDisk = false;
  assert.deepEqual(await s.read('v', 3 * 4128, 4128), record);
  assert.equal(s.readCounters.pooled, 1, 'the volume looks cold: its reads take the thread pool');
  await s.write('v', 5 * 4128, record);
  assert.deepEqual(await s.read('v', 5 * 4128, 4128), record, 'partial writes on the thread pool land too');
  now += COLD_READS_POOLED_MS + 1;
  assert.deepEqual(await s.read('v', 0, 4128 * 2), Buffer.concat([Buffer.alloc(4128), record]));
  assert.equal(s.readCounters.inLine, 2);
  await s.close();
});

test('extent: in-line reads of one turn share their looks at the block-read count; a rise between turns blames no read', async () => {
  let diskReads = 0;
  let looks = 0;
  const s = await ExtentStore.open(await tempDir(), { diskReads: () => { looks++; return diskReads; } });
  await s.create('v', { units: 64, unitSize: U });
  const data = randomBytes(8 * U);
  await s.write('v', 0, data);

  // Three reads started in one turn: one look before the first, one after each.
  const reads = [0, 1, 2].map((i) => s.read('v', i * U, 4096));
  const got = await Promise.all(reads);
  got.forEach((b, i) => assert.deepEqual(b, data.subarray(i * U, i * U + 4096)));
  assert.equal(looks, 4);
  assert.deepEqual(s.readCounters, { inLine: 3, pooled: 0, fromDisk: 0 });

  // Blocks read elsewhere (the thread pool, another file) between turns are not this volume's.
  await new Promise((r) => setImmediate(r));
  diskReads += 5;
  assert.deepEqual(await s.read('v', 3 * U, 4096), data.subarray(3 * U, 3 * U + 4096));
  assert.deepEqual(s.readCounters, { inLine: 4, pooled: 0, fromDisk: 0 });
  assert.equal(looks, 6);
  await s.close();
});

test('extent: in-line partial-page writes of one turn share their looks at the block-read count', async () => {
  let diskReads = 0;
  let looks = 0;
  const s = await ExtentStore.open(await tempDir(), { diskReads: () => { looks++; return diskReads; } });
  await s.create('v', { units: 64, unitSize: U });
  await s.write('v', 0, Buffer.alloc(8 * U));
  const records = [0, 1, 2, 3].map(() => randomBytes(4160));
  looks = 0;
  // Four sealed records (none a whole page) in four units, started in one turn: one look before the first, one after each.
  await Promise.all(records.map((r, i) => s.write('v', i * U + 4160, r)));
  assert.equal(looks, 5);
  for (const [i, r] of records.entries()) assert.deepEqual(await s.read('v', i * U + 4160, 4160), r);
  assert.deepEqual(s.readCounters, { inLine: 4, pooled: 0, fromDisk: 0 });
  await s.close();
});

test('extent: a data file cut short behind the store reads as zeroes past the cut, in line and through the thread pool', async () => {
  const root = await tempDir();
  const s = await ExtentStore.open(root);
  await s.create('cut', { units: 16, unitSize: U });
  const data = randomBytes(16 * U);
  await s.write('cut', 0, data);
  const cut = 5 * U + 100;
  await truncate(join(root, 'cut', 'extent'), cut);

  const small = await s.read('cut', cut - 4096, 8192);
  assert.deepEqual(small, Buffer.concat([data.subarray(cut - 4096, cut), Buffer.alloc(4096)]));
  assert.equal(s.readCounters.inLine, 1);

  const bigLength = SYNC_READ_MAX_BYTES + 4096;
  const big = await s.read('cut', cut - 4096, bigLength);
  assert.deepEqual(big, Buffer.concat([data.subarray(cut - 4096, cut), Buffer.alloc(bigLength - 4096)]));
  assert.equal(s.readCounters.pooled, 1);
  await s.close();
});
