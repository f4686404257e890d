import { test } from 'node:test';
import assert from 'node:assert/strict';
import { S3Error, S3_ERRORS, toS3Error } from '../../../src/s3/errors.js';
import { TesseraError } from '../../../src/errors.js';
import { addressOf } from '../../../src/s3/routing.js';
import { matchRoute, type S3Route } from '../../../src/s3/handler.js';
import { el, errorDocument, MAX_XML_BODY_BYTES, MAX_XML_DEPTH, parseXmlBody, xmlDocument } from '../../../src/s3/xml.js';

test('XML writer escapes text, drops null children and puts the S3 namespace on the root', () => {
  const doc = xmlDocument('R', el('Key', 'a<b>&"c\''), null, [el('N', 1), el('B', true)]);
  assert.equal(doc, '<?xml version="1.0" encoding="UTF-8"?>\n<R xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Key>a&lt;b&gt;&amp;&quot;c&apos;</Key><N>1</N><B>true</B></R>');
  assert.match(el('K', 'x\u0001y').text, /x&#x1;y/);
  assert.match(errorDocument('NoSuchKey', 'gone', '/b/k', 'RID'), /<Error><Code>NoSuchKey<\/Code><Message>gone<\/Message><Resource>\/b\/k<\/Resource><RequestId>RID<\/RequestId><\/Error>/);
});

test('XML bodies: DeleteObjects parses with one or many objects; oversized, DOCTYPE, malformed, too deep or wrong root is MalformedXML', () => {
  const one = parseXmlBody(Buffer.from('<?xml version="1.0"?><Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Quiet>true</Quiet><Object><Key>a&amp;b</Key></Object></Delete>'), 'Delete');
  assert.deepEqual(one.Object, [{ Key: 'a&b' }]);
  assert.equal(one.Quiet, 'true');
  // Character references as Go's encoding/xml (rclone) writes them.
  const refs = parseXmlBody(Buffer.from('<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>&#34;a13d&#34;</ETag></Part><Part><ETag>&#x22;b&#x22;</ETag></Part></CompleteMultipartUpload>'), 'CompleteMultipartUpload');
  assert.deepEqual((refs.Part as Array<{ ETag: string }>).map((p) => p.ETag), ['"a13d"', '"b"']);
  const many = parseXmlBody(Buffer.from('<Delete><Object><Key>x</Key></Object><Object><Key> y </Key></Object></Delete>'), 'Delete');
  assert.deepEqual((many.Object as Array<{ Key: string }>).map((o) => o.Key), ['x', ' y ']);
  const bad = (body: string | Buffer) => assert.throws(() => parseXmlBody(Buffer.isBuffer(body) ? body : Buffer.from(body), 'Delete'), (e: S3Error) => e.code === 'MalformedXML' && e.status === 400);
  bad(Buffer.alloc(MAX_XML_BODY_BYTES + 1, ' '));
  bad('<!DOCTYPE x [<!ENTITY a "aaaa">]><Delete><Object><Key>&a;</Key></Object></Delete>');
  bad('<Delete><Object><Key>x</Key></Delete>');
  bad('not xml at all');
  bad('<Other><Object><Key>x</Key></Object></Other>');
  bad('<Delete>' + '<A>'.repeat(MAX_XML_DEPTH + 2) + '</A>'.repeat(MAX_XML_DEPTH + 2) + '</Delete>');
});

test('error catalogue: statuses S3 clients test, and lower-layer errors named once', () => {
  assert.equal(S3_ERRORS.NoSuchBucket, 404);
  assert.equal(S3_ERRORS.SignatureDoesNotMatch, 403);
  assert.equal(S3_ERRORS.InvalidRange, 416);
  assert.equal(S3_ERRORS.NotImplemented, 501);
  assert.equal(S3_ERRORS.BucketNotEmpty, 409);
  assert.equal(toS3Error(new TesseraError('BAD_DIGEST', 'x')).code, 'BadDigest');
  assert.equal(toS3Error(new TesseraError('UNAVAILABLE', 'x')).status, 503);
  assert.equal(toS3Error(new Error('boom')).code, 'InternalError');
  const inner = new S3Error('SignatureDoesNotMatch', 'chunk');
  assert.equal(toS3Error(new TesseraError('IO', 'wrapped', undefined, { cause: inner })), inner);
});

test('addressing: path style, virtual-host style under --s3-domain, and the service', () => {
  assert.deepEqual(addressOf('/', '127.0.0.1:9000', undefined), { bucket: undefined, key: undefined, target: 'service' });
  assert.deepEqual(addressOf('/b', 'h', undefined), { bucket: 'b', key: undefined, target: 'bucket' });
  assert.deepEqual(addressOf('/b/', 'h', undefined), { bucket: 'b', key: undefined, target: 'bucket' });
  assert.deepEqual(addressOf('/b/dir/a%20b%2Fc', 'h', undefined), { bucket: 'b', key: 'dir/a b/c', target: 'object' });
  assert.deepEqual(addressOf('/dir/k', 'photos.s3.example.test:9000', 's3.example.test'), { bucket: 'photos', key: 'dir/k', target: 'object' });
  assert.deepEqual(addressOf('/', 'Photos.S3.example.test', 's3.example.test'), { bucket: 'photos', key: undefined, target: 'bucket' });
  // The bare domain is path style.
  assert.deepEqual(addressOf('/b/k', 's3.example.test', 's3.example.test'), { bucket: 'b', key: 'k', target: 'object' });
  assert.throws(() => addressOf('/b/%E0%A4%A', 'h', undefined), (e: S3Error) => e.code === 'InvalidArgument');
});

test('route matching: the route naming the most query parameters and headers wins', () => {
  const r = (name: string, o: Partial<S3Route>): S3Route => ({ method: 'PUT', target: 'object', access: 'write', name, handle: async () => undefined, ...o });
  const routes = [r('PutObject', {}), r('CopyObject', { header: 'x-amz-copy-source' }), r('UploadPart', { query: ['partNumber', 'uploadId'] }), r('UploadPartCopy', { query: ['partNumber', 'uploadId'], header: 'x-amz-copy-source' })];
  const pick = (q: string, h: Record<string, string> = {}) => matchRoute(routes, 'PUT', 'object', new URLSearchParams(q), h)?.name;
  assert.equal(pick(''), 'PutObject');
  assert.equal(pick('', { 'x-amz-copy-source': '/b/k' }), 'CopyObject');
  assert.equal(pick('partNumber=1&uploadId=u'), 'UploadPart');
  assert.equal(pick('partNumber=1&uploadId=u', { 'x-amz-copy-source': '/b/k' }), 'UploadPartCopy');
  assert.equal(matchRoute(routes, 'GET', 'object', new URLSearchParams(''), {}), undefined);
});

test('query counts: absent gives the maximum, larger is clamped or refused, junk and too small refused', async () => {
  const { countParam } = await import('../../../src/s3/common.js');
  const q = (s: string) => new URLSearchParams(s);
  assert.equal(countParam(q(''), 'max-keys', { max: 1000 }), 1000);
  assert.equal(countParam(q('max-keys=0'), 'max-keys', { max: 1000 }), 0);
  assert.equal(countParam(q('max-keys=7'), 'max-keys', { max: 1000 }), 7);
  assert.equal(countParam(q('max-keys=999999'), 'max-keys', { max: 1000 }), 1000);
  for (const bad of ['max-keys=-1', 'max-keys=1e3', 'max-keys=x', 'max-keys=12345678901']) {
    assert.throws(() => countParam(q(bad), 'max-keys', { max: 1000 }), /InvalidArgument|is not a whole number/, bad);
  }
  assert.throws(() => countParam(q('max-buckets=0'), 'max-buckets', { max: 10_000, min: 1, refuseAbove: true }), /from 1 to 10000/);
  assert.throws(() => countParam(q('max-buckets=10001'), 'max-buckets', { max: 10_000, min: 1, refuseAbove: true }), /from 1 to 10000/);
  assert.equal(countParam(q('max-buckets=10000'), 'max-buckets', { max: 10_000, min: 1, refuseAbove: true }), 10_000);
});
