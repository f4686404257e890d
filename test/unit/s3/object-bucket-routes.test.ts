/** Listing, object and bucket routes answering as S3 clients expect, with an in-memory stand-in for the object service. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { IncomingHttpHeaders } from 'node:http';
import { Readable } from 'node:stream';
import { TesseraError } from '../../../src/errors.js';
import { formatFileId } from '../../../src/content/index.js';
import { MAX_STORED_HEADER_CHARS, checkObjectRecord, type BucketEntry, type ObjectEntry } from '../../../src/tables/index.js';
import { S3Error } from '../../../src/s3/errors.js';
import type { S3Context, S3Response, S3Route } from '../../../src/s3/handler.js';
import { bucketRoutes } from '../../../src/s3/bucket-ops.js';
import { listRoutes } from '../../../src/s3/list-ops.js';
import { objectRoutes } from '../../../src/s3/object-ops.js';
import type { S3Objects } from '../../../src/s3/objects.js';

const MTIME = Date.UTC(2026, 0, 2, 3, 4, 5);

/** Buckets and objects in maps, paged as the object service pages them. */
function store(keys: string[] = []) {
  const buckets = new Map<string, BucketEntry>([['bkt', { name: 'bkt', id: '0'.repeat(32), createdAt: MTIME, policy: { kind: 'replicas', n: 3 } } as unknown as BucketEntry]]);
  const objects = new Map<string, ObjectEntry>();
  for (const key of keys) objects.set(key, { key, fileId: 'f', size: 3, etag: 'abc', checksums: {}, contentType: 'text/plain', userMeta: {}, mtime: MTIME });
  const service = {
    async getBucket(name: string) {
      return buckets.get(name) ?? null;
    },
    async listObjects(_bucket: string, o: { prefix?: string; after?: string; limit: number }) {
      const sorted = [...objects.keys()].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
      const items = sorted.filter((k) => k.startsWith(o.prefix ?? '') && (o.after === undefined || k > o.after));
      return { items: items.slice(0, o.limit).map((k) => objects.get(k)!), token: items.length > o.limit ? 'more' : null };
    },
    async headObject(_bucket: string, key: string) {
      return objects.get(key) ?? null;
    },
    async openObject(_bucket: string, key: string) {
      return { entry: objects.get(key)!, stream: Readable.from([Buffer.from('bar')]) };
    },
    async readEntry() {
      return [Buffer.from('bar')];
    },
  };
  return { buckets, objects, service: service as unknown as S3Objects };
}

function ctx(objects: S3Objects, o: { method?: string; key?: string; query?: string; headers?: IncomingHttpHeaders; accessKeyId?: string }): S3Context {
  return {
    req: undefined as never,
    method: o.method ?? 'GET',
    bucket: 'bkt',
    key: o.key,
    query: new URLSearchParams(o.query ?? ''),
    headers: o.headers ?? {},
    principal: { accessKeyId: o.accessKeyId ?? 'AK', name: 'n', buckets: null },
    objects,
    requestId: 'r',
    bodyLength: undefined,
    body: () => Readable.from([]),
    readBody: async () => Buffer.alloc(0),
    may: () => true,
  } as unknown as S3Context;
}

const find = (routes: S3Route[], name: string): S3Route => routes.find((r) => r.name === name)!;
const bodyOf = (r: S3Response | void): string => String((r as S3Response).body);

test('ListObjects (V1) with encoding-type=url gives Prefix as sent and percent-encodes keys and Marker', async () => {
  const { service } = store(['foo/bar', 'foo/baz', 'quux', 'a b']);
  const list = find(listRoutes(), 'ListObjects').handle;
  const r = bodyOf(await list(ctx(service, { query: 'prefix=%0A&encoding-type=url' })));
  assert.match(r, /<Prefix>\n<\/Prefix>/);
  assert.doesNotMatch(r, /<Contents>/);
  const all = bodyOf(await list(ctx(service, { query: 'marker=a%20a&encoding-type=url' })));
  assert.match(all, /<Marker>a%20a<\/Marker>/);
  assert.match(all, /<Key>a%20b<\/Key>/);
});

