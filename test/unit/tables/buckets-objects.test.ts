import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { isTesseraError } from '../../../src/errors.js';
import { formatFileId } from '../../../src/content/ids.js';
import { BucketTable, ObjectTable } from '../../../src/tables/buckets-objects.js';
import { checkBucketName, checkObjectKey, checkObjectRecord, MAX_OBJECT_KEY_BYTES, type ObjectRecord } from '../../../src/tables/records.js';
import { mesh } from './mesh.js';

const record = (over: Partial<ObjectRecord> = {}): ObjectRecord => ({
  fileId: formatFileId(randomBytes(32), randomBytes(32)),
  size: 5,
  etag: '"5d41402abc4b2a76b9719d911017c592"',
  checksums: { sha256: 'LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ=' },
  contentType: 'text/plain',
  userMeta: { owner: 'ana' },
  mtime: 1_700_000_000_000,
  ...over,
});

test('bucket names follow S3 rules, with messages that say which rule', () => {
  for (const ok of ['abc', 'my-bucket.logs', 'a'.repeat(63), '0bucket9']) checkBucketName(ok);
  const bad: [string, RegExp][] = [
    ['ab', /3-63/], ['a'.repeat(64), /3-63/], ['My-Bucket', /character/], ['-abc', /character/], ['abc-', /character/],
    ['a..b', /two dots/], ['192.168.1.10', /IP address/], ['xn--abc', /xn--/], ['logs-s3alias', /-s3alias/], ['a_b_c', /character/],
  ];
  for (const [name, why] of bad) assert.throws(() => checkBucketName(name), (e) => isTesseraError(e, 'BAD_INPUT') && why.test(e.message), name);
});

test('object keys up to 1,024 bytes of UTF-8, records bounded and checked', () => {
  checkObjectKey('é'.repeat(MAX_OBJECT_KEY_BYTES / 2));
  assert.throws(() => checkObjectKey('é'.repeat(MAX_OBJECT_KEY_BYTES / 2) + 'x'), (e) => isTesseraError(e, 'TOO_LARGE'));
  assert.throws(() => checkObjectKey(''), (e) => isTesseraError(e, 'BAD_INPUT'));
  assert.throws(() => checkObjectKey('a\ud800b'), (e) => isTesseraError(e, 'BAD_INPUT'));
  checkObjectRecord(record());
  assert.throws(() => checkObjectRecord(record({ userMeta: { big: 'x'.repeat(2100) } })), (e) => isTesseraError(e));
  assert.throws(() => checkObjectRecord(record({ fileId: 'not-a-file' })), (e) => isTesseraError(e, 'BAD_INPUT'));
  assert.throws(() => checkObjectRecord(record({ size: -1 })), (e) => isTesseraError(e, 'BAD_INPUT'));
  assert.throws(() => checkObjectRecord({ ...record(), extra: 1 }), (e) => isTesseraError(e, 'BAD_INPUT'));
});

test('buckets and objects through replicated tables: create, refuse duplicates, list, get, remove', async () => {
  const m = await mesh(4);
  try {
    const buckets = new BucketTable(m.services.get('node-0')!);
    const objects = new ObjectTable(m.services.get('node-1')!);
    const b = await buckets.create('photos');
    await assert.rejects(new BucketTable(m.services.get('node-2')!).create('photos'), (e) => isTesseraError(e, 'CONFLICT'));
    await buckets.create('logs');
    assert.deepEqual((await buckets.list({ limit: 10 })).items.map((x) => x.name), ['logs', 'photos']);
    const rec = record();
    await objects.put(b.id, '2024/cat.jpg', rec);
    await objects.putMany(b.id, [{ key: '2024/dog.jpg', record: record() }, { key: '2023/old.jpg', record: record() }]);
    assert.deepEqual(await new ObjectTable(m.services.get('node-3')!).get(b.id, '2024/cat.jpg'), { key: '2024/cat.jpg', ...rec });
    const page = await objects.list(b.id, { prefix: '2024/', limit: 10 });
    assert.deepEqual(page.items.map((x) => x.key), ['2024/cat.jpg', '2024/dog.jpg']);
    assert.equal(page.token, null);
    await assert.rejects(buckets.remove('photos', objects), (e) => isTesseraError(e, 'CONFLICT'));
    for (const k of ['2024/cat.jpg', '2024/dog.jpg', '2023/old.jpg']) assert.equal(await objects.remove(b.id, k), true);
    assert.equal(await objects.remove(b.id, 'missing'), false);
    await buckets.remove('photos', objects);
    assert.equal(await buckets.get('photos'), null);
  } finally {
    await m.close();
  }
});
