import { test } from 'node:test';
import assert from 'node:assert/strict';
import { z } from 'zod';
import fc from 'fast-check';
import { TesseraError } from '../../../src/errors.js';
import { MAX_CONTROL_BYTES } from '../../../src/limits.js';
import { MAX_CONTROL_DEPTH, decodeControl, decodeControlUnknown, encodeControl } from '../../../src/wire/control.js';

const isCode = (code: string, pattern?: RegExp) => (e: unknown) =>
  e instanceof TesseraError && e.code === code && (pattern === undefined || pattern.test(e.message));

test('round-trips a message through its schema', () => {
  const schema = z.object({ m: z.string(), n: z.number().int(), data: z.instanceof(Uint8Array), list: z.array(z.string()) });
  const msg = { m: 'chunk.get', n: 42, data: Buffer.from([1, 2, 3]), list: ['a', 'b'] };
  const out = decodeControl(encodeControl(msg), schema);
  assert.equal(out.m, 'chunk.get');
  assert.equal(out.n, 42);
  assert.deepEqual([...out.data], [1, 2, 3]);
  assert.deepEqual(out.list, ['a', 'b']);
});

test('schema mismatch is BAD_INPUT naming the field', () => {
  const schema = z.object({ id: z.string() });
  assert.throws(() => decodeControl(encodeControl({ id: 5 }), schema), isCode('BAD_INPUT', /at id/));
});

test('bad CBOR is BAD_FRAME, never a raw cbor-x exception', () => {
  const cases = [
    Buffer.from([]), // empty
    Buffer.from([0x1c]), // reserved additional info
    Buffer.from([0x9f, 0x01, 0xff]), // indefinite array
    Buffer.from([0x62, 0x61]), // text string truncated
    Buffer.from([0x01, 0x02]), // trailing bytes
    Buffer.from([0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]), // 2^64 items announced
    Buffer.from([0xd8, 0x69, 0x01]), // tag 105 (cbor-x records) refused
    Buffer.from([0x62, 0xff, 0xfe]), // invalid UTF-8 survives the scan; cbor-x decides
  ];
  for (const c of cases) {
    try {
      decodeControlUnknown(c);
    } catch (e) {
      assert.ok(e instanceof TesseraError && e.code === 'BAD_FRAME', `${c.toString('hex')}: ${String(e)}`);
      continue;
    }
    // Only the UTF-8 case may decode (cbor-x is lenient there); everything else must throw.
    assert.equal(c.toString('hex'), '62fffe');
  }
});

test('tags and integers beyond 2^53 are refused by the scan, so a bignum costs time linear in its size', () => {
  const big = Buffer.alloc(200 << 10, 0xff);
  for (const tag of [0xc2, 0xc3]) {
    const bignum = Buffer.concat([Buffer.from([tag, 0x5a]), Buffer.alloc(4), big]);
    bignum.writeUInt32BE(big.length, 2);
    // Refused by the scan at its first byte: cbor-x, which took 29 s over one, never sees it.
    assert.throws(() => decodeControlUnknown(bignum), isCode('BAD_FRAME', /at byte 0: tag \d is not accepted/));
  }
  assert.throws(() => decodeControlUnknown(Buffer.from([0xc1, 0x00])), isCode('BAD_FRAME', /tag 1 is not accepted/));
  assert.throws(() => decodeControlUnknown(Buffer.from([0x1b, 0, 0x20, 0, 0, 0, 0, 0, 0])), isCode('BAD_FRAME', /beyond/));
  assert.throws(() => decodeControlUnknown(Buffer.from([0x3b, 0, 0x20, 0, 0, 0, 0, 0, 0])), isCode('BAD_FRAME', /beyond/));
  assert.equal(decodeControlUnknown(encodeControl(Number.MAX_SAFE_INTEGER)), Number.MAX_SAFE_INTEGER);
  assert.equal(decodeControlUnknown(encodeControl(-Number.MAX_SAFE_INTEGER)), -Number.MAX_SAFE_INTEGER);
});

test('nesting deeper than the limit is refused before cbor-x recurses', () => {
  const deep = Buffer.concat([Buffer.alloc(MAX_CONTROL_DEPTH + 1, 0x81), Buffer.from([0x00])]);
  assert.throws(() => decodeControlUnknown(deep), isCode('BAD_FRAME', /nesting deeper than/));
  const ok = Buffer.concat([Buffer.alloc(MAX_CONTROL_DEPTH, 0x81), Buffer.from([0x00])]);
  let v = decodeControlUnknown(ok);
  let depth = 0;
  while (Array.isArray(v)) {
    v = v[0];
    depth++;
  }
  assert.equal(depth, MAX_CONTROL_DEPTH);
});

test('a control section over the limit is refused on both sides', () => {
  assert.throws(() => encodeControl({ s: 'x'.repeat(MAX_CONTROL_BYTES) }), isCode('TOO_LARGE'));
  assert.throws(() => decodeControlUnknown(Buffer.alloc(MAX_CONTROL_BYTES + 1)), isCode('BAD_FRAME', /exceeds the limit/));
});

test('fuzz: arbitrary bytes never escape as anything but TesseraError', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
      try {
        decodeControlUnknown(bytes);
      } catch (e) {
        assert.ok(e instanceof TesseraError, String(e));
      }
    }),
    { numRuns: 3000 },
  );
});

/** True when a value holds an own '__proto__' key anywhere: such keys do not round-trip (see below). */
function hasProtoKey(v: unknown): boolean {
  if (v === null || typeof v !== 'object') return false;
  return Object.keys(v).some((k) => k === '__proto__') || Object.values(v).some(hasProtoKey);
}

test('a __proto__ key from the wire cannot reach an object prototype', () => {
  const hostile = JSON.parse('{"a":{"__proto__":{"polluted":1}}}') as unknown;
  const back = decodeControlUnknown(encodeControl(hostile)) as { a: Record<string, unknown> };
  assert.equal(Object.getPrototypeOf(back.a), Object.prototype);
  assert.equal((back.a as { polluted?: unknown }).polluted, undefined);
  assert.equal(({} as { polluted?: unknown }).polluted, undefined);
});

test('fuzz: JSON-like values round-trip', () => {
  fc.assert(
    fc.property(fc.jsonValue({ maxDepth: 8 }).filter((v) => !hasProtoKey(v)), (v) => {
      const back = decodeControlUnknown(encodeControl(v));
      assert.deepEqual(back, JSON.parse(JSON.stringify(v)));
    }),
    { numRuns: 500 },
  );
});