test('ListObjectsV2 with an empty continuation-token lists from the start and echoes the empty token', async () => {
  const { service } = store(['bar', 'baz', 'foo', 'quxx']);
  const list = find(listRoutes(), 'ListObjectsV2').handle;
  const r = bodyOf(await list(ctx(service, { query: 'list-type=2&continuation-token=' })));
  assert.match(r, /<ContinuationToken\s*\/>|<ContinuationToken><\/ContinuationToken>/);
  assert.deepEqual([...r.matchAll(/<Key>([^<]*)<\/Key>/g)].map((m) => m[1]), ['bar', 'baz', 'foo', 'quxx']);
  assert.match(r, /<IsTruncated>false<\/IsTruncated>/);
  await assert.rejects(() => list(ctx(service, { query: 'list-type=2&continuation-token=bm90LW91cnM' })), (e: unknown) => e instanceof S3Error && e.code === 'InvalidArgument');
});


test('a conditional GET or HEAD answered 304 carries the ETag and Last-Modified; If-Match failing stays 412', async () => {
  const { service } = store(['foo']);
  const routes = objectRoutes();
  for (const name of ['GetObject', 'HeadObject']) {
    const get = find(routes, name).handle;
    const byEtag = (await get(ctx(service, { key: 'foo', headers: { 'if-none-match': '"abc"' } }))) as S3Response;
    assert.equal(byEtag.status, 304);
    assert.equal(byEtag.headers?.etag, '"abc"');
    assert.equal(byEtag.headers?.['last-modified'], new Date(MTIME).toUTCString());
    assert.equal(byEtag.body, undefined);
    const byDate = (await get(ctx(service, { key: 'foo', headers: { 'if-modified-since': new Date(MTIME + 1000).toUTCString() } }))) as S3Response;
    assert.equal(byDate.status, 304);
    assert.equal(byDate.headers?.etag, '"abc"');
    await assert.rejects(async () => get(ctx(service, { key: 'foo', headers: { 'if-match': '"other"' } })), (e: unknown) => e instanceof S3Error && e.code === 'PreconditionFailed');
  }
});

test('Cache-Control and Expires given at PutObject are stored and served on GET, HEAD and 304; CopyObject keeps or replaces them', async () => {
  const { objects, service } = store();
  const records: Record<string, unknown> = {};
  Object.assign(service, {
    async putObject(_b: string, key: string, body: Readable, opts: { headers?: Record<string, string> }) {
      for await (const _ of body);
      const e = { key, fileId: 'f', size: 0, etag: 'e1', checksums: {}, contentType: 'x/y', userMeta: {}, mtime: MTIME, ...(opts.headers && Object.keys(opts.headers).length > 0 ? { headers: opts.headers } : {}) };
      objects.set(key, e);
      return e;
    },
    async recordObject(_b: string, key: string, rec: ObjectEntry) {
      records[key] = rec;
      objects.set(key, { ...rec, key });
    },
  });
  const routes = objectRoutes();
  const expires = 'Thu, 01 Jan 2037 00:00:00 GMT';
  const put = find(routes, 'PutObject').handle;
  await put({ ...ctx(service, { method: 'PUT', key: 'k', headers: { 'cache-control': 'public, max-age=14400', expires, 'content-encoding': 'aws-chunked' } }), bodyLength: 0 });
  assert.deepEqual(objects.get('k')!.headers, { 'cache-control': 'public, max-age=14400', expires });
  for (const name of ['GetObject', 'HeadObject']) {
    const r = (await find(routes, name).handle(ctx(service, { key: 'k' }))) as S3Response;
    assert.equal(r.headers?.['cache-control'], 'public, max-age=14400');
    assert.equal(r.headers?.expires, expires);
    assert.equal(r.headers?.['content-encoding'], undefined, 'the transfer encoding of the upload is not served back');
  }
  const notModified = (await find(routes, 'GetObject').handle(ctx(service, { key: 'k', headers: { 'if-none-match': '"e1"' } }))) as S3Response;
  assert.equal(notModified.headers?.['cache-control'], 'public, max-age=14400');
  const copy = find(routes, 'CopyObject').handle;
  await copy(ctx(service, { method: 'PUT', key: 'kept', headers: { 'x-amz-copy-source': '/bkt/k' } }));
  assert.deepEqual((records.kept as ObjectEntry).headers, { 'cache-control': 'public, max-age=14400', expires });
  await copy(ctx(service, { method: 'PUT', key: 'replaced', headers: { 'x-amz-copy-source': '/bkt/k', 'x-amz-metadata-directive': 'REPLACE', 'cache-control': 'no-store' } }));
  assert.deepEqual((records.replaced as ObjectEntry).headers, { 'cache-control': 'no-store' });
  await assert.rejects(async () => put({ ...ctx(service, { method: 'PUT', key: 'big', headers: { 'cache-control': 'x'.repeat(5000) } }), bodyLength: 0 }), (e: unknown) => e instanceof S3Error && e.code === 'InvalidArgument');
});

