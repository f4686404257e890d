import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFile, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chunk, chunkStoreContract } from './contract.js';
import { rotData, rotStored, segmentFiles } from './segment-helpers.js';
import { SegmentChunkStore, type SegmentChunkStoreOptions } from '../../../src/store/segment-store.js';
import { DiskChunkStore } from '../../../src/store/disk-store.js';
import { isTesseraError } from '../../../src/errors.js';
import { MAX_CHUNK_BYTES } from '../../../src/limits.js';
import {
  RECORD_HEADER_BYTES,
  RecordKind,
  SEGMENT_HEADER_BYTES,
  decodeRecordHeader,
  decodeSegmentHeader,
  encodeRecordHeader,
  encodeSegmentHeader,
  parseSegmentFileName,
  segmentFileName,
} from '../../../src/store/segment-format.js';

const dirs: string[] = [];
async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'tessera-seg-'));
  dirs.push(d);
  return d;
}
test.after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});


async function collect(s: SegmentChunkStore): Promise<string[]> {
  const out: string[] = [];
  for await (const id of s.list()) out.push(id.toString('hex'));
  return out.sort();
}

chunkStoreContract({
  name: 'segments',
  open: async (opts) => SegmentChunkStore.open(await tempDir(), opts),
  rot: rotStored,
});

const manual: SegmentChunkStoreOptions = { autoCompact: false, compactionBytesPerSecond: Number.MAX_SAFE_INTEGER };

test('segment format: headers round-trip and every bound is enforced', () => {
  const salt = Buffer.alloc(16, 9);
  const id = chunk(10).id;
  const h = encodeRecordHeader(salt, RecordKind.Put, id, 1234);
  assert.deepEqual(decodeRecordHeader(salt, h), { kind: RecordKind.Put, id, length: 1234 });
  // Another segment's salt: the check fails, so stored bytes cannot pass for a header elsewhere.
  assert.equal(decodeRecordHeader(Buffer.alloc(16, 8), h), undefined);
  assert.equal(decodeRecordHeader(salt, h.subarray(0, RECORD_HEADER_BYTES - 1)), undefined);
  for (let i = 0; i < RECORD_HEADER_BYTES; i++) {
    const bad = Buffer.from(h);
    bad[i] = (bad[i] ?? 0) ^ 0x10;
    assert.equal(decodeRecordHeader(salt, bad), undefined, `flip at byte ${i} accepted`);
  }
  // A length over the limit is refused even with a valid check.
  assert.equal(decodeRecordHeader(salt, encodeRecordHeader(salt, RecordKind.Put, id, MAX_CHUNK_BYTES + 1)), undefined);
  assert.ok(decodeRecordHeader(salt, encodeRecordHeader(salt, RecordKind.Put, id, MAX_CHUNK_BYTES)));
  assert.equal(decodeRecordHeader(salt, encodeRecordHeader(salt, RecordKind.Tombstone, id, 1)), undefined);
  assert.equal(decodeRecordHeader(salt, encodeRecordHeader(salt, 3 as RecordKind, id, 0)), undefined);
  const sh = encodeSegmentHeader(7, salt);
  assert.deepEqual(decodeSegmentHeader(sh, 7), salt);
  assert.equal(decodeSegmentHeader(sh, 8), undefined);
  assert.equal(parseSegmentFileName(segmentFileName(255)), 255);
  assert.equal(parseSegmentFileName('00000000000000ff.seg.tmp'), undefined);
});

test('segments: group commit: concurrent puts share fdatasyncs', async () => {
  const s = await SegmentChunkStore.open(await tempDir(), manual);
  try {
    const chunks = Array.from({ length: 64 }, () => chunk(4096));
    await Promise.all(chunks.map((c) => s.put(c.id, c.data)));
    const st = s.stats();
    assert.equal(st.recordsWritten, 64);
    assert.ok(st.syncs <= 8, `64 concurrent puts took ${st.syncs} fdatasyncs`);
    for (const c of chunks) assert.deepEqual(await s.get(c.id), c.data);
  } finally {
    await s.close();
  }
});

