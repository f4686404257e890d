import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Crc32c } from '@aws-crypto/crc32c';
import { crc32c } from '../../../src/s3/crc32c.js';
import { BodyChecksums } from '../../../src/s3/checksums.js';
import { S3Error } from '../../../src/s3/errors.js';

test('crc32c: the check value and the RFC 3720 (iSCSI) test vectors', () => {
  assert.equal(crc32c(Buffer.from('123456789')), 0xe3069283);
  assert.equal(crc32c(Buffer.alloc(32)), 0x8a9136aa);
  assert.equal(crc32c(Buffer.alloc(32, 0xff)), 0x62a8ab43);
  assert.equal(crc32c(Buffer.from(Array.from({ length: 32 }, (_, i) => i))), 0x46dd794e);
  assert.equal(crc32c(Buffer.from(Array.from({ length: 32 }, (_, i) => 31 - i))), 0x113fdb5c);
  assert.equal(crc32c(new Uint8Array(0)), 0);
});

test('crc32c: equals the byte-at-a-time reference for any bytes, however they are cut', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), fc.nat(), (bytes, at) => {
      const ref = new Crc32c().update(bytes).digest() >>> 0;
      const cut = bytes.length === 0 ? 0 : at % (bytes.length + 1);
      assert.equal(crc32c(bytes), ref);
      assert.equal(crc32c(bytes.subarray(cut), crc32c(bytes.subarray(0, cut))), ref);
    }),
    { numRuns: 500 },
  );
});

test('crc32c: a body checksum over pieces verifies the right value and refuses a wrong one', () => {
  const body = Buffer.from('the quick brown fox jumps over the lazy dog, 64 KiB at a time in real life');
  const right = Buffer.alloc(4);
  right.writeUInt32BE(new Crc32c().update(body).digest() >>> 0);
  const sums = new BodyChecksums(['crc32c']);
  for (let i = 0; i < body.length; i += 7) sums.update(body.subarray(i, i + 7));
  sums.verify('crc32c', right.toString('base64'));
  const wrong = Buffer.from(right);
  wrong[0]! ^= 1;
  const again = new BodyChecksums(['crc32c']);
  again.update(body);
  assert.throws(() => again.verify('crc32c', wrong.toString('base64')), (e: unknown) => e instanceof S3Error && e.code === 'BadDigest');
});
