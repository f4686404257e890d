/** The multipart routes' parsing and error naming, with a stand-in service and request. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { IncomingHttpHeaders } from 'node:http';
import { Readable } from 'node:stream';
import { TesseraError } from '../../../src/errors.js';
import { S3Error } from '../../../src/s3/errors.js';
import type { S3Context, S3Route } from '../../../src/s3/handler.js';
import { MAX_COMPLETE_BODY_BYTES, multipartRoutes, parseCopyRange, type S3Multipart } from '../../../src/s3/multipart-routes.js';

const calls: unknown[][] = [];
const fault = (code: 'NOT_FOUND' | 'BAD_INPUT', f: string) => new TesseraError(code, f, { fault: f });

const service = {
  async complete(...a: unknown[]) {
    calls.push(['complete', ...a]);
    const parts = a[3] as { partNumber: number; etag: string }[];
    if (parts.some((p) => p.etag === 'bad')) throw fault('BAD_INPUT', 'invalid-part');
    if (a[2] === 'gone') throw fault('NOT_FOUND', 'no-such-upload');
    return { key: a[1], etag: 'abc-2', fileId: 'x', size: 1, checksums: {}, contentType: '', userMeta: {}, mtime: 0 };
  },
  async uploadPart(...a: unknown[]) {
    calls.push(['uploadPart', ...a]);
    return { partNumber: a[3], etag: 'd41d8cd98f00b204e9800998ecf8427e', fileId: 'x', size: 0, mtime: 0 };
  },
} as unknown as S3Multipart;

const routes = multipartRoutes(service);
const route = (name: string): S3Route => routes.find((r) => r.name === name)!;

function ctx(o: { query?: string; headers?: IncomingHttpHeaders; body?: Buffer; bodyLength?: number }): S3Context {
  return {
    req: undefined as never,
    method: 'POST',
    bucket: 'bkt',
    key: 'k',
    query: new URLSearchParams(o.query ?? ''),
    headers: o.headers ?? {},
    principal: { accessKeyId: 'AK', name: 'n', buckets: null },
    objects: undefined as never,
    requestId: 'r',
    bodyLength: o.bodyLength,
    body: () => Readable.from([o.body ?? Buffer.alloc(0)]),
    readBody: async (max: number) => {
      if ((o.body?.length ?? 0) > max) throw new S3Error('MalformedXML', 'too big');
      return o.body ?? Buffer.alloc(0);
    },
    may: () => true,
  } as unknown as S3Context;
}

const xml = (parts: string) => Buffer.from(`<CompleteMultipartUpload>${parts}</CompleteMultipartUpload>`);
const s3code = (code: string) => (e: unknown) => e instanceof S3Error && e.code === code;

test('CompleteMultipartUpload: ETags with quotes as &quot; or &#34; (Go clients), and the right S3 error for each fault', async () => {
  const complete = route('CompleteMultipartUpload').handle;
  calls.length = 0;
  const r = await complete(ctx({ query: 'uploadId=u1', body: xml('<Part><PartNumber>1</PartNumber><ETag>&#34;e1&#34;</ETag></Part><Part><PartNumber>2</PartNumber><ETag>&quot;e2&quot;</ETag></Part>') }));
  assert.deepEqual((calls[0] as unknown[])[4], [{ partNumber: 1, etag: '"e1"' }, { partNumber: 2, etag: '"e2"' }]);
  assert.match(String((r as { body: string }).body), /<ETag>&quot;abc-2&quot;<\/ETag>/);
  await assert.rejects(complete(ctx({ query: 'uploadId=u1', body: xml('') })), s3code('MalformedXML'));
  await assert.rejects(complete(ctx({ query: 'uploadId=u1', body: xml('<Part><PartNumber>x</PartNumber><ETag>e</ETag></Part>') })), s3code('MalformedXML'));
  await assert.rejects(complete(ctx({ query: 'uploadId=u1', body: xml('<Part><PartNumber>1</PartNumber><ETag>bad</ETag></Part>') })), s3code('InvalidPart'));
  await assert.rejects(complete(ctx({ query: 'uploadId=gone', body: xml('<Part><PartNumber>1</PartNumber><ETag>e</ETag></Part>') })), s3code('NoSuchUpload'));
  await assert.rejects(complete(ctx({ query: 'uploadId=u1', body: Buffer.from('<!DOCTYPE x [<!ENTITY a "b">]><CompleteMultipartUpload/>') })), s3code('MalformedXML'));
  await assert.rejects(complete(ctx({ query: 'uploadId=u1', body: Buffer.alloc(MAX_COMPLETE_BODY_BYTES + 1, ' ') })), s3code('MalformedXML'));
});

test('UploadPart: part numbers and Content-MD5 are checked before the service is called, and the announced length passed on', async () => {
  const upload = route('UploadPart').handle;
  calls.length = 0;
  await assert.rejects(upload(ctx({ query: 'uploadId=u&partNumber=0' })), s3code('InvalidArgument'));
  await assert.rejects(upload(ctx({ query: 'uploadId=u&partNumber=10001' })), s3code('InvalidArgument'));
  await assert.rejects(upload(ctx({ query: 'uploadId=u&partNumber=1', headers: { 'content-md5': 'nope' } })), s3code('InvalidDigest'));
  assert.equal(calls.length, 0);
  const r = await upload(ctx({ query: 'uploadId=u&partNumber=3', bodyLength: 7 }));
  assert.equal((calls[0] as unknown[])[4], 3);
  assert.deepEqual((calls[0] as unknown[])[6], { expectedSize: 7 }, 'the part is checked against the length the request announced');
  assert.equal((r as { headers: Record<string, string> }).headers['ETag'], '"d41d8cd98f00b204e9800998ecf8427e"');
});

test('copy-source ranges: both ends required, within the source', () => {
  assert.deepEqual(parseCopyRange('bytes=0-4', 5), { start: 0, end: 4 });
  assert.throws(() => parseCopyRange('bytes=0-5', 5), s3code('InvalidRange'));
  assert.throws(() => parseCopyRange('bytes=3-2', 5), s3code('InvalidRange'));
  assert.throws(() => parseCopyRange('bytes=2-', 5), s3code('InvalidArgument'));
  assert.throws(() => parseCopyRange('items=0-1', 5), s3code('InvalidArgument'));
});