test('an object record keeps only the listed stored headers, each bounded', () => {
  const rec = { fileId: formatFileId(Buffer.alloc(32), Buffer.alloc(32)), size: 0, etag: '', checksums: {}, contentType: 'x/y', userMeta: {}, mtime: 0 };
  assert.deepEqual(checkObjectRecord({ ...rec, headers: { 'cache-control': 'no-cache', expires: 'Thu, 01 Jan 2037 00:00:00 GMT' } }).headers, { 'cache-control': 'no-cache', expires: 'Thu, 01 Jan 2037 00:00:00 GMT' });
  assert.equal(checkObjectRecord(rec).headers, undefined);
  assert.throws(() => checkObjectRecord({ ...rec, headers: { 'content-encoding': 'gzip' } }), (e: unknown) => e instanceof TesseraError && e.code === 'BAD_INPUT');
  assert.throws(() => checkObjectRecord({ ...rec, headers: { expires: 'x'.repeat(MAX_STORED_HEADER_CHARS + 1) } }), (e: unknown) => e instanceof TesseraError && e.code === 'BAD_INPUT');
});

test('CreateBucket again: 200 for the key that made it, BucketAlreadyExists for another key, BucketAlreadyOwnedByYou for a bucket made outside S3', async () => {
  const { buckets, service } = store();
  Object.assign(service, {
    async createBucket(name: string, policy: unknown, owner?: string) {
      if (buckets.has(name)) throw new TesseraError('CONFLICT', `bucket '${name}' already exists`);
      buckets.set(name, { name, id: '1'.repeat(32), createdAt: MTIME, policy, ...(owner !== undefined ? { owner } : {}) } as BucketEntry);
    },
  });
  const create = find(bucketRoutes(), 'CreateBucket').handle;
  const asKey = (accessKeyId: string, bucket: string) => ({ ...ctx(service, { method: 'PUT', accessKeyId }), bucket });
  await create(asKey('TKMAIN', 'mine'));
  assert.equal(buckets.get('mine')!.owner, 'TKMAIN');
  const again = (await create(asKey('TKMAIN', 'mine'))) as S3Response;
  assert.equal(again.headers?.location, '/mine');
  await assert.rejects(async () => create(asKey('TKALT', 'mine')), (e: unknown) => e instanceof S3Error && e.code === 'BucketAlreadyExists' && e.status === 409);
  await assert.rejects(async () => create(asKey('TKMAIN', 'bkt')), (e: unknown) => e instanceof S3Error && e.code === 'BucketAlreadyOwnedByYou' && e.status === 409);
});

test('ListBuckets pages by max-buckets with a continuation token, and refuses a token it did not give', async () => {
  const { buckets, service } = store();
  for (const name of ['b1', 'b2', 'b3']) buckets.set(name, { name, id: '2'.repeat(32), createdAt: MTIME, policy: { kind: 'replicas', n: 3 } } as unknown as BucketEntry);
  Object.assign(service, {
    async listBuckets() {
      return { items: [...buckets.values()].sort((a, b) => (a.name < b.name ? -1 : 1)), token: null };
    },
  });
  const list = find(bucketRoutes(), 'ListBuckets').handle;
  const names = (xml: string) => [...xml.matchAll(/<Name>([^<]*)<\/Name>/g)].map((m) => m[1]);
  const seen: string[] = [];
  let token: string | undefined;
  for (let round = 0; round < 10; round++) {
    const r = bodyOf(await list(ctx(service, { query: `max-buckets=2${token ? `&continuation-token=${token}` : ''}` })));
    const page = names(r) as string[];
    assert.ok(page.length <= 2);
    seen.push(...page);
    token = /<ContinuationToken>([^<]*)</.exec(r)?.[1];
    if (token === undefined) break;
  }
  assert.deepEqual(seen, ['b1', 'b2', 'b3', 'bkt']);
  assert.deepEqual(names(bodyOf(await list(ctx(service, {})))), ['b1', 'b2', 'b3', 'bkt']);
  for (const query of ['max-buckets=0', 'max-buckets=x', 'continuation-token=%2F%2F']) {
    await assert.rejects(async () => list(ctx(service, { query })), (e: unknown) => e instanceof S3Error && e.code === 'InvalidArgument');
  }
});