test('segments: contents, deletes, quarantine and usage survive a reopen', async () => {
  const root = await tempDir();
  const opts = { ...manual, quota: 1 << 20, segmentBytes: 16 << 10 };
  let s = await SegmentChunkStore.open(root, opts);
  const chunks = Array.from({ length: 30 }, (_, i) => chunk(100 + i * 97));
  for (const c of chunks) await s.put(c.id, c.data);
  const [q, d1, d2] = chunks;
  await s.quarantine(q!.id);
  await s.delete(d1!.id);
  await s.delete(d2!.id);
  // Deleted, then stored again: the later put must win at reopen.
  await s.put(d2!.id, d2!.data);
  const before = s.usage();
  assert.ok(s.stats().segments > 1, 'expected the test to span several segments');
  await s.close();
  s = await SegmentChunkStore.open(root, opts);
  try {
    assert.equal(s.usage().used, before.used);
    assert.equal(s.usage().count, 28);
    assert.equal(await s.has(q!.id), false);
    assert.equal(await s.has(d1!.id), false);
    assert.deepEqual(await s.get(d2!.id), d2!.data);
    for (const c of chunks.slice(3)) assert.deepEqual(await s.get(c.id), c.data);
    const quarantined: string[] = [];
    for await (const id of s.listQuarantined()) quarantined.push(id.toString('hex'));
    assert.deepEqual(quarantined, [q!.id.toString('hex')]);
    assert.deepEqual(await readFile(join(root, 'segments.quarantine', q!.id.toString('hex'))), q!.data);
  } finally {
    await s.close();
  }
});

test('segments: a torn tail is truncated at open and appends continue after it', async () => {
  const root = await tempDir();
  let s = await SegmentChunkStore.open(root, manual);
  const kept = Array.from({ length: 5 }, () => chunk(3000));
  for (const c of kept) await s.put(c.id, c.data);
  await s.close();
  const [name] = await segmentFiles(root);
  const path = join(root, 'segments', name!);
  const goodSize = (await stat(path)).size;
  const salt = decodeSegmentHeader(await readFile(path), parseSegmentFileName(name!)!)!;
  // What a crash mid-append leaves: a whole header whose data never fully reached the disk.
  const torn = chunk(5000);
  await appendFile(path, Buffer.concat([encodeRecordHeader(salt, RecordKind.Put, torn.id, 5000), torn.data.subarray(0, 1200)]));
  s = await SegmentChunkStore.open(root, manual);
  assert.equal((await stat(path)).size, goodSize);
  assert.equal(await s.has(torn.id), false);
  assert.equal(s.usage().count, 5);
  const after = chunk(2000);
  await s.put(after.id, after.data);
  await s.close();
  s = await SegmentChunkStore.open(root, manual);
  try {
    for (const c of [...kept, after]) assert.deepEqual(await s.get(c.id), c.data);
    assert.equal(s.usage().count, 6);
  } finally {
    await s.close();
  }
});

test('segments: an unflushed hole in the newest segment hides only the records it damaged', async () => {
  const root = await tempDir();
  let s = await SegmentChunkStore.open(root, manual);
  const a = chunk(3000);
  const b = chunk(3000);
  const c = chunk(3000);
  for (const x of [a, b, c]) await s.put(x.id, x.data);
  await s.close();
  const [name] = await segmentFiles(root);
  const path = join(root, 'segments', name!);
  const bytes = await readFile(path);
  // Pages written out of order before a crash: b's data never made it (zeros), c's did.
  const bAt = bytes.indexOf(b.data.subarray(0, 32));
  bytes.fill(0, bAt + 100, bAt + 2000);
  await writeFile(path, bytes);
  s = await SegmentChunkStore.open(root, manual);
  try {
    assert.deepEqual(await s.get(a.id), a.data);
    assert.equal(await s.has(b.id), false);
    assert.deepEqual(await s.get(c.id), c.data);
    assert.equal(s.usage().used, 6000);
  } finally {
    await s.close();
  }
});

