import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { TesseraError } from '../../../src/errors.js';
import { FRAME_HEADER_BYTES, FrameKind, encodeFrame, type Frame } from '../../../src/wire/frame.js';
import { FrameDecoder } from '../../../src/wire/decoder.js';
import { splitAt } from '../../../bench/fuzz-targets.js';

const kinds = Object.values(FrameKind);

const frameArb = fc.record({
  kind: fc.constantFrom(...kinds),
  requestId: fc.nat({ max: 0xffff_ffff }),
  control: fc.uint8Array({ maxLength: 300 }),
  payload: fc.oneof(fc.uint8Array({ maxLength: 300 }), fc.integer({ min: 4000, max: 70_000 }).map((n) => new Uint8Array(n).fill(n & 0xff))),
});

const split = splitAt;

function feed(d: FrameDecoder, parts: Buffer[]): Frame[] {
  const out: Frame[] = [];
  for (const p of parts) out.push(...d.pushAndDrain(p));
  return out;
}

test('fuzz: valid frames round-trip across arbitrary chunk splits', () => {
  fc.assert(
    fc.property(fc.array(frameArb, { minLength: 1, maxLength: 8 }), fc.array(fc.nat(), { maxLength: 40 }), (frames, cuts) => {
      const wire = Buffer.concat(
        frames.flatMap((f) => encodeFrame(f.kind, f.requestId, f.control, Buffer.from(f.payload.buffer, f.payload.byteOffset, f.payload.length))),
      );
      const d = new FrameDecoder();
      const out = feed(d, split(wire, cuts));
      assert.equal(out.length, frames.length);
      out.forEach((got, i) => {
        const want = frames[i]!;
        assert.equal(got.kind, want.kind);
        assert.equal(got.requestId, want.requestId);
        assert.ok(got.control.equals(Buffer.from(want.control)));
        assert.ok(got.payload.equals(Buffer.from(want.payload)));
      });
      assert.equal(d.bufferedBytes, 0);
    }),
    { numRuns: 300 },
  );
});

test('fuzz: random bytes only ever raise TesseraError', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 512 }), fc.array(fc.nat(), { maxLength: 10 }), (bytes, cuts) => {
      const d = new FrameDecoder();
      try {
        feed(d, split(Buffer.from(bytes), cuts));
      } catch (e) {
        assert.ok(e instanceof TesseraError && e.code === 'BAD_FRAME', String(e));
      }
    }),
    { numRuns: 2000 },
  );
});

test('fuzz: truncated frames yield nothing and hold only what was received', () => {
  fc.assert(
    fc.property(frameArb, fc.nat(), (f, cut) => {
      const wire = Buffer.concat(encodeFrame(f.kind, f.requestId, f.control, Buffer.from(f.payload)));
      const at = cut % wire.length; // strictly short of the whole frame
      const d = new FrameDecoder();
      assert.deepEqual(feed(d, [wire.subarray(0, at)]), []);
      assert.equal(d.bufferedBytes, at);
      assert.equal(feed(d, [wire.subarray(at)]).length, 1);
    }),
    { numRuns: 300 },
  );
});

test('fuzz: corrupted headers (kinds, reserved, flags, huge lengths) are refused without allocating', () => {
  const hdr = fc.record({
    bodyLength: fc.oneof(fc.nat({ max: 0xffff_ffff }), fc.constant(0xffff_ffff), fc.integer({ min: 9 << 20, max: 0xffff_ffff })),
    kind: fc.nat({ max: 255 }),
    flags: fc.nat({ max: 255 }),
    reserved: fc.nat({ max: 0xffff }),
    requestId: fc.nat({ max: 0xffff_ffff }),
    controlLength: fc.oneof(fc.nat({ max: 0xffff_ffff }), fc.nat({ max: 64 })),
  });
  const before = process.memoryUsage().arrayBuffers;
  let peak = 0;
  fc.assert(
    fc.property(hdr, (h) => {
      const b = Buffer.alloc(FRAME_HEADER_BYTES);
      b.writeUInt32BE(h.bodyLength, 0);
      b.writeUInt8(h.kind, 4);
      b.writeUInt8(h.flags, 5);
      b.writeUInt16BE(h.reserved, 6);
      b.writeUInt32BE(h.requestId, 8);
      b.writeUInt32BE(h.controlLength, 12);
      const d = new FrameDecoder();
      try {
        feed(d, [b]);
      } catch (e) {
        assert.ok(e instanceof TesseraError && e.code === 'BAD_FRAME', String(e));
      }
      // A header that passes validation may allocate its body, bounded by the frame limit;
      // the decoder is dropped right away so nothing accumulates.
      peak = Math.max(peak, process.memoryUsage().arrayBuffers - before);
    }),
    { numRuns: 500 },
  );
  assert.ok(peak < 64 << 20, `arrayBuffers peaked ${peak} bytes above the start`);
});
