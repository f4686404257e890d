import { test } from 'node:test';
import assert from 'node:assert/strict';
import { nodeReadBuffers, POOLED_READ_BUFFERS, POOLED_READ_BYTES, Spares } from '../../../src/files/read-buffers.js';

test('a buffer given back is handed out again, the last given first', () => {
  const s = new Spares(4);
  const a = s.take(100);
  const b = s.take(100);
  assert.notEqual(a, b);
  s.give(a);
  s.give(b);
  assert.equal(s.take(100), b);
  assert.equal(s.take(50), a, 'a larger buffer serves a smaller request');
  assert.deepEqual(s.held, { buffers: 0, bytes: 0 });
});

test('a buffer too small for a request is dropped, not handed out', () => {
  const s = new Spares(4);
  s.give(Buffer.allocUnsafe(10));
  const b = s.take(20);
  assert.ok(b.length >= 20);
  assert.deepEqual(s.held, { buffers: 0, bytes: 0 });
});

test('the free list keeps at most its count and its bytes', () => {
  const byCount = new Spares(2);
  for (let i = 0; i < 5; i++) byCount.give(Buffer.allocUnsafe(8));
  assert.deepEqual(byCount.held, { buffers: 2, bytes: 16 });
  const byBytes = new Spares(100, 20);
  for (let i = 0; i < 5; i++) byBytes.give(Buffer.allocUnsafe(8));
  assert.deepEqual(byBytes.held, { buffers: 2, bytes: 16 });
});

test('a buffer given back twice is refused: two reads must never share one', () => {
  const s = new Spares(4);
  const a = s.take(8);
  s.give(a);
  assert.throws(() => s.give(a), { code: 'INTERNAL' });
  assert.equal(s.held.buffers, 1);
});

test("a node's pools are bounded by the named constants", () => {
  const pools = nodeReadBuffers();
  for (let i = 0; i < POOLED_READ_BUFFERS * 2; i++) pools.plain.give(Buffer.allocUnsafe(2 << 20));
  assert.ok(pools.plain.held.buffers <= POOLED_READ_BUFFERS);
  assert.ok(pools.plain.held.bytes <= POOLED_READ_BYTES);
  assert.equal(pools.cipher.held.buffers, 0, 'each kind has its own list');
});
