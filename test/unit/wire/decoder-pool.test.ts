import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { FrameKind, encodeFrame, type Frame } from '../../../src/wire/frame.js';
import { FrameDecoder } from '../../../src/wire/decoder.js';
import { BODY_POOL_BUFFERS, BODY_POOL_BYTES, POOLED_BODY_MIN_BYTES } from '../../../src/wire/body-pool.js';

const TLS_RECORD = 16 * 1024;

/** Feeds a frame in TLS-record-sized pieces, as a socket delivers it, and returns it whole. */
function receive(d: FrameDecoder, payload: Buffer, requestId = 1): Frame {
  const wire = Buffer.concat(encodeFrame(FrameKind.REQUEST, requestId, Buffer.from([0xa0]), payload));
  const out: Frame[] = [];
  for (let at = 0; at < wire.length; at += TLS_RECORD) out.push(...d.pushAndDrain(Buffer.from(wire.subarray(at, at + TLS_RECORD))));
  assert.equal(out.length, 1);
  return out[0]!;
}

test('a large body that spans socket chunks is assembled in a pooled buffer, reused once recycled', () => {
  const d = new FrameDecoder();
  const a = randomBytes(1 << 20);
  const first = receive(d, a);
  assert.ok(first.payload.equals(a));
  assert.equal(typeof first.recycle, 'function');
  const memory = first.payload.buffer;
  first.recycle!();
  first.recycle!(); // a second call must not put the buffer in the pool twice

  const b = randomBytes(1 << 20);
  const second = receive(d, b, 3);
  assert.equal(second.payload.buffer, memory, 'the recycled buffer serves the next body of its size');
  assert.ok(second.payload.equals(b));
  const third = receive(d, randomBytes(1 << 20), 5);
  assert.notEqual(third.payload.buffer, memory, 'a buffer in use is never handed out again');
  assert.ok(second.payload.equals(b), 'a body in use is not overwritten by the next frame');
});

test('a body that is not recycled is never reused', () => {
  const d = new FrameDecoder();
  const kept = receive(d, randomBytes(1 << 20));
  const copy = Buffer.from(kept.payload);
  for (let i = 0; i < 4; i++) receive(d, randomBytes(1 << 20), 7 + 2 * i).recycle!();
  assert.ok(kept.payload.equals(copy));
});

test('small bodies are not pooled', () => {
  const d = new FrameDecoder();
  const f = receive(d, randomBytes(POOLED_BODY_MIN_BYTES - 1024));
  assert.equal(f.recycle, undefined);
});

test('the pool keeps at most BODY_POOL_BUFFERS buffers, the most recently returned', () => {
  const d = new FrameDecoder();
  const frames = Array.from({ length: BODY_POOL_BUFFERS + 3 }, (_, i) => receive(d, randomBytes(1 << 20), 101 + 2 * i));
  const returned = frames.map((f) => f.payload.buffer);
  for (const f of frames) f.recycle!();
  const again = Array.from({ length: BODY_POOL_BUFFERS + 3 }, (_, i) => receive(d, randomBytes(1 << 20), 201 + 2 * i).payload.buffer);
  const reused = again.filter((b) => returned.includes(b));
  assert.equal(reused.length, BODY_POOL_BUFFERS);
  assert.ok(!reused.includes(returned[0]!), 'the oldest returned buffers were let go');
});

test('the pool keeps at most BODY_POOL_BYTES, so fewer large buffers than small ones', () => {
  const d = new FrameDecoder();
  const size = 4 << 20;
  const count = Math.floor(BODY_POOL_BYTES / size) + 2;
  const frames = Array.from({ length: count }, (_, i) => receive(d, randomBytes(size), 301 + 2 * i));
  const returned = frames.map((f) => f.payload.buffer);
  // A pooled buffer holds the frame's control section too, rounded up to the pool's granule.
  const fit = Math.floor(BODY_POOL_BYTES / returned[0]!.byteLength);
  assert.ok(fit < BODY_POOL_BUFFERS && fit < count, 'the byte bound, not the count, binds at this size');
  for (const f of frames) f.recycle!();
  const again = Array.from({ length: count }, (_, i) => receive(d, randomBytes(size), 401 + 2 * i).payload.buffer);
  assert.equal(again.filter((b) => returned.includes(b)).length, fit);
});
