import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openMetadata, MAX_META_KEY_BYTES, MAX_META_TABLES, MAX_META_KEY_PARTS } from '../../../src/store/metadata.js';
import { isTesseraError } from '../../../src/errors.js';

const dirs: string[] = [];
async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'tessera-meta-test-'));
  dirs.push(d);
  return d;
}
test.after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

test('metadata: structured values round trip and survive a reopen', async () => {
  const dir = await tempDir();
  let meta = await openMetadata(dir);
  const rec = { addr: '127.0.0.1:7400', incarnation: 3, tags: ['a', 'b'], blob: Buffer.from([1, 2, 3]) };
  await meta.put('members', 'node-1', rec);
  await meta.put('refs', Buffer.alloc(32, 9), { count: 2 });
  await meta.put('volumes', ['vol', 7], 42);
  assert.deepEqual(meta.get('members', 'node-1'), rec);
  await meta.close();
  meta = await openMetadata(dir);
  assert.deepEqual(meta.get('members', 'node-1'), rec);
  assert.deepEqual(meta.get('refs', Buffer.alloc(32, 9)), { count: 2 });
  assert.equal(meta.get('volumes', ['vol', 7]), 42);
  assert.equal(meta.get('members', 'nobody'), undefined);
  assert.equal(meta.has('members', 'node-1'), true);
  assert.equal(await meta.remove('members', 'node-1'), true);
  assert.equal(await meta.remove('members', 'node-1'), false);
  assert.equal(meta.has('members', 'node-1'), false);
  await meta.close();
});

test('metadata: tables are separate namespaces; typed table views', async () => {
  const meta = await openMetadata(await tempDir());
  await meta.put('names', 'k', 'in names');
  await meta.put('tombstones', 'k', 'in tombstones');
  assert.equal(meta.get('names', 'k'), 'in names');
  assert.equal(meta.get('tombstones', 'k'), 'in tombstones');
  const t = meta.table<{ n: number }>('custom_table');
  await t.put('x', { n: 1 });
  assert.deepEqual(t.get('x'), { n: 1 });
  assert.equal(t.count(), 1);
  await meta.close();
});

test('metadata: range by start/end, prefix, limit and reverse, in key order', async () => {
  const meta = await openMetadata(null);
  const keys = ['a/1', 'a/2', 'a/3', 'b/1', 'b/2', 'c'];
  await Promise.all(keys.map((k, i) => meta.put('names', k, i)));
  const keysOf = (it: Iterable<{ key: unknown }>) => [...it].map((e) => e.key);
  assert.deepEqual(keysOf(meta.range('names')), keys);
  assert.deepEqual(keysOf(meta.range('names', { prefix: 'a/' })), ['a/1', 'a/2', 'a/3']);
  assert.deepEqual(keysOf(meta.range('names', { prefix: 'b/', limit: 1 })), ['b/1']);
  assert.deepEqual(keysOf(meta.range('names', { prefix: 'b/', reverse: true })), ['b/2', 'b/1']);
  assert.deepEqual(keysOf(meta.range('names', { start: 'a/2', end: 'b/2' })), ['a/2', 'a/3', 'b/1']);
  assert.deepEqual(keysOf(meta.range('names', { limit: 2, reverse: true })), ['c', 'b/2']);
  assert.deepEqual([...meta.range('names', { prefix: 'c' })].map((e) => e.value), [5]);
  // Composite keys sort element-wise: unit 10 comes after unit 9.
  await meta.put('volumes', ['v', 10], 'ten');
  await meta.put('volumes', ['v', 9], 'nine');
  await meta.put('volumes', ['w', 1], 'other');
  assert.deepEqual([...meta.range('volumes', { start: ['v'], end: ['w'] })].map((e) => e.value), ['nine', 'ten']);
  await meta.close();
});

test('metadata: a transaction commits all its writes or none', async () => {
  const dir = await tempDir();
  let meta = await openMetadata(dir);
  await meta.put('refs', 'a', 1);
  const out = await meta.transaction((tx) => {
    const a = tx.get<number>('refs', 'a') ?? 0;
    tx.put('refs', 'a', a + 1);
    tx.put('refs', 'b', a + 10);
    assert.equal(tx.get('refs', 'b'), 11);
    tx.remove('refs', 'zz');
    return 'done';
  });
  assert.equal(out, 'done');
  await assert.rejects(
    meta.transaction((tx) => {
      tx.put('refs', 'a', 100);
      tx.put('refs', 'c', 100);
      throw new Error('changed my mind');
    }),
    /changed my mind/,
  );
  assert.equal(meta.get('refs', 'a'), 2);
  assert.equal(meta.get('refs', 'c'), undefined);
  await meta.close();
  meta = await openMetadata(dir);
  assert.equal(meta.get('refs', 'a'), 2);
  assert.equal(meta.get('refs', 'b'), 11);
  await meta.close();
});

test('metadata: many concurrent writes batch and all land', async () => {
  const dir = await tempDir();
  let meta = await openMetadata(dir);
  const N = 2000;
  await Promise.all(Array.from({ length: N }, (_, i) => meta.put('refs', i, { i })));
  assert.equal(meta.count('refs'), N);
  await meta.close();
  meta = await openMetadata(dir);
  assert.equal(meta.count('refs'), N);
  assert.deepEqual(meta.get('refs', N - 1), { i: N - 1 });
  await meta.close();
});

test('metadata: keys, values and table names are bounded', async () => {
  const meta = await openMetadata(null);
  const big = 'x'.repeat(MAX_META_KEY_BYTES + 1);
  await assert.rejects(meta.put('names', big, 1), (e) => isTesseraError(e, 'TOO_LARGE'));
  assert.throws(() => meta.get('names', Buffer.alloc(MAX_META_KEY_BYTES + 1)), (e) => isTesseraError(e, 'TOO_LARGE'));
  await meta.put('names', 'x'.repeat(MAX_META_KEY_BYTES), 'at the limit');
  assert.equal(meta.get('names', 'x'.repeat(MAX_META_KEY_BYTES)), 'at the limit');
  const parts = Array.from({ length: MAX_META_KEY_PARTS + 1 }, () => 'p');
  await assert.rejects(meta.put('names', parts, 1), (e) => isTesseraError(e, 'BAD_INPUT'));
  await assert.rejects(meta.put('names', [], 1), (e) => isTesseraError(e, 'BAD_INPUT'));
  await assert.rejects(meta.put('names', { not: 'a key' } as never, 1), (e) => isTesseraError(e, 'BAD_INPUT'));
  await assert.rejects(meta.put('names', 'k', undefined), (e) => isTesseraError(e, 'BAD_INPUT'));
  assert.throws(() => meta.get('../etc', 'k'), (e) => isTesseraError(e, 'BAD_INPUT'));
  assert.throws(() => [...meta.range('names', { limit: -1 })], (e) => isTesseraError(e, 'BAD_INPUT'));
  for (let i = 0; meta.count('names') >= 0 && i < MAX_META_TABLES; i++) {
    try {
      meta.table(`t${i}`);
    } catch (e) {
      assert.ok(isTesseraError(e, 'TOO_LARGE'));
      await meta.close();
      return;
    }
  }
  assert.fail(`opening more than ${MAX_META_TABLES} tables was not refused`);
});

test('metadata: a throwaway database is removed on close; a closed one refuses work', async () => {
  const meta = await openMetadata(null);
  await meta.put('names', 'a', 1);
  const path = meta.path;
  await meta.close();
  await assert.rejects(stat(path), /ENOENT/);
  assert.throws(() => meta.get('names', 'a'), (e) => isTesseraError(e, 'UNAVAILABLE'));
});
