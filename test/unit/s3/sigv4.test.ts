import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fc from 'fast-check';
import { authenticate, cachedSigningKey, cachedSigningKeys, MAX_CACHED_SIGNING_KEYS, MAX_CLOCK_SKEW_MS } from '../../../src/s3/auth.js';
import { S3Error } from '../../../src/s3/errors.js';
import { canonicalQuery, canonicalUri, parseAuthorizationHeader, uriEncode, EMPTY_SHA256, signingKey as derive } from '../../../src/s3/sigv4.js';

// The published AWS Signature Version 4 examples for S3 (the "examplebucket" requests).
const AKID = 'AKIAIOSFODNN7EXAMPLE';
const SECRET = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY';
const T0 = Date.UTC(2013, 4, 24, 0, 0, 0);
const lookup = async (id: string) => (id === AKID ? { secret: SECRET, principal: id } : null);

function h(o: Record<string, string>): Record<string, string[]> {
  return Object.fromEntries(Object.entries(o).map(([k, v]) => [k.toLowerCase(), [v]]));
}

const getObject = (signature: string, extra: Record<string, string> = {}) => ({
  method: 'GET',
  rawPath: '/test.txt',
  rawQuery: '',
  headers: h({
    host: 'examplebucket.s3.amazonaws.com',
    range: 'bytes=0-9',
    'x-amz-content-sha256': EMPTY_SHA256,
    'x-amz-date': '20130524T000000Z',
    authorization: `AWS4-HMAC-SHA256 Credential=${AKID}/20130524/us-east-1/s3/aws4_request,SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,Signature=${signature}`,
    ...extra,
  }),
});

test('the published GET Object example verifies, and a changed byte anywhere does not', async () => {
  const good = 'f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41';
  const a = await authenticate(getObject(good), T0, lookup);
  assert.equal(a.principal, AKID);
  assert.equal(a.credential.region, 'us-east-1');
  assert.deepEqual(a.payload, { kind: 'sha256', hex: EMPTY_SHA256 });
  await assert.rejects(authenticate(getObject(good.replace(/^f/, 'e')), T0, lookup), (e: S3Error) => e.code === 'SignatureDoesNotMatch');
  await assert.rejects(authenticate(getObject(good, { range: 'bytes=0-10' }), T0, lookup), (e: S3Error) => e.code === 'SignatureDoesNotMatch');
  await assert.rejects(authenticate({ ...getObject(good), rawPath: '/test2.txt' }, T0, lookup), (e: S3Error) => e.code === 'SignatureDoesNotMatch');
  await assert.rejects(authenticate(getObject(good), T0, async () => ({ secret: SECRET + 'x', principal: AKID })), (e: S3Error) => e.code === 'SignatureDoesNotMatch');
  await assert.rejects(authenticate(getObject(good), T0, async () => null), (e: S3Error) => e.code === 'InvalidAccessKeyId');
});

test('a request more than 15 minutes from the server clock is RequestTimeTooSkewed, within it is accepted', async () => {
  const good = 'f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41';
  await authenticate(getObject(good), T0 + MAX_CLOCK_SKEW_MS - 1000, lookup);
  await authenticate(getObject(good), T0 - MAX_CLOCK_SKEW_MS + 1000, lookup);
  await assert.rejects(authenticate(getObject(good), T0 + MAX_CLOCK_SKEW_MS + 1000, lookup), (e: S3Error) => e.code === 'RequestTimeTooSkewed' && e.status === 403);
  await assert.rejects(authenticate(getObject(good), T0 - MAX_CLOCK_SKEW_MS - 1000, lookup), (e: S3Error) => e.code === 'RequestTimeTooSkewed');
});

test('the published presigned GET example verifies until it expires, then AccessDenied', async () => {
  const q = 'X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404';
  const req = { method: 'GET', rawPath: '/test.txt', rawQuery: q, headers: h({ host: 'examplebucket.s3.amazonaws.com' }) };
  const a = await authenticate(req, T0 + 3600_000, lookup);
  assert.deepEqual(a.payload, { kind: 'unsigned' });
  // Long after the signing time is fine for a presigned URL within its lifetime: no skew rule.
  await authenticate(req, T0 + 86_399_000, lookup);
  await assert.rejects(authenticate(req, T0 + 86_401_000, lookup), (e: S3Error) => e.code === 'AccessDenied' && /expired/.test(e.message));
  await assert.rejects(authenticate({ ...req, rawQuery: q.replace('Expires=86400', 'Expires=86401') }, T0, lookup), (e: S3Error) => e.code === 'SignatureDoesNotMatch');
  // No lifetime, a negative one or one over a week: 403 before the signature is even looked at.
  for (const bad of ['999999', '604801', '0', '-7', '']) {
    await assert.rejects(authenticate({ ...req, rawQuery: q.replace('Expires=86400', `Expires=${bad}`) }, T0, lookup), (e: S3Error) => e.code === 'AccessDenied' && e.status === 403 && /X-Amz-Expires/.test(e.message));
  }
});