test('segments: a damaged header in a sealed segment loses only that record', async () => {
  const root = await tempDir();
  const opts = { ...manual, segmentBytes: 64 << 10 };
  let s = await SegmentChunkStore.open(root, opts);
  const chunks = Array.from({ length: 40 }, () => chunk(5000));
  for (const x of chunks) await s.put(x.id, x.data);
  await s.close();
  const [first] = await segmentFiles(root);
  const path = join(root, 'segments', first!);
  const bytes = await readFile(path);
  // Rot in the length field of the second record of the oldest (sealed, unverified) segment.
  const second = SEGMENT_HEADER_BYTES + RECORD_HEADER_BYTES + 5000;
  bytes[second + 10] = (bytes[second + 10] ?? 0) ^ 0x7f;
  await writeFile(path, bytes);
  s = await SegmentChunkStore.open(root, opts);
  try {
    const lost = chunks.filter((x) => bytes.indexOf(x.data.subarray(0, 32)) === second + RECORD_HEADER_BYTES);
    assert.equal(lost.length, 1);
    assert.equal(await s.has(lost[0]!.id), false);
    for (const x of chunks) if (x !== lost[0]) assert.deepEqual(await s.get(x.id), x.data);
    assert.equal(s.usage().count, 39);
  } finally {
    await s.close();
  }
});

test('segments: an interrupted segment start is removed; a junk segment name is ignored', async () => {
  const root = await tempDir();
  let s = await SegmentChunkStore.open(root, manual);
  const a = chunk(100);
  await s.put(a.id, a.data);
  await s.close();
  await writeFile(join(root, 'segments', segmentFileName(99)), Buffer.alloc(10));
  await writeFile(join(root, 'segments', 'notes.txt'), 'not a segment');
  s = await SegmentChunkStore.open(root, manual);
  try {
    assert.deepEqual(await segmentFiles(root), [segmentFileName(1)]);
    assert.deepEqual(await s.get(a.id), a.data);
  } finally {
    await s.close();
  }
});

test('segments: compaction keeps every live chunk, reclaims space, and deletes stay deleted after reopen', async () => {
  const root = await tempDir();
  const opts = { ...manual, segmentBytes: 32 << 10 };
  let s = await SegmentChunkStore.open(root, opts);
  const chunks = Array.from({ length: 60 }, () => chunk(4000));
  for (const x of chunks) await s.put(x.id, x.data);
  const live = chunks.filter((_, i) => i % 4 === 0);
  const gone = chunks.filter((_, i) => i % 4 !== 0);
  for (const x of gone) await s.delete(x.id);
  const before = s.stats();
  const done = await s.compact();
  const after = s.stats();
  assert.ok(done.segments > 0, 'nothing was compacted');
  assert.ok(after.bytesOnDisk < before.bytesOnDisk / 2, `on disk ${before.bytesOnDisk} → ${after.bytesOnDisk}`);
  assert.ok(after.segments < before.segments);
  for (const x of live) assert.deepEqual(await s.get(x.id), x.data);
  for (const x of gone) assert.equal(await s.has(x.id), false);
  assert.equal(s.usage().used, live.length * 4000);
  await s.close();
  s = await SegmentChunkStore.open(root, opts);
  try {
    assert.deepEqual(await collect(s), live.map((x) => x.id.toString('hex')).sort());
    assert.equal(s.usage().used, live.length * 4000);
    for (const x of live) assert.deepEqual(await s.get(x.id), x.data);
  } finally {
    await s.close();
  }
});

