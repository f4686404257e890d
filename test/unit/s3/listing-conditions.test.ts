import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { ObjectEntry } from '../../../src/tables/index.js';
import { listKeys, MAX_LIST_PAGES, type PageSource } from '../../../src/s3/listing.js';
import { checkConditions, parseRange } from '../../../src/s3/conditions.js';
import { S3Error } from '../../../src/s3/errors.js';

const entry = (key: string): ObjectEntry => ({ key, fileId: 'x', size: 1, etag: 'e', checksums: {}, contentType: '', userMeta: {}, mtime: 0 });

/** An in-memory object table that answers pages as the object service does, counting the pages asked. */
function source(keys: string[], counter = { pages: 0 }): PageSource {
  const sorted = [...keys].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  return async ({ prefix, after, limit }) => {
    counter.pages++;
    const items = sorted.filter((k) => (!prefix || k.startsWith(prefix)) && (after === undefined || Buffer.compare(Buffer.from(k), Buffer.from(after)) > 0)).slice(0, limit + 1);
    return { items: items.slice(0, limit).map(entry), token: items.length > limit ? 'more' : null };
  };
}

/** What S3 answers, computed the slow obvious way. */
function model(keys: string[], prefix: string, delimiter: string): string[] {
  const out: string[] = [];
  for (const k of [...new Set(keys)].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)))) {
    if (!k.startsWith(prefix)) continue;
    const d = delimiter ? k.indexOf(delimiter, prefix.length) : -1;
    const item = d >= 0 ? k.slice(0, d + delimiter.length) : k;
    if (out[out.length - 1] !== item) out.push(item);
  }
  return out;
}

test('listing with prefix and delimiter, paged by any max-keys, gives what S3 gives, each item once', async () => {
  const key = fc.stringMatching(/^[ab/]{1,6}$/);
  await fc.assert(fc.asyncProperty(fc.array(key, { maxLength: 40 }), fc.constantFrom('', 'a', 'a/'), fc.constantFrom('', '/'), fc.integer({ min: 1, max: 5 }), async (keys, prefix, delimiter, maxKeys) => {
    const src = source([...new Set(keys)]);
    const seen: string[] = [];
    let after = '';
    for (let round = 0; round < 100; round++) {
      const r = await listKeys(src, { prefix, delimiter, after, maxKeys });
      assert.ok(r.contents.length + r.commonPrefixes.length <= maxKeys);
      const items = [...r.contents.map((c) => c.key), ...r.commonPrefixes].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
      seen.push(...items);
      if (!r.truncated) break;
      assert.ok(r.next !== undefined);
      after = r.next;
    }
    assert.deepEqual(seen, model(keys, prefix, delimiter));
  }), { numRuns: 200 });
});

test('a "directory" of many keys folds into one common prefix without reading every key', async () => {
  const keys = [...Array.from({ length: 5000 }, (_, i) => `big/${String(i).padStart(5, '0')}`), 'c', 'd/x'];
  const counter = { pages: 0 };
  const r = await listKeys(source(keys, counter), { prefix: '', delimiter: '/', after: '', maxKeys: 1000 });
  assert.deepEqual(r.commonPrefixes, ['big/', 'd/']);
  assert.deepEqual(r.contents.map((c) => c.key), ['c']);
  assert.ok(counter.pages <= 4, `read ${counter.pages} pages`);
});

test('one request reads at most MAX_LIST_PAGES pages and says where to go on', async () => {
  // Keys under a prefix too long to jump over: every one must be read.
  const long = 'p'.repeat(1021) + '/';
  const keys = Array.from({ length: (MAX_LIST_PAGES + 2) * 1000 }, (_, i) => `${long}${i}`);
  const counter = { pages: 0 };
  const r = await listKeys(source(keys, counter), { prefix: long.slice(0, 10), delimiter: '', after: '', maxKeys: 1000 });
  assert.equal(r.contents.length, 1000);
  assert.equal(r.truncated, true);
  assert.ok(counter.pages <= MAX_LIST_PAGES);
  const z = await listKeys(source(keys), { prefix: '', delimiter: '', after: '', maxKeys: 0 });
  assert.deepEqual(z, { contents: [], commonPrefixes: [], truncated: false, next: undefined });
});

test('ranges: suffix, open-ended, clamped end, unsatisfiable → InvalidRange, others ignored as S3 does', () => {
  assert.deepEqual(parseRange('bytes=0-9', 100), { start: 0, end: 9 });
  assert.deepEqual(parseRange('bytes=90-', 100), { start: 90, end: 99 });
  assert.deepEqual(parseRange('bytes=-10', 100), { start: 90, end: 99 });
  assert.deepEqual(parseRange('bytes=-500', 100), { start: 0, end: 99 });
  assert.deepEqual(parseRange('bytes=50-1000', 100), { start: 50, end: 99 });
  assert.equal(parseRange(undefined, 100), undefined);
  assert.equal(parseRange('bytes=0-1,5-6', 100), undefined);
  assert.equal(parseRange('items=0-1', 100), undefined);
  assert.throws(() => parseRange('bytes=100-', 100), (e: S3Error) => e.code === 'InvalidRange' && e.status === 416);
  assert.throws(() => parseRange('bytes=0-0', 0), (e: S3Error) => e.code === 'InvalidRange');
});

test('conditionals: If-Match over If-Unmodified-Since, If-None-Match over If-Modified-Since; 304 for reads, 412 for copies', () => {
  const mtime = Date.UTC(2026, 0, 2);
  const before = new Date(mtime - 86_400_000).toUTCString();
  const after = new Date(mtime + 86_400_000).toUTCString();
  const code = (f: () => void) => {
    try {
      f();
      return 'ok';
    } catch (e) {
      return (e as S3Error).code;
    }
  };
  assert.equal(code(() => checkConditions({ ifMatch: '"etag1"' }, 'etag1', mtime, true)), 'ok');
  assert.equal(code(() => checkConditions({ ifMatch: '"x", *' }, 'etag1', mtime, true)), 'ok');
  assert.equal(code(() => checkConditions({ ifMatch: '"other"' }, 'etag1', mtime, true)), 'PreconditionFailed');
  assert.equal(code(() => checkConditions({ ifMatch: '"etag1"', ifUnmodifiedSince: before }, 'etag1', mtime, true)), 'ok');
  assert.equal(code(() => checkConditions({ ifUnmodifiedSince: before }, 'etag1', mtime, true)), 'PreconditionFailed');
  assert.equal(code(() => checkConditions({ ifNoneMatch: '"etag1"' }, 'etag1', mtime, true)), 'NotModified');
  assert.equal(code(() => checkConditions({ ifNoneMatch: '"etag1"' }, 'etag1', mtime, false)), 'PreconditionFailed');
  assert.equal(code(() => checkConditions({ ifNoneMatch: '"x"', ifModifiedSince: after }, 'etag1', mtime, true)), 'ok');
  assert.equal(code(() => checkConditions({ ifModifiedSince: after }, 'etag1', mtime, true)), 'NotModified');
  assert.equal(code(() => checkConditions({ ifModifiedSince: before }, 'etag1', mtime, true)), 'ok');
  assert.equal(code(() => checkConditions({ ifModifiedSince: 'not a date' }, 'etag1', mtime, true)), 'ok');
});
