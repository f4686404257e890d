import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Encoder } from 'cbor-x';
import { decodeStripe, encodeStripe } from '../../../src/files/erasure-stripe.js';
import { MAX_STRIPE_DESCRIPTOR_BYTES } from '../../../src/files/repair-limits.js';
import { TesseraError } from '../../../src/errors.js';

const cbor = new Encoder({ useRecords: false, mapsAsObjects: true, tagUint8Array: false });
const isCorrupt = (e: unknown) => e instanceof TesseraError && e.code === 'CORRUPT';

test('a stripe descriptor round-trips and its largest form (16+4) fits the descriptor limit', () => {
  const st = { c: randomBytes(32), size: 1 << 20, k: 16, m: 4, s: Array.from({ length: 20 }, () => randomBytes(32)) };
  const bytes = encodeStripe(st);
  assert.ok(bytes.length <= MAX_STRIPE_DESCRIPTOR_BYTES, `${bytes.length} bytes`);
  const back = decodeStripe(bytes);
  assert.deepEqual({ ...back, s: back.s.map((b) => b.toString('hex')) }, { ...st, s: st.s.map((b) => b.toString('hex')) });
});

test('malformed descriptors are CORRUPT: wrong shard count, bad ids, parity over the limit, oversize, not CBOR', () => {
  const good = { v: 1, c: randomBytes(32), n: 1000, k: 4, m: 2, s: Array.from({ length: 6 }, () => randomBytes(32)) };
  assert.throws(() => decodeStripe(cbor.encode({ ...good, s: good.s.slice(0, 5) })), isCorrupt);
  assert.throws(() => decodeStripe(cbor.encode({ ...good, c: randomBytes(31) })), isCorrupt);
  assert.throws(() => decodeStripe(cbor.encode({ ...good, m: 7, s: Array.from({ length: 11 }, () => randomBytes(32)) })), isCorrupt);
  assert.throws(() => decodeStripe(cbor.encode({ ...good, extra: 1 })), isCorrupt);
  assert.throws(() => decodeStripe(Buffer.alloc(MAX_STRIPE_DESCRIPTOR_BYTES + 1)), isCorrupt);
  assert.throws(() => decodeStripe(Buffer.from([0xff, 0xff])), isCorrupt);
});
