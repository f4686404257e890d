/**
 * The hand-written membership readers accept and refuse exactly what the zod schemas do, and return
 * fresh records carrying only the known fields.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { pingReqReplySchema, pingReqSchema, pingSchema, readPing, readPingReq, readPingReqReply, readSync, syncSchema } from '../../../src/cluster/membership-wire.js';

const str = fc.oneof(fc.constantFrom('a', 'node-1', '127.0.0.1:7400', '', 'has space', 'x'.repeat(129), 'y'.repeat(257), 'é'), fc.string({ maxLength: 6 }));
const num = fc.oneof(fc.constantFrom(0, 1, -1, 1.5, Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER + 2, NaN, Infinity, -0), fc.integer());
const anyValue = fc.oneof(str, num, fc.constant(null), fc.constant(undefined), fc.boolean(), fc.constant([]), fc.constant({}));
const record = fc.record(
  {
    nodeId: fc.oneof(str, anyValue),
    addr: fc.oneof(str, anyValue),
    state: fc.oneof(fc.constantFrom('alive', 'suspect', 'dead', 'left', 'zombie'), anyValue),
    incarnation: fc.oneof(num, anyValue),
    capacity: num,
    used: num,
    statsVersion: num,
    extra: anyValue,
  },
  { requiredKeys: [] },
);
const maybeRecord = fc.oneof({ weight: 4, arbitrary: record }, { weight: 1, arbitrary: anyValue });
const list = fc.oneof(fc.array(maybeRecord, { maxLength: 3 }), anyValue);

function same(fast: (v: unknown, what: string) => unknown, schema: { safeParse(v: unknown): { success: boolean; data?: unknown } }, v: unknown): void {
  const z = schema.safeParse(v);
  let ok = true;
  let got: unknown;
  try {
    got = fast(v, 'm');
  } catch (e) {
    ok = false;
    assert.match((e as Error).message, /^malformed m: /);
  }
  assert.equal(ok, z.success, `reader ${ok ? 'accepted' : 'refused'} what the schema ${z.success ? 'accepts' : 'refuses'}: ${JSON.stringify(v)}`);
  if (ok) assert.deepEqual(got, z.data);
}

test('readers agree with the schemas on random bodies', () => {
  fc.assert(fc.property(fc.record({ from: maybeRecord, updates: list }, { requiredKeys: [] }), (v) => same(readPing, pingSchema, v)), { numRuns: 3000, seed: 1 });
  fc.assert(fc.property(fc.record({ from: maybeRecord, members: list }, { requiredKeys: [] }), (v) => same(readSync, syncSchema, v)), { numRuns: 2000, seed: 2 });
  fc.assert(
    fc.property(fc.record({ from: maybeRecord, ok: fc.oneof(fc.boolean(), anyValue), updates: list }, { requiredKeys: [] }), (v) => same(readPingReqReply, pingReqReplySchema, v)),
    { numRuns: 2000, seed: 3 },
  );
  fc.assert(
    fc.property(fc.record({ from: maybeRecord, target: fc.oneof(fc.record({ nodeId: str, addr: str }), anyValue), updates: list }, { requiredKeys: [] }), (v) => same(readPingReq, pingReqSchema, v)),
    { numRuns: 2000, seed: 4 },
  );
  for (const v of [null, 7, 'x', [], { from: [], updates: [] }]) same(readPing, pingSchema, v);
});

test('a valid record comes back as a fresh object without unknown fields', () => {
  const from = { nodeId: 'a', addr: 'h:1', state: 'alive', incarnation: 1, capacity: 2, used: 0, statsVersion: 3, evil: { big: 'x' } };
  const body = { from, updates: [from] };
  const r = readPing(body, 'm');
  assert.notEqual(r.from, from);
  assert.equal('evil' in r.from, false);
  assert.equal('evil' in r.updates[0]!, false);
});
