import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openMetadata } from '../../../src/store/metadata.js';
import { RefStore, UPLOAD_TOUCH_MS } from '../../../src/files/refs.js';

const U1 = 'a'.repeat(32);
const U2 = 'b'.repeat(32);
const ROOT = 'f'.repeat(64);
const c = (n: number) => n.toString(16).padStart(64, '0');

test('references: a removed file frees its chunks after the grace period, shared chunks stay', async (t) => {
  const meta = await openMetadata(null);
  t.after(() => meta.close());
  const refs = new RefStore(meta);
  await refs.addRefs(U1, [c(1), c(2), c(3)], 1000);
  await refs.addRefs(U2, [c(3), c(4)], 1000);
  await refs.commit(U1, ROOT, 1000, 500, 1000);
  assert.deepEqual(refs.dueForDeletion(10_000, 10), []);
  await refs.tombstone(ROOT, 2000, 500, 2000);
  assert.equal(refs.hasRefs(c(1)), false);
  assert.equal(refs.hasRefs(c(3)), true, 'chunk 3 is still owned by the other upload');
  assert.deepEqual(refs.dueForDeletion(2499, 10), [], 'not before the grace period');
  assert.deepEqual(refs.dueForDeletion(2500, 10).sort(), [c(1), c(2)]);
  await assert.rejects(refs.addRefs(U1, [c(9)], 3000), { code: 'CONFLICT' }, 'a dropped upload takes no new references');
  assert.deepEqual(refs.listTombstones(undefined, 10), { items: [{ root: ROOT, at: 2000 }], more: false });
});

test('a commit that arrives after the removal it predates is dropped at once; a later put of the same file survives', async (t) => {
  const meta = await openMetadata(null);
  t.after(() => meta.close());
  const refs = new RefStore(meta);
  await refs.tombstone(ROOT, 2000, 0, 2000);
  await refs.addRefs(U1, [c(1)], 1000);
  await refs.commit(U1, ROOT, 1500, 0, 2100);
  assert.equal(refs.hasRefs(c(1)), false, 'committed before the removal: removed');
  await refs.addRefs(U2, [c(1)], 3000);
  await refs.commit(U2, ROOT, 3000, 0, 3000);
  assert.equal(refs.hasRefs(c(1)), true, 'put again after the removal: kept');
  assert.equal(refs.liveCommitAfter(ROOT, 2000), true);
});

test("a pending upload's activity time is rewritten at most once per UPLOAD_TOUCH_MS, so it lags by less than that", async (t) => {
  const meta = await openMetadata(null);
  t.after(() => meta.close());
  const refs = new RefStore(meta);
  await refs.addRefs(U1, [c(1)], 1000);
  await refs.addRefs(U1, [c(2)], 1000 + UPLOAD_TOUCH_MS - 1);
  assert.equal((refs.upload(U1) as { t?: number } | undefined)?.t, 1000, 'a reference added within the interval leaves the time alone');
  assert.deepEqual(refs.staleUploads(1001, 10).pending, [U1]);
  await refs.addRefs(U1, [c(3)], 1000 + UPLOAD_TOUCH_MS);
  assert.equal((refs.upload(U1) as { t?: number } | undefined)?.t, 1000 + UPLOAD_TOUCH_MS);
  assert.deepEqual(refs.staleUploads(1000 + UPLOAD_TOUCH_MS, 10).pending, [], 'active again: not stale');
  assert.deepEqual(refs.owners(c(2)), [U1], 'every reference was recorded all the same');
});

test('stale pending uploads are found for expiry', async (t) => {
  const meta = await openMetadata(null);
  t.after(() => meta.close());
  const refs = new RefStore(meta);
  await refs.addRefs(U1, [c(1)], 1000);
  await refs.addRefs(U2, [c(2)], 5000);
  assert.deepEqual(refs.staleUploads(2000, 10).pending, [U1]);
  assert.deepEqual(refs.committed([U1, U2]), []);
});
