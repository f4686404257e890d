import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  decodeVersionLog, encodeCompactedLog, encodeLogBatch, LOG_COMPACT_BYTES, LOG_COMPACT_RECORDS, replayRuns, runsOf, type VersionRun,
} from '../../../src/block/volume/version-log.js';
import { MAX_UNFLUSHED_RUNS, RunList, SealVersions } from '../../../src/block/volume/seal-versions.js';
import { FileLogStorage } from '../../../src/block/volume/storage.js';
import { FileVersionTable, TABLE_HEADER_BYTES } from '../../../src/block/volume/version-table.js';
import { isTesseraError } from '../../../src/errors.js';
import { memoryVersionStorage } from './helpers.js';

const G = { members: 3, sectorsPerMember: 1000 };
const run = (member: number, first: number, count: number, version: number): VersionRun => ({ member, first, count, version });

test('version log: encodes and decodes ceilings and runs in order', () => {
  const log = Buffer.concat([
    encodeCompactedLog(500),
    encodeLogBatch(1, [run(0, 10, 4, 20), run(2, 999, 1, 30)]),
    encodeLogBatch(2, [{ ceiling: 900 }, run(1, 0, 16, 600)]),
    Buffer.alloc(4096),
  ]);
  const got = decodeVersionLog(log, G);
  assert.equal(got.ceiling, 900);
  assert.deepEqual(got.runs, [run(0, 10, 4, 20), run(2, 999, 1, 30), run(1, 0, 16, 600)]);
  assert.equal(got.lastSeq, 2);
  assert.equal(got.torn, false);
});

test('version log: a torn last batch is ignored, at every length it may have been cut to', () => {
  const base = Buffer.concat([encodeCompactedLog(500), encodeLogBatch(1, [run(0, 1, 2, 3)])]);
  const last = encodeLogBatch(2, [run(1, 5, 5, 100), run(2, 7, 1, 200)]);
  for (let cut = 1; cut < last.length; cut++) {
    // The log file's reserve is zeroes: what the append did not reach reads as zero.
    const torn = Buffer.concat([base, last.subarray(0, cut), Buffer.alloc(last.length - cut + 512)]);
    const got = decodeVersionLog(torn, G);
    assert.deepEqual(got.runs, [run(0, 1, 2, 3)], `cut after ${cut} bytes`);
    assert.equal(got.torn, true);
  }
  // Sectors written out of order: the batch's end landed and its start did not.
  const holed = Buffer.concat([base, Buffer.alloc(8), last.subarray(8)]);
  assert.equal(decodeVersionLog(holed, G).torn, true);
});

test('version log: a damaged batch with an intact one after it is refused, naming both', () => {
  const b1 = encodeLogBatch(1, [run(0, 1, 2, 3)]);
  const b2 = encodeLogBatch(2, [run(0, 9, 1, 4)]);
  const log = Buffer.concat([encodeCompactedLog(500), b1, b2]);
  const at = encodeCompactedLog(500).length + 12;
  log[at] = (log[at] as number) ^ 1;
  assert.throws(() => decodeVersionLog(log, G), (e: unknown) => isTesseraError(e, 'CORRUPT') && /batch 1 .* damaged but batch 2 after it is intact/.test((e as Error).message));
});

test('version log: intact batches that do not fit the volume, or a bad header, are refused', () => {
  const head = encodeCompactedLog(500);
  for (const bad of [
    encodeLogBatch(1, [run(3, 0, 1, 10)]), // no member 3
    encodeLogBatch(1, [run(0, 999, 2, 10)]), // past the member's sectors
    encodeLogBatch(1, [run(0, 0, 4, 498)]), // versions past the ceiling
    encodeLogBatch(1, [{ ceiling: 10 }]), // a ceiling going down
  ]) {
    assert.throws(() => decodeVersionLog(Buffer.concat([head, bad]), G), (e: unknown) => isTesseraError(e, 'CORRUPT'));
  }
  assert.throws(() => decodeVersionLog(Buffer.from('nope'), G), (e: unknown) => isTesseraError(e, 'CORRUPT'));
  // A batch out of sequence (left from some other log) ends the log like a torn one when nothing follows.
  assert.equal(decodeVersionLog(Buffer.concat([head, encodeLogBatch(5, [run(0, 0, 1, 1)])]), G).runs.length, 0);
});

test('version log: runs group consecutive sectors with consecutive versions', () => {
  const m = new Map<number, number>([[7, 107], [5, 105], [6, 106], [9, 300], [10, 301], [12, 5]]);
  assert.deepEqual(runsOf(1, m), [run(1, 5, 3, 105), run(1, 9, 2, 300), run(1, 12, 1, 5)]);
});

test('version log: replay keeps the larger version per sector and is idempotent', () => {
  const t = [new Float64Array(16), new Float64Array(16)];
  t[0]![3] = 50;
  const changed: Array<[number, number, number]> = [];
  replayRuns(t, [run(0, 2, 4, 40), run(1, 0, 2, 7)], (j, first, count) => changed.push([j, first, count]));
  assert.deepEqual([...t[0]!.subarray(2, 6)], [40, 50, 42, 43]);
  assert.deepEqual(changed, [[0, 2, 1], [0, 4, 2], [1, 0, 2]]);
  const again = t.map((x) => x.slice());
  replayRuns(again, [run(0, 2, 4, 40), run(1, 0, 2, 7)], () => assert.fail('nothing changes the second time'));
  assert.deepEqual(again, t);
});

