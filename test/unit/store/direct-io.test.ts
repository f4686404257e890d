import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cp, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chunk, chunkStoreContract } from './contract.js';
import { rotStored, segmentFiles } from './segment-helpers.js';
import { captureLogger } from '../net/helpers.js';
import { SegmentChunkStore } from '../../../src/store/segment-store.js';
import { DIRECT_ALIGN, DirectReader, planDirectWrite } from '../../../src/store/direct-io.js';
import { RECORD_HEADER_BYTES, SEGMENT_HEADER_BYTES } from '../../../src/store/segment-format.js';

const dirs: string[] = [];
async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'tessera-dio-'));
  dirs.push(d);
  return d;
}
test.after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

const segmentPaths = async (root: string) => (await segmentFiles(root)).map((n) => join(root, 'segments', n));

// The page-cache path keeps the whole contract too (it is what stores on tmpfs use).
chunkStoreContract({
  name: 'segments through the page cache',
  open: async (opts) => SegmentChunkStore.open(await tempDir(), { ...opts, directWrites: false }),
  rot: rotStored,
});

test('direct writes: the aligned write covers the partial block before the append and pads to the next', () => {
  assert.deepEqual(planDirectWrite(0, 0), { from: 0, lead: 0, length: 0 });
  assert.deepEqual(planDirectWrite(0, 1), { from: 0, lead: 0, length: DIRECT_ALIGN });
  assert.deepEqual(planDirectWrite(100, DIRECT_ALIGN - 100), { from: 0, lead: 100, length: DIRECT_ALIGN });
  assert.deepEqual(planDirectWrite(100, DIRECT_ALIGN - 99), { from: 0, lead: 100, length: 2 * DIRECT_ALIGN });
  assert.deepEqual(planDirectWrite(3 * DIRECT_ALIGN + 7, 1 << 20), { from: 3 * DIRECT_ALIGN, lead: 7, length: (1 << 20) + DIRECT_ALIGN });
  for (const [start, bytes] of [[1, 1], [4095, 2], [8192, 8192], [12345, 678901]] as const) {
    const p = planDirectWrite(start, bytes);
    assert.equal(p.from % DIRECT_ALIGN, 0);
    assert.equal(p.length % DIRECT_ALIGN, 0);
    assert.equal(p.from + p.lead, start);
    assert.ok(p.lead + bytes <= p.length && p.length - (p.lead + bytes) < DIRECT_ALIGN);
  }
  assert.throws(() => planDirectWrite(-1, 1));
  assert.throws(() => planDirectWrite(0, 0.5));
});

test('direct writes: a crash leaves only padding, which reopening drops quietly with every acknowledged chunk intact', async (t) => {
  const root = await tempDir();
  const s = await SegmentChunkStore.open(root, { autoCompact: false });
  const direct = s.stats().directWrites;
  if (!direct) t.diagnostic(`O_DIRECT is refused under ${tmpdir()}: only the page-cache path ran`);
  // Odd sizes, one at a time (each batch continues the partial block the last one left) and then
  // a burst (several records in one batch).
  const kept = [3001, 17, 70_001, 4096, 1].map((n) => chunk(n));
  for (const c of kept) await s.put(c.id, c.data);
  const burst = Array.from({ length: 12 }, (_, i) => chunk(90_000 + i * 997));
  await Promise.all(burst.map((c) => s.put(c.id, c.data)));
  kept.push(...burst);
  const logical = SEGMENT_HEADER_BYTES + kept.reduce((a, c) => a + RECORD_HEADER_BYTES + c.data.length, 0);
  const [path] = await segmentPaths(root);
  const size = (await stat(path!)).size;
  if (direct) {
    assert.equal(size % DIRECT_ALIGN, 0, 'a direct append pads the file to a whole block');
    assert.ok(size > logical && size - logical < DIRECT_ALIGN);
    assert.ok((await readFile(path!)).subarray(logical).every((b) => b === 0));
  }
  // What a power cut leaves: everything acknowledged was fdatasync'd, so a copy taken now is it.
  const crashed = await tempDir();
  await cp(join(root, 'segments'), join(crashed, 'segments'), { recursive: true });
  await s.close();
  assert.equal((await stat(path!)).size, logical, 'a clean close ends the segment at its last record');

  const cap = captureLogger();
  const again = await SegmentChunkStore.open(crashed, { autoCompact: false, log: cap.logger });
  try {
    const [copy] = await segmentPaths(crashed);
    assert.equal((await stat(copy!)).size, logical);
    for (const c of kept) assert.deepEqual(await again.get(c.id), c.data);
    const noisy = cap.lines().filter((l) => Number(l.level) >= 30);
    assert.deepEqual(noisy.map((l) => l.msg), [], 'padding is not reported as damage or a torn tail');
    // Appends continue after the last record, directly again.
    const after = chunk(5000);
    await again.put(after.id, after.data);
    assert.deepEqual(await again.get(after.id), after.data);
  } finally {
    await again.close();
  }
});

