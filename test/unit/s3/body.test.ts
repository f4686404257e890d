import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { PassThrough } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { verifiedBody } from '../../../src/s3/body.js';
import { S3Error } from '../../../src/s3/errors.js';

const signing = { signingKey: Buffer.alloc(32), seedSignature: '', amzDate: '20260101T000000Z', scope: '20260101/us-east-1/s3/aws4_request' };
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const failure = async (p: Promise<unknown>) => {
  try {
    await p;
  } catch (e) {
    return e;
  }
  assert.fail('the body was read to its end without an error');
};

test('a plain body is passed through whole once its length and SHA-256 check', async () => {
  const body = Buffer.from('the whole body');
  const source = new PassThrough();
  const checked = verifiedBody(source, { 'content-length': String(body.length) }, { kind: 'sha256', hex: sha(body) }, signing);
  source.end(body);
  assert.ok((await buffer(checked)).equals(body));
});

test('a request that fails or closes before its body ended fails the check', async () => {
  const failing = new PassThrough();
  const a = verifiedBody(failing, { 'content-length': '100' }, { kind: 'unsigned' }, signing);
  failing.write(Buffer.alloc(10));
  failing.destroy(new Error('connection reset'));
  assert.match(String((await failure(buffer(a))) as Error), /connection reset/);

  const closed = new PassThrough();
  const b = verifiedBody(closed, { 'content-length': '100' }, { kind: 'unsigned' }, signing);
  closed.write(Buffer.alloc(10));
  closed.destroy();
  const e = await failure(buffer(b));
  assert.ok(e instanceof S3Error && e.code === 'IncompleteBody', `an IncompleteBody S3 error, got ${String(e)}`);
});

test('a check that fails leaves the request open (its error answer must still go out) and unpiped', async () => {
  const source = new PassThrough();
  // A body longer than its Content-Length fails the check while the request is still being read.
  const checked = verifiedBody(source, { 'content-length': '10' }, { kind: 'unsigned' }, signing);
  source.write(Buffer.alloc(64 << 10, 7));
  const e = await failure(buffer(checked));
  assert.ok(e instanceof S3Error && e.code === 'IncompleteBody', `a body over its length, got ${String(e)}`);
  await new Promise((r) => setImmediate(r));
  assert.equal(source.destroyed, false, 'the request is not destroyed');
  assert.equal(source.listenerCount('data'), 0, 'nothing reads the request any more');
  // An error of the request after its check is gone still has a listener (it would otherwise be thrown).
  source.destroy(new Error('late reset'));
  await new Promise((r) => setImmediate(r));
  assert.equal(source.destroyed, true);
});
