import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  decodeIntents, encodeBatch, encodeIntents, INTENT_COMPACT_BYTES, IntentLog, MAX_INTENT_STRIPES,
} from '../../../src/block/volume/intent-log.js';
import { DEFAULT_LOG_RESERVE_BYTES, FileLogStorage, MemoryBlobStorage } from '../../../src/block/volume/storage.js';

async function tmp(): Promise<string> { return mkdtemp(join(tmpdir(), 'tessera-intent-')); }
const sorted = (xs: readonly number[]) => [...xs].sort((a, b) => a - b);
/** What a master that crashed now would find, read without disturbing the live log. */
async function onDisk(path: string): Promise<number[]> {
  const blob = await new FileLogStorage(path).load();
  return blob === null ? [] : sorted(decodeIntents(blob));
}

test('intent log: marks are on disk before begin resolves, one append per burst, none for hot stripes', async () => {
  const dir = await tmp();
  try {
    const path = join(dir, 'intent');
    const storage = new FileLogStorage(path);
    const log = await IntentLog.open(storage, { clearDelayMs: 60_000 });
    const stripes = Array.from({ length: 40 }, (_, i) => i * 3);
    await Promise.all(stripes.map((s) => log.begin(s)));
    assert.equal(storage.appends, 1, 'every stripe of the burst shared one append');
    assert.deepEqual(await onDisk(path), stripes);
    for (const s of stripes) log.end(s);
    // Rewriting hot stripes costs no log write at all.
    await Promise.all(stripes.map((s) => log.begin(s)));
    for (const s of stripes) log.end(s);
    assert.equal(storage.appends, 1);
    // While one append is being synced, the next stripes queue for a single following append.
    const first = log.begin(1000);
    const more = [log.begin(1001), log.begin(1002), log.begin(1003)];
    await Promise.all([first, ...more]);
    assert.ok(storage.appends <= 3, `at most two appends for the second burst, saw ${storage.appends - 1}`);
    assert.deepEqual(await onDisk(path), sorted([...stripes, 1000, 1001, 1002, 1003]));
    // Appends overwrite the zeroed reserve: the file does not grow.
    assert.equal((await stat(path)).size, encodeIntents([]).length + DEFAULT_LOG_RESERVE_BYTES);
    for (const s of [1000, 1001, 1002, 1003]) log.end(s);
    await log.close();
    assert.deepEqual(await onDisk(path), [], 'a clean close leaves nothing to recover');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('intent log: idle stripes are cleared after the delay, busy ones stay', async () => {
  const dir = await tmp();
  try {
    const path = join(dir, 'intent');
    const log = await IntentLog.open(new FileLogStorage(path), { clearDelayMs: 30 });
    await log.begin(7);
    await log.begin(8);
    log.end(7);
    await new Promise((r) => setTimeout(r, 150));
    assert.deepEqual(await onDisk(path), [8], 'the idle stripe left, the one in flight stayed');
    // A cleared stripe must be marked again before its next write.
    await log.begin(7);
    assert.deepEqual(await onDisk(path), [7, 8]);
    log.end(7);
    log.end(8);
    await new Promise((r) => setTimeout(r, 150));
    assert.deepEqual(await onDisk(path), []);
    assert.equal(log.marked, 0);
    await log.close();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('intent log: a torn or damaged tail is ignored, earlier batches count', async () => {
  const base = Buffer.concat([encodeIntents([1, 2]), encodeBatch([[3, true], [1, false]])]);
  assert.deepEqual(sorted(decodeIntents(base)), [2, 3]);
  const next = encodeBatch([[9, true], [2, false]]);
  assert.deepEqual(sorted(decodeIntents(Buffer.concat([base, next]))), [3, 9]);
  for (let cut = 1; cut < next.length; cut++) {
    assert.deepEqual(sorted(decodeIntents(Buffer.concat([base, next.subarray(0, cut)]))), [2, 3], `torn after ${cut} bytes`);
  }
  const flipped = Buffer.from(next);
  flipped[8] = (flipped[8] as number) ^ 1;
  assert.deepEqual(sorted(decodeIntents(Buffer.concat([base, flipped, encodeBatch([[50, true]])]))), [2, 3]);
  assert.deepEqual(sorted(decodeIntents(Buffer.concat([base, Buffer.alloc(4096)]))), [2, 3], 'the zeroed reserve ends the log');
  // Reopening compacts: a later append lands where a reader will find it.
  const s = new MemoryBlobStorage();
  await s.save(Buffer.concat([base, next.subarray(0, 5)]));
  const log = await IntentLog.open(s);
  assert.deepEqual(sorted(log.pending), [2, 3]);
  await log.begin(40);
  assert.deepEqual(sorted(decodeIntents((await s.load()) as Buffer)), [2, 3, 40]);
});

test('intent log: reads the earlier whole-file format', async () => {
  const v1 = Buffer.alloc(8 + 12);
  v1.write('TIL1', 0, 'latin1');
  v1.writeUInt32LE(2, 4);
  v1.writeUIntLE(5, 8, 6);
  v1.writeUIntLE(77, 14, 6);
  assert.deepEqual(decodeIntents(v1), [5, 77]);
});

test('intent log: marked stripes stay within MAX_INTENT_STRIPES, longest idle evicted first', async () => {
  const s = new MemoryBlobStorage();
  const log = await IntentLog.open(s, { clearDelayMs: 60_000 });
  const all = Array.from({ length: MAX_INTENT_STRIPES }, (_, i) => i);
  await Promise.all(all.map((i) => log.begin(i)));
  for (const i of all) log.end(i);
  assert.equal(log.marked, MAX_INTENT_STRIPES);
  await log.begin(MAX_INTENT_STRIPES + 5);
  assert.ok(log.marked <= MAX_INTENT_STRIPES, `marked ${log.marked}`);
  const onLog = new Set(decodeIntents((await s.load()) as Buffer));
  assert.ok(onLog.size <= MAX_INTENT_STRIPES);
  assert.ok(onLog.has(MAX_INTENT_STRIPES + 5));
  assert.ok(!onLog.has(0), 'the stripe idle longest was cleared');
  log.end(MAX_INTENT_STRIPES + 5);
});

test('intent log: appends past the compaction threshold rewrite the log whole', async () => {
  const s = new MemoryBlobStorage();
  const log = await IntentLog.open(s, { clearDelayMs: 1 });
  let stripe = 0;
  const saves0 = s.saves;
  // Each round marks a new stripe and lets the old ones be cleared: the log keeps growing by appends.
  for (let round = 0; round < 400 && s.saves === saves0; round++) {
    const batch = Array.from({ length: 1024 }, () => stripe++);
    await Promise.all(batch.map((i) => log.begin(i)));
    for (const i of batch) log.end(i);
    await new Promise((r) => setTimeout(r, 3));
  }
  assert.ok(s.saves > saves0, 'a compaction happened');
  assert.ok(((await s.load()) as Buffer).length < INTENT_COMPACT_BYTES + 32 * 1024, 'the log stays bounded');
  await log.close();
});

test('intent log: a failed append fails the writes waiting on it, and the next one compacts', async () => {
  const s = new MemoryBlobStorage();
  const log = await IntentLog.open(s);
  const append = s.append.bind(s);
  s.append = async () => { throw new Error('disk gone'); };
  await assert.rejects(log.begin(3), /disk gone/);
  assert.equal(log.inFlight, 0);
  s.append = append;
  const saves = s.saves;
  await log.begin(4);
  assert.equal(s.saves, saves + 1, 'rewritten whole after the failure');
  assert.deepEqual(decodeIntents((await s.load()) as Buffer), [4]);
});