test('sealed versions: flushes append to the log; past the bound the log is checkpointed into the table and compacted', async () => {
  const state = memoryVersionStorage();
  const v = await SealVersions.open(state, 1, 1 << 20);
  const saves = state.log.saves;
  let version = v.take(1);
  // One flush per sector stretch: each a run of its own in the log.
  for (let i = 0; i < LOG_COMPACT_RECORDS - 1; i++) {
    await v.flushed(0, [[i * 2, 1, version]]);
    version = v.take(1);
  }
  assert.equal(state.log.saves, saves, 'still appending');
  assert.ok(state.log.appends >= 1);
  assert.equal(state.table.writes, 0, 'nothing checkpointed yet');
  const log = (await state.log.load())!;
  assert.ok(log.length <= LOG_COMPACT_BYTES + 64, `log of ${log.length} bytes stays within its bound`);
  await v.flushed(0, [[1, 1, version]]);
  await v.flushed(0, [[3, 1, v.take(1)]]);
  assert.equal(state.log.saves, saves + 1, 'the log was compacted');
  assert.ok(state.table.writes > 0 && state.table.syncs > 0, 'the table was written and synced before');
  assert.equal(state.table.stored(0)?.[2], 1 + (state.table.stored(0)?.[0] as number), 'the table holds the flushed versions');
  // A restart finds every flushed version, from table and log together.
  const again = await SealVersions.open(state, 1, 1 << 20);
  assert.equal(again.accept(0, 1, version - 1), false);
  assert.equal(again.accept(0, 1, version), true);
  assert.equal(again.accept(0, 3, version), false, 'sector 3 was flushed after the compaction, at a later version');
});

test('sealed versions: a torn append after a crash is ignored, the appends before it count', async () => {
  const state = memoryVersionStorage();
  const v = await SealVersions.open(state, 2, 64);
  const a = v.take(4);
  await v.flushed(1, [[0, 4, a]]);
  // The master dies while appending the next flush: half a batch reaches the log.
  const b = v.take(1);
  const whole = (await state.log.load())!;
  const half = encodeLogBatch(2, [{ member: 1, first: 0, count: 1, version: b }]).subarray(0, 20);
  await state.log.save(Buffer.concat([whole, half]));
  const again = await SealVersions.open(state, 2, 64);
  assert.equal(again.accept(1, 0, a - 1), false, 'the appended flush before it counts');
  assert.equal(again.accept(1, 0, a), true, 'the torn one does not');
});

test('sealed versions on files: table and log survive a reopen; the table is sparse and checked against the volume', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'tessera-versions-'));
  try {
    const files = () => ({ log: new FileLogStorage(join(dir, 'versions.log')), table: new FileVersionTable(join(dir, 'versions.table')) });
    const spm = 1 << 20;
    const v = await SealVersions.open(files(), 2, spm);
    const first = v.take(8);
    await v.flushed(1, [[spm - 8, 8, first]]);
    await v.close();
    const w = await SealVersions.open(files(), 2, spm);
    assert.equal(w.accept(1, spm - 1, first + 6), false);
    assert.equal(w.accept(1, spm - 1, first + 7), true);
    await w.close();
    const st = await stat(join(dir, 'versions.table'));
    assert.equal(st.size, TABLE_HEADER_BYTES + 2 * spm * 8);
    assert.ok(st.blocks * 512 < st.size / 4, 'sectors never written take no space');
    await assert.rejects(SealVersions.open(files(), 3, spm), (e: unknown) => isTesseraError(e, 'CORRUPT'));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('sealed versions: a member never flushed keeps at most one pending run per sector stretch past MAX_UNFLUSHED_RUNS', async () => {
  const state = memoryVersionStorage();
  const v = await SealVersions.open(state, 1, 1024);
  let last = 0;
  for (let i = 0; i < MAX_UNFLUSHED_RUNS + 10; i++) {
    last = v.take(1);
    v.landed(0, i % 1024, 1, last);
  }
  const pending = v.beginFlush(0);
  assert.ok(pending.length <= 1024 + 10, `${pending.length} runs pending, merged per sector`);
  await v.flushed(0, pending);
  const again = await SealVersions.open(state, 1, 1024);
  const sector = (MAX_UNFLUSHED_RUNS + 9) % 1024;
  assert.equal(again.accept(0, sector, last - 1), false, 'an older version of the last sector written');
  assert.equal(again.accept(0, sector, last), true, 'its newest version was kept through the merge');
});

test('sealed versions: landed runs are kept in order through growth, a failed flush puts them back before later ones', async () => {
  const l = new RunList();
  for (let i = 0; i < 1000; i++) l.push(i * 2, 1 + (i % 3), 10_000 + i);
  const seen: number[][] = [];
  l.forEach((f, c, v) => seen.push([f, c, v]));
  assert.equal(l.length, 1000);
  assert.deepEqual(seen[0], [0, 1, 10_000]);
  assert.deepEqual(seen[999], [1998, 1, 10_999]);
  const earlier = new RunList();
  earlier.push(5, 1, 1);
  const later = new RunList();
  later.push(6, 2, 2);
  const both = earlier.concat(later);
  const out: number[][] = [];
  both.forEach((f, c, v) => out.push([f, c, v]));
  assert.deepEqual(out, [[5, 1, 1], [6, 2, 2]]);

  const state = memoryVersionStorage();
  const v = await SealVersions.open(state, 1, 64);
  const a = v.take(1);
  v.landed(0, 3, 1, a);
  const pending = v.beginFlush(0);
  const b = v.take(1);
  v.landed(0, 4, 1, b);
  v.flushFailed(0, pending);
  await v.flushed(0, v.beginFlush(0));
  const again = await SealVersions.open(state, 1, 64);
  assert.equal(again.accept(0, 3, a - 1), false, 'the run of the failed flush became durable with the next one');
  assert.equal(again.accept(0, 4, b - 1), false);
  assert.equal(again.accept(0, 4, b), true);
});
