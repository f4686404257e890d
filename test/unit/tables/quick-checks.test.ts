import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { checkHlc, hlcSchema, MAX_HLC_LOGICAL, MAX_HLC_NODE_CHARS, MAX_HLC_WALL_MS, plainHlc } from '../../../src/content/index.js';
import { ENTRY_MAC_BYTES, MAX_PARTITION_KEY_BYTES, MAX_SORT_KEY_BYTES, MAX_VALUE_BYTES, plainWireEntry, wireEntrySchema } from '../../../src/tables/entry.js';
import { MAX_MERGE_ENTRIES, mergeRequest, parseEntriesRequest } from '../../../src/tables/rpc.js';
import { PROOF_BYTES } from '../../../src/tables/full-nodes.js';

const ts = { wall: 1_700_000_000_000, logical: 3, node: 'n1' };
const wire = () => ({ t: 'object', p: 'bucket-id', s: 'a/key', ts: { ...ts }, v: randomBytes(40) as Uint8Array | null, m: randomBytes(ENTRY_MAC_BYTES) as Uint8Array });

const hlcCases: unknown[] = [
  ts,
  { wall: 0, logical: 0, node: '' },
  { wall: MAX_HLC_WALL_MS, logical: MAX_HLC_LOGICAL, node: 'x'.repeat(MAX_HLC_NODE_CHARS) },
  { wall: MAX_HLC_WALL_MS + 1, logical: 0, node: 'n' },
  { wall: -1, logical: 0, node: 'n' },
  { wall: 1.5, logical: 0, node: 'n' },
  { wall: 1, logical: MAX_HLC_LOGICAL + 1, node: 'n' },
  { wall: 1, logical: 0, node: 'x'.repeat(MAX_HLC_NODE_CHARS + 1) },
  { wall: 1, logical: 0, node: 7 },
  { wall: '1', logical: 0, node: 'n' },
  { wall: 1, logical: 0 },
  { wall: 1, logical: 0, node: 'n', extra: true },
  Object.assign(Object.create({ wall: 1 }), { logical: 0, node: 'n', x: 1 }),
  null,
  [1, 2, 3],
  'ts',
];

test('the quick timestamp check accepts exactly what the schema accepts, with the same result', () => {
  for (const c of hlcCases) {
    const schema = hlcSchema.safeParse(c);
    const quick = plainHlc(c);
    assert.equal(quick !== undefined, schema.success, `case ${JSON.stringify(c)}`);
    if (schema.success) assert.deepEqual(quick, schema.data);
  }
  // What the quick check refuses still gets the schema's message.
  assert.throws(() => checkHlc({ wall: 1, logical: 0 }), /bad clock timestamp: node/);
  assert.deepEqual(checkHlc(ts), ts);
});

test('the quick wire-entry check accepts exactly what the schema accepts', () => {
  const cases: unknown[] = [
    wire(),
    { ...wire(), v: null },
    { ...wire(), p: 'p'.repeat(MAX_PARTITION_KEY_BYTES), s: 's'.repeat(MAX_SORT_KEY_BYTES), v: new Uint8Array(MAX_VALUE_BYTES) },
    { ...wire(), p: 'p'.repeat(MAX_PARTITION_KEY_BYTES + 1) },
    { ...wire(), s: 's'.repeat(MAX_SORT_KEY_BYTES + 1) },
    { ...wire(), v: new Uint8Array(MAX_VALUE_BYTES + 1) },
    { ...wire(), v: 'text' },
    { ...wire(), v: undefined },
    { ...wire(), m: randomBytes(ENTRY_MAC_BYTES - 1) },
    { ...wire(), m: 'x'.repeat(ENTRY_MAC_BYTES) },
    { ...wire(), t: 'Object' },
    { ...wire(), t: 5 },
    { ...wire(), ts: { wall: 1, logical: 0 } },
    { ...wire(), extra: 1 },
    (() => {
      const w: Record<string, unknown> = wire();
      delete w['m'];
      return w;
    })(),
    null,
    [wire()],
  ];
  for (const c of cases) {
    const schema = wireEntrySchema.safeParse(c);
    const quick = plainWireEntry(c);
    assert.equal(quick !== undefined, schema.success, `case ${JSON.stringify(c, (_k, v) => (v instanceof Uint8Array ? `bytes(${v.length})` : v))}`);
    if (schema.success) assert.deepEqual(quick, schema.data);
  }
});

test('a merge request takes the quick way when well formed and gets the schema message otherwise', () => {
  const auth = randomBytes(PROOF_BYTES);
  const good = { auth, entries: [wire(), wire()] };
  assert.deepEqual(parseEntriesRequest(good, 'table.write'), mergeRequest.parse(good));
  const bad: unknown[] = [
    { auth, entries: [wire(), { ...wire(), m: randomBytes(3) }] },
    { auth: randomBytes(PROOF_BYTES - 1), entries: [wire()] },
    { auth, entries: Array.from({ length: MAX_MERGE_ENTRIES + 1 }, wire) },
    { auth, entries: [wire()], more: 1 },
    { auth },
    'body',
  ];
  for (const b of bad) {
    assert.equal(mergeRequest.safeParse(b).success, false);
    assert.throws(() => parseEntriesRequest(b, 'table.write'), (e: Error) => /table\.write message does not match its schema/.test(e.message));
  }
});
