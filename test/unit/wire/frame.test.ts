import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TesseraError } from '../../../src/errors.js';
import { MAX_CONTROL_BYTES, MAX_FRAME_PAYLOAD_BYTES } from '../../../src/limits.js';
import { ADMITTED_FRAME_LIMITS, FRAME_HEADER_BYTES, FrameKind, MAX_ERROR_CONTROL_BYTES, encodeFrame } from '../../../src/wire/frame.js';
import { FrameDecoder } from '../../../src/wire/decoder.js';

function header(bodyLength: number, kind: number, flags: number, reserved: number, requestId: number, controlLength: number): Buffer {
  const b = Buffer.alloc(FRAME_HEADER_BYTES);
  b.writeUInt32BE(bodyLength, 0);
  b.writeUInt8(kind, 4);
  b.writeUInt8(flags, 5);
  b.writeUInt16BE(reserved, 6);
  b.writeUInt32BE(requestId, 8);
  b.writeUInt32BE(controlLength, 12);
  return b;
}

function decodeOnly(buf: Buffer) {
  return new FrameDecoder().pushAndDrain(buf);
}

function expectBadFrame(fn: () => unknown, pattern: RegExp) {
  assert.throws(fn, (e: unknown) => e instanceof TesseraError && e.code === 'BAD_FRAME' && pattern.test(e.message));
}

test('encodeFrame passes the payload through without copying it', () => {
  const payload = Buffer.alloc(1 << 20, 7);
  const parts = encodeFrame(FrameKind.REQUEST, 9, Buffer.from([0xa0]), payload);
  assert.equal(parts.length, 2);
  assert.equal(parts[1], payload, 'payload buffer must be the same object');
  assert.equal(parts[0]!.length, FRAME_HEADER_BYTES + 1);
  assert.equal(parts[0]!.readUInt32BE(0), 1 + payload.length);
});

test('encodeFrame keeps a scatter list as separate buffers', () => {
  const a = Buffer.from('hello ');
  const b = Buffer.from('world');
  const parts = encodeFrame(FrameKind.RESPONSE, 4, undefined, [a, Buffer.alloc(0), b]);
  assert.deepEqual(parts.slice(1), [a, b]);
  const frames = decodeOnly(Buffer.concat(parts));
  assert.equal(frames.length, 1);
  assert.equal(frames[0]!.payload.toString(), 'hello world');
  assert.equal(frames[0]!.requestId, 4);
  assert.equal(frames[0]!.kind, FrameKind.RESPONSE);
});

test('encodeFrame refuses a payload over the limit', () => {
  assert.throws(
    () => encodeFrame(FrameKind.REQUEST, 1, undefined, Buffer.alloc(MAX_FRAME_PAYLOAD_BYTES + 1)),
    (e: unknown) => e instanceof TesseraError && e.code === 'TOO_LARGE',
  );
  assert.throws(
    () => encodeFrame(FrameKind.REQUEST, 1, Buffer.alloc(MAX_CONTROL_BYTES + 1)),
    (e: unknown) => e instanceof TesseraError && e.code === 'TOO_LARGE',
  );
});

test('a frame of exactly the payload limit decodes', () => {
  const payload = Buffer.alloc(MAX_FRAME_PAYLOAD_BYTES, 1);
  const frames = decodeOnly(Buffer.concat(encodeFrame(FrameKind.REQUEST, 1, Buffer.from([0xf6]), payload)));
  assert.equal(frames[0]!.payload.length, MAX_FRAME_PAYLOAD_BYTES);
});

test('decoder rejects header violations by name', () => {
  expectBadFrame(() => decodeOnly(header(0, 99, 0, 0, 1, 0)), /unknown frame kind 99/);
  expectBadFrame(() => decodeOnly(header(0, 1, 0, 5, 1, 0)), /reserved header field is 5/);
  expectBadFrame(() => decodeOnly(header(0, 1, 0x80, 0, 1, 0)), /unknown frame flags 0x80/);
  expectBadFrame(() => decodeOnly(header(10, 1, 0, 0, 1, 11)), /control length 11 exceeds frame body length 10/);
  expectBadFrame(() => decodeOnly(header(MAX_CONTROL_BYTES + 1, 1, 0, 0, 1, MAX_CONTROL_BYTES + 1)), /control section .* exceeds the limit/);
  expectBadFrame(() => decodeOnly(header(MAX_FRAME_PAYLOAD_BYTES + 1, 1, 0, 0, 1, 0)), /payload of \d+ bytes exceeds the limit/);
});

