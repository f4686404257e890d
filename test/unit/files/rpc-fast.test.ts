import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FILE_METHODS, fastParsers, parseBody, schemas } from '../../../src/files/rpc.js';
import { MAX_IDS_PER_REQUEST } from '../../../src/files/limits.js';
import { MAX_HEAL_COPIES } from '../../../src/files/repair-limits.js';

const U = 'ab'.repeat(16);
const id = (n: number) => new Uint8Array(32).fill(n);
const pin = (n: number) => new Uint8Array(64).fill(n);

/** The schema's answer: its output, or 'refused'. */
function bySchema(method: keyof typeof schemas, body: unknown): unknown {
  const r = schemas[method].safeParse(body);
  return r.success ? r.data : 'refused';
}
function byParseBody(method: keyof typeof schemas, body: unknown): unknown {
  try {
    return parseBody(method, body);
  } catch {
    return 'refused';
  }
}

const putBodies: unknown[] = [
  // What a writer sends, and what repair sends without an upload.
  { upload: U, id: id(1), pin: pin(2), heal: { r: 3 } },
  { upload: U, id: Buffer.from(id(1)), pin: Buffer.from(pin(2)) },
  { id: id(1), heal: { r: 2 } },
  { id: id(1), heal: {} },
  { id: id(1) },
  Object.assign(Object.create(null) as object, { id: id(1), upload: U }),
  // Each field wrong in turn, and shapes only the schema takes (owners, stripes, shards).
  { upload: U.toUpperCase(), id: id(1) },
  { upload: U + '0', id: id(1) },
  { upload: 7, id: id(1) },
  { upload: U, id: new Uint8Array(31) },
  { upload: U, id: 'x'.repeat(32) },
  { upload: U },
  { upload: U, id: id(1), pin: new Uint8Array(63) },
  { upload: U, id: id(1), pin: [1, 2] },
  { upload: U, id: id(1), heal: { r: 0 } },
  { upload: U, id: id(1), heal: { r: MAX_HEAL_COPIES } },
  { upload: U, id: id(1), heal: { r: MAX_HEAL_COPIES + 1 } },
  { upload: U, id: id(1), heal: { r: 2.5 } },
  { upload: U, id: id(1), heal: { r: Number.NaN } },
  { upload: U, id: id(1), heal: { r: '3' } },
  { upload: U, id: id(1), heal: { r: 3, extra: 1 } },
  { upload: U, id: id(1), heal: { stripe: true } },
  { upload: U, id: id(1), heal: { of: { d: id(4), i: 1 } } },
  { upload: U, id: id(1), heal: { owners: [] } },
  { upload: U, id: id(1), heal: null },
  { upload: U, id: id(1), heal: [] },
  { upload: U, id: id(1), extra: true },
  { upload: U, id: id(1), pin: undefined },
  new Map([['id', id(1)]]),
  [id(1)],
  null,
  'chunk',
];

const claimBodies: unknown[] = [
  { upload: U, ids: [id(1), id(2)], pins: [pin(1), pin(2)], r: 3 },
  { upload: U, ids: [id(1)], pins: [pin(1)] },
  { upload: U, ids: [] },
  { upload: U, ids: Array.from({ length: MAX_IDS_PER_REQUEST }, (_, i) => id(i & 255)) },
  { upload: U, ids: Array.from({ length: MAX_IDS_PER_REQUEST + 1 }, (_, i) => id(i & 255)) },
  // The schema does not tie the counts together (the gate refuses a mismatch, naming it).
  { upload: U, ids: [id(1), id(2)], pins: [pin(1)] },
  { upload: U, ids: [id(1), new Uint8Array(33)] },
  { upload: U, ids: [id(1)], pins: [pin(1), new Uint8Array(32)] },
  { upload: U, ids: [id(1)], pins: pin(1) },
  { upload: U, ids: id(1) },
  { upload: U, ids: [id(1)], r: 0 },
  { upload: U, ids: [id(1)], r: 1.5 },
  { upload: U, ids: [id(1)], r: MAX_HEAL_COPIES + 1 },
  { upload: 'zz'.repeat(16), ids: [id(1)] },
  { ids: [id(1)] },
  { upload: U, ids: [id(1)], more: 1 },
  { upload: U, ids: [id(1)], r: undefined },
  undefined,
];

test('chunk.put and chunk.claim: the hand check gives exactly the schema answer, and takes what a writer sends', () => {
  for (const [method, bodies, taken] of [
    [FILE_METHODS.chunkPut, putBodies, 6],
    [FILE_METHODS.chunkClaim, claimBodies, 4],
  ] as const) {
    for (const [i, body] of bodies.entries()) {
      const want = bySchema(method, body);
      assert.deepEqual(byParseBody(method, body), want, `${method} body ${i}`);
      const fast = fastParsers[method]!(body);
      // The hand check may leave any body to the schema, but what it takes the schema must take, with the same output.
      if (fast !== undefined) assert.deepEqual(fast, want, `${method} body ${i}, fast path`);
      // The first bodies of each list are the shapes of a put's path: they must not fall back to the schema.
      if (i < taken) assert.notEqual(fast, undefined, `${method} body ${i} should take the fast path`);
    }
  }
});

test('chunk.put fast path: its buffers are copies, as the schema makes them', () => {
  const raw = Buffer.from(id(9));
  const b = parseBody(FILE_METHODS.chunkPut, { upload: U, id: raw });
  assert.ok(Buffer.isBuffer(b.id));
  raw[0] = 0;
  assert.equal(b.id[0], 9);
});

test('a refused body still names the method and the problem', () => {
  assert.throws(() => parseBody(FILE_METHODS.chunkPut, { upload: U, id: new Uint8Array(5) }), /bad chunk\.put request at id: chunk id must be 32 bytes/);
  assert.throws(() => parseBody(FILE_METHODS.chunkClaim, { upload: U, ids: [id(1)], r: 0 }), /bad chunk\.claim request at r/);
});
