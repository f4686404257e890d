import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { TesseraError } from '../../../src/errors.js';
import {
  BIND_MESSAGE_BYTES, DESCRIPTOR_BYTES, bindVerifies, encodeBind, encodeDescriptor, parseBind, parseDescriptor, transferTag, type BulkKeys,
} from '../../../src/net/bulk-wire.js';

const keys = (): BulkKeys => ({ handle: randomBytes(16), bind: randomBytes(32), send: randomBytes(32), receive: randomBytes(32) });
const badFrame = (e: unknown) => e instanceof TesseraError && e.code === 'BAD_FRAME';

test('a binding verifies for its own session and generation only', () => {
  const k = keys();
  const req = parseBind(encodeBind(k, 7));
  assert.equal(req.handle, k.handle.toString('hex'));
  assert.equal(req.generation, 7);
  assert.ok(bindVerifies(k, req));
  assert.equal(bindVerifies(keys(), req), false, 'another session');
  assert.equal(bindVerifies(k, { ...req, generation: 8 }), false, 'another generation with the same proof');
  assert.throws(() => parseBind(encodeBind(k, 1).subarray(1)), badFrame);
  const wrongMagic = encodeBind(k, 1);
  wrongMagic[0] = 0x16;
  assert.throws(() => parseBind(wrongMagic), badFrame);
  assert.equal(encodeBind(k, 1).length, BIND_MESSAGE_BYTES);
});

test('a descriptor round-trips and its length is bounded before anything is allocated', () => {
  const d = { generation: 3, transferId: 9, length: 1000, tag: randomBytes(16) };
  const b = encodeDescriptor(d);
  assert.equal(b.length, DESCRIPTOR_BYTES);
  assert.deepEqual(parseDescriptor(b, 1000), d);
  assert.throws(() => parseDescriptor(b, 999), badFrame);
  assert.throws(() => parseDescriptor(b.subarray(1), 1000), badFrame);
});

test('the tag covers the bytes, the transfer id and the key, however the bytes are split', () => {
  const key = randomBytes(32);
  const bytes = randomBytes(100_000);
  const t = transferTag(key, 1, [bytes]);
  assert.ok(t.equals(transferTag(key, 1, [bytes.subarray(0, 7), bytes.subarray(7, 50_001), bytes.subarray(50_001)])));
  assert.ok(!t.equals(transferTag(key, 2, [bytes])), 'another transfer id');
  assert.ok(!t.equals(transferTag(randomBytes(32), 1, [bytes])), 'another key');
  const flipped = Buffer.from(bytes);
  flipped[12_345]! ^= 0x80;
  assert.ok(!t.equals(transferTag(key, 1, [flipped])), 'one flipped bit');
  assert.ok(!t.equals(transferTag(key, 1, [bytes.subarray(0, bytes.length - 1)])), 'one byte short');
});