test('direct writes: sealed segments end at their last record, and reopening finds every chunk', async () => {
  const root = await tempDir();
  const cap = captureLogger();
  let s = await SegmentChunkStore.open(root, { autoCompact: false, segmentBytes: 256 << 10, log: cap.logger });
  const kept = Array.from({ length: 30 }, (_, i) => chunk(20_000 + i * 1_111));
  for (const c of kept) await s.put(c.id, c.data);
  const paths = await segmentPaths(root);
  assert.ok(paths.length >= 3, `30 chunks of ~36 KB fill several 256 KiB segments (got ${paths.length})`);
  for (const p of paths.slice(0, -1)) {
    const bytes = await readFile(p);
    // A sealed segment was trimmed at its roll: its last byte is a record's, not padding.
    assert.notEqual(bytes.length % DIRECT_ALIGN === 0 && bytes.subarray(-64).every((b) => b === 0), true, `${p} ends in padding`);
  }
  await s.close();
  s = await SegmentChunkStore.open(root, { autoCompact: false, log: cap.logger });
  try {
    for (const c of kept) assert.deepEqual(await s.get(c.id), c.data);
    assert.deepEqual(cap.lines().filter((l) => Number(l.level) >= 40).map((l) => l.msg), []);
  } finally {
    await s.close();
  }
});

test('direct reads: more large reads at once than slabs all return their own bytes', async () => {
  const root = await tempDir();
  const s = await SegmentChunkStore.open(root, { autoCompact: false });
  try {
    const many = Array.from({ length: 40 }, (_, i) => chunk(100_000 + i * 4093));
    await Promise.all(many.map((c) => s.put(c.id, c.data)));
    // Twice over: slabs must come back after use.
    for (let round = 0; round < 2; round++) {
      const got = await Promise.all(many.map((c) => s.get(c.id)));
      got.forEach((g, i) => assert.deepEqual(g, many[i]!.data));
    }
  } finally {
    await s.close();
  }
});

test('direct reads: a record larger than a slab, or with every slab busy, is left to the page cache', async () => {
  const r = new DirectReader(2 * DIRECT_ALIGN, 1);
  const fake = { read: () => new Promise(() => {}) } as unknown as import('node:fs/promises').FileHandle;
  assert.equal(await r.read(fake, Buffer.alloc(2 * DIRECT_ALIGN), 1), undefined, 'needs three blocks: larger than the slab');
  const busy = r.read(fake, Buffer.alloc(10), 0);
  assert.equal(await r.read(fake, Buffer.alloc(10), 0), undefined, 'the only slab is out');
  void busy;
});

test('direct writes off: the store says so and never pads', async () => {
  const root = await tempDir();
  const s = await SegmentChunkStore.open(root, { directWrites: false });
  try {
    assert.equal(s.stats().directWrites, false);
    const c = chunk(3000);
    await s.put(c.id, c.data);
    const [path] = await segmentPaths(root);
    assert.equal((await stat(path!)).size, SEGMENT_HEADER_BYTES + RECORD_HEADER_BYTES + 3000);
    assert.deepEqual(await s.get(c.id), c.data);
  } finally {
    await s.close();
  }
});