test('segments: compaction carries a tombstone forward while an older put of its chunk remains', async () => {
  const root = await tempDir();
  const opts = { ...manual, segmentBytes: 32 << 10 };
  let s = await SegmentChunkStore.open(root, opts);
  // Segment 1: the victim plus chunks that stay live, so segment 1 is never compacted.
  const victim = chunk(4000);
  await s.put(victim.id, victim.data);
  const keep = Array.from({ length: 6 }, () => chunk(4000));
  for (const x of keep) await s.put(x.id, x.data);
  // Later segments: the victim's tombstone among chunks that are then deleted, so its segment is.
  const filler = Array.from({ length: 30 }, () => chunk(4000));
  for (const x of filler.slice(0, 10)) await s.put(x.id, x.data);
  await s.delete(victim.id);
  for (const x of filler.slice(10)) await s.put(x.id, x.data);
  for (const x of filler) await s.delete(x.id);
  const done = await s.compact();
  assert.ok(done.segments > 0);
  assert.ok((await segmentFiles(root)).includes(segmentFileName(1)), 'segment 1 should have stayed');
  await s.close();
  s = await SegmentChunkStore.open(root, opts);
  try {
    assert.equal(await s.has(victim.id), false, 'a deleted chunk came back after compaction and reopen');
    for (const x of keep) assert.deepEqual(await s.get(x.id), x.data);
    assert.equal(s.usage().count, keep.length);
  } finally {
    await s.close();
  }
});

test('segments: compaction quarantines a rotten live record instead of copying it', async () => {
  const root = await tempDir();
  const s = await SegmentChunkStore.open(root, { ...manual, segmentBytes: 32 << 10 });
  try {
    const chunks = Array.from({ length: 24 }, () => chunk(4000));
    for (const x of chunks) await s.put(x.id, x.data);
    const rotten = chunks[1]!;
    await rotData(root, rotten.data);
    for (const x of chunks.slice(2, 8)) await s.delete(x.id);
    await s.compact();
    assert.equal(await s.has(rotten.id), false);
    const q: string[] = [];
    for await (const id of s.listQuarantined()) q.push(id.toString('hex'));
    assert.deepEqual(q, [rotten.id.toString('hex')]);
    assert.deepEqual(await s.get(chunks[0]!.id), chunks[0]!.data);
  } finally {
    await s.close();
  }
});

test('segments: background compaction runs by itself after deletes', async () => {
  const root = await tempDir();
  const s = await SegmentChunkStore.open(root, { segmentBytes: 32 << 10 });
  try {
    const chunks = Array.from({ length: 40 }, () => chunk(4000));
    for (const x of chunks) await s.put(x.id, x.data);
    for (const x of chunks.slice(0, 30)) await s.delete(x.id);
    const deadline = Date.now() + 10_000;
    while (s.stats().compactedSegments === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    assert.ok(s.stats().compactedSegments > 0, 'no compaction within 10 s of the deletes');
    for (const x of chunks.slice(30)) assert.deepEqual(await s.get(x.id), x.data);
  } finally {
    await s.close();
  }
});

test('segments: the data dir is locked against a second store of either engine', async () => {
  const root = await tempDir();
  const s = await SegmentChunkStore.open(root);
  await assert.rejects(SegmentChunkStore.open(root), (e) => isTesseraError(e, 'CONFLICT'));
  await assert.rejects(DiskChunkStore.open(root), (e) => isTesseraError(e, 'CONFLICT'));
  await s.close();
  const again = await SegmentChunkStore.open(root);
  await again.close();
});

test('segments: options out of range are refused', async () => {
  const root = await tempDir();
  await assert.rejects(SegmentChunkStore.open(root, { segmentBytes: 100 }), (e) => isTesseraError(e, 'BAD_INPUT'));
  await assert.rejects(SegmentChunkStore.open(root, { compactBelow: 2 }), (e) => isTesseraError(e, 'BAD_INPUT'));
  await assert.rejects(SegmentChunkStore.open(root, { quota: -1 }), (e) => isTesseraError(e, 'BAD_INPUT'));
});