test('anonymous requests and other signature versions are refused with the reason', async () => {
  await assert.rejects(authenticate({ method: 'GET', rawPath: '/', rawQuery: '', headers: h({ host: 'x' }) }, T0, lookup), (e: S3Error) => e.code === 'AccessDenied');
  await assert.rejects(authenticate({ method: 'GET', rawPath: '/', rawQuery: '', headers: h({ host: 'x', authorization: 'AWS AKID:abc' }) }, T0, lookup), (e: S3Error) => e.code === 'AuthorizationHeaderMalformed');
  assert.throws(() => parseAuthorizationHeader('AWS4-HMAC-SHA256 ' + 'x'.repeat(5000)), (e: S3Error) => e.code === 'AuthorizationHeaderMalformed');
  assert.throws(() => parseAuthorizationHeader(`AWS4-HMAC-SHA256 Credential=${AKID}/20130524/us-east-1/sqs/aws4_request,SignedHeaders=host,Signature=${'0'.repeat(64)}`), /service 'sqs'/);
  assert.throws(() => parseAuthorizationHeader(`AWS4-HMAC-SHA256 Credential=${AKID}/20130524/us-east-1/s3/aws4_request,SignedHeaders=x-amz-date,Signature=${'0'.repeat(64)}`), /must include host/);
});

test('uriEncode, with its shortcut for strings that need no encoding, matches RFC 3986 encoding of every string', () => {
  const rfc3986 = (s: string, encodeSlash: boolean) => {
    const e = encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
    return encodeSlash ? e : e.replace(/%2F/g, '/');
  };
  const text = fc.oneof(fc.string(), fc.string({ unit: 'binary' }), fc.stringMatching(/^[A-Za-z0-9._~\/-]{0,30}$/));
  fc.assert(fc.property(text, fc.boolean(), (s, slash) => uriEncode(s, slash) === rfc3986(s, slash)), { numRuns: 2000 });
});

test('canonical forms: RFC 3986 encoding, sorted query, paths decoded once and encoded again', () => {
  assert.equal(uriEncode('a b+c/d~e*'), 'a%20b%2Bc%2Fd~e%2A');
  assert.equal(uriEncode('a/b', false), 'a/b');
  assert.equal(uriEncode('é'), '%C3%A9');
  assert.equal(canonicalUri('/bucket/a%20b/c%2Bd'), '/bucket/a%20b/c%2Bd');
  assert.equal(canonicalUri('/bucket/a!b'), '/bucket/a%21b');
  assert.equal(canonicalQuery([['prefix', 'x y'], ['list-type', '2'], ['acl', '']]), 'acl=&list-type=2&prefix=x%20y');
});

function python(code: string): string {
  return execFileSync('python3', ['-c', code], { encoding: 'utf8', timeout: 30_000 });
}

test('a request signed by botocore (what aws-cli signs with) verifies, any region, with query, odd key and meta headers', async (t) => {
  try {
    python('import botocore');
  } catch {
    t.skip('python3 with botocore is not installed (apt-get install python3-botocore)');
    return;
  }
  const out = python(`
import json
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
req = AWSRequest(method='PUT', url='http://127.0.0.1:9000/my-bucket/dir/a%20b%2Bc%21.txt?x-id=PutObject', data=b'hello world', headers={'Content-Type': 'text/plain', 'x-amz-meta-colour': '  blue   sky '})
S3SigV4Auth(Credentials('TKTESTTESTTESTTESTTE', 'secret/with+chars'), 's3', 'moon-base-1').add_auth(req)
print(json.dumps({k.lower(): v for k, v in req.headers.items()}))
`);
  const headers = JSON.parse(out) as Record<string, string>;
  headers.host = '127.0.0.1:9000';
  const req = { method: 'PUT', rawPath: '/my-bucket/dir/a%20b%2Bc%21.txt', rawQuery: 'x-id=PutObject', headers: h(headers) };
  const now = Date.now();
  const look = async (id: string) => (id === 'TKTESTTESTTESTTESTTE' ? { secret: 'secret/with+chars', principal: id } : null);
  const a = await authenticate(req, now, look);
  assert.equal(a.credential.region, 'moon-base-1');
  assert.equal(a.payload.kind, 'sha256');
  await assert.rejects(authenticate({ ...req, rawQuery: 'x-id=GetObject' }, now, look), (e: S3Error) => e.code === 'SignatureDoesNotMatch');
  await assert.rejects(authenticate(req, now, async () => ({ secret: 'secret/with+chars!', principal: 'x' })), (e: S3Error) => e.code === 'SignatureDoesNotMatch');
});

test('signing keys are cached per secret, day, region and service, within a bound', () => {
  const c = { accessKeyId: 'AK', date: '20260102', region: 'us-east-1', service: 's3' };
  assert.ok(cachedSigningKey('secret-a', c).equals(derive('secret-a', c.date, c.region, c.service)));
  assert.ok(cachedSigningKey('secret-a', c).equals(derive('secret-a', c.date, c.region, c.service)), 'a cached key is the derived one');
  assert.ok(!cachedSigningKey('secret-b', c).equals(cachedSigningKey('secret-a', c)), 'another secret, another key');
  assert.ok(!cachedSigningKey('secret-a', { ...c, date: '20260103' }).equals(cachedSigningKey('secret-a', c)), 'another day, another key');
  // Regions are the client's to choose: many of them never grow the cache past its bound.
  for (let i = 0; i < 5 * MAX_CACHED_SIGNING_KEYS; i++) {
    const region = `region-${i}`;
    assert.ok(cachedSigningKey('secret-a', { ...c, region }).equals(derive('secret-a', c.date, region, c.service)));
    assert.ok(cachedSigningKeys() <= MAX_CACHED_SIGNING_KEYS);
  }
});