test('a header announcing 4 GiB throws without allocating the body', () => {
  const before = process.memoryUsage().arrayBuffers;
  const d = new FrameDecoder();
  d.push(header(0xffff_ffff, FrameKind.REQUEST, 0, 0, 1, 0));
  expectBadFrame(() => d.next(), /exceeds the limit/);
  const grown = process.memoryUsage().arrayBuffers - before;
  assert.ok(grown < 1 << 20, `arrayBuffers grew by ${grown} bytes`);
  // A failed decoder stays failed: the stream position is lost.
  expectBadFrame(() => d.push(Buffer.alloc(1)), /exceeds the limit/);
});

test('decoder honours tighter limits set for the handshake', () => {
  const d = new FrameDecoder({ maxControlBytes: 64, maxPayloadBytes: 64 });
  d.push(Buffer.concat(encodeFrame(FrameKind.ADMIT, 0, undefined, Buffer.alloc(65))));
  expectBadFrame(() => d.next(), /payload of 65 bytes exceeds the limit of 64/);
});

test('after admission each kind keeps its own bounds, and handshake kinds are refused', () => {
  const admitted = () => new FrameDecoder(ADMITTED_FRAME_LIMITS);
  const d1 = admitted();
  d1.push(header(0xffff_ffff, FrameKind.REQUEST, 0, 0, 1, 0));
  expectBadFrame(() => d1.next(), /REQUEST payload of \d+ bytes exceeds the limit/);
  const d2 = admitted();
  d2.push(Buffer.concat(encodeFrame(FrameKind.CANCEL, 1, undefined, Buffer.alloc(1))));
  expectBadFrame(() => d2.next(), /CANCEL payload of 1 bytes exceeds the limit of 0/);
  const d3 = admitted();
  d3.push(header(MAX_ERROR_CONTROL_BYTES + 1, FrameKind.ERROR, 0, 0, 1, MAX_ERROR_CONTROL_BYTES + 1));
  expectBadFrame(() => d3.next(), /ERROR control section of \d+ bytes exceeds the limit/);
  for (const kind of [FrameKind.HELLO, FrameKind.ADMIT]) {
    const d = admitted();
    d.push(header(0, kind, 0, 0, 0, 0));
    expectBadFrame(() => d.next(), /is not accepted at this stage/);
  }
  const ok = admitted().pushAndDrain(Buffer.concat(encodeFrame(FrameKind.REQUEST, 1, Buffer.from([0xf6]), Buffer.alloc(MAX_FRAME_PAYLOAD_BYTES))));
  assert.equal(ok[0]!.payload.length, MAX_FRAME_PAYLOAD_BYTES);
});

test('frames split byte by byte and glued together come out whole and in order', () => {
  const frames = [
    encodeFrame(FrameKind.REQUEST, 1, Buffer.from([0x01]), Buffer.alloc(5000, 3)),
    encodeFrame(FrameKind.CANCEL, 1, undefined),
    encodeFrame(FrameKind.ERROR, 2, Buffer.from([0x02]), Buffer.from('xyz')),
  ];
  const all = Buffer.concat(frames.flat());
  const d = new FrameDecoder();
  const out = [];
  for (let i = 0; i < all.length; i++) out.push(...d.pushAndDrain(all.subarray(i, i + 1)));
  assert.deepEqual(
    out.map((f) => [f.kind, f.requestId, f.control.length, f.payload.length]),
    [
      [FrameKind.REQUEST, 1, 1, 5000],
      [FrameKind.CANCEL, 1, 0, 0],
      [FrameKind.ERROR, 2, 1, 3],
    ],
  );
  assert.ok(out[0]!.payload.every((b) => b === 3));
  assert.equal(d.bufferedBytes, 0);
});

test('a 1 MiB payload spread over many chunks is assembled into one buffer of its own size', () => {
  const payload = Buffer.alloc(1 << 20);
  for (let i = 0; i < payload.length; i += 4) payload.writeUInt32BE(i, i);
  const wire = Buffer.concat(encodeFrame(FrameKind.REQUEST, 3, undefined, payload));
  const d = new FrameDecoder();
  const out = [];
  for (let i = 0; i < wire.length; i += 16384) out.push(...d.pushAndDrain(wire.subarray(i, i + 16384)));
  assert.equal(out.length, 1);
  assert.ok(out[0]!.payload.equals(payload));
  assert.equal(out[0]!.payload.buffer.byteLength, 1 << 20, 'body must be one exact-size allocation');
});

test('a large frame inside one chunk is returned as a view, not a copy', () => {
  const payload = Buffer.alloc(100_000, 9);
  const wire = Buffer.concat(encodeFrame(FrameKind.RESPONSE, 8, undefined, payload));
  const [f] = new FrameDecoder().pushAndDrain(wire);
  assert.equal(f!.payload.buffer, wire.buffer);
});
