import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { checkHlc, hlcSchema, MAX_HLC_LOGICAL, MAX_HLC_NODE_CHARS, MAX_HLC_WALL_MS, plainHlc } from '../../../src/content/index.js';
import { ENTRY_MAC_BYTES, MAX_PARTITION_KEY_BYTES, MAX_SORT_KEY_BYTES, MAX_VALUE_BYTES, plainWireEntry, wireEntrySchema } from '../../../src/tables/entry.js';
import { MAX_MERGE_ENTRIES, MAX_VERSION_KEYS, mergeRequest, parseEntriesRequest, parseScanReply, parseVersionsReply, parseVersionsRequest, scanReply, versionsReply, versionsRequest } from '../../../src/tables/rpc.js';
import { MAX_SCAN_LIMIT } from '../../../src/tables/entry-store.js';
import { checkObjectRecord, MAX_CHECKSUM_CHARS, MAX_CHECKSUMS, MAX_CONTENT_TYPE_CHARS, MAX_ETAG_CHARS, MAX_OWNER_ID_CHARS, MAX_OWNER_NAME_CHARS, MAX_STORED_HEADER_CHARS, objectRecordSchema, plainObjectRecord } from '../../../src/tables/records.js';
import { FILE_ID_CHARS, formatFileId, isFileId, MAX_CREATED_AT_MS, MAX_FILE_BYTES, MAX_INLINE_SEALED_BYTES, parseFileId } from '../../../src/content/index.js';
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

test('a scan reply takes the quick way when well formed and gets the schema message otherwise', () => {
  const good = { entries: [wire(), { ...wire(), v: null }], more: true };
  assert.deepEqual(parseScanReply(good, 'table.scan'), scanReply.parse(good));
  assert.deepEqual(parseScanReply({ entries: [], more: false }, 'table.scan'), { entries: [], more: false });
  const bad: unknown[] = [
    { entries: [wire(), { ...wire(), s: 's'.repeat(MAX_SORT_KEY_BYTES + 1) }], more: false },
    { entries: Array.from({ length: MAX_SCAN_LIMIT + 1 }, wire), more: false },
    { entries: [wire()], more: 'yes' },
    { entries: [wire()] },
    { entries: [wire()], more: false, extra: 1 },
    { entries: wire(), more: false },
    null,
  ];
  for (const b of bad) {
    assert.equal(scanReply.safeParse(b).success, false);
    assert.throws(() => parseScanReply(b, 'table.scan'), (e: Error) => /table\.scan message does not match its schema/.test(e.message));
  }
});

const fileId = formatFileId(randomBytes(32), randomBytes(32));

test('the allocation-free file id check agrees with the parser', () => {
  const last = fileId[fileId.length - 1]!;
  const cases = [
    fileId,
    fileId.toUpperCase(),
    fileId.slice(0, -1),
    fileId + 'a',
    'x' + fileId.slice(1),
    fileId.slice(0, 10) + '1' + fileId.slice(11),
    fileId.slice(0, 10) + '\u00e9' + fileId.slice(11),
    // The last character carries stray bits unless it is one of the few canonical ones.
    ...'abcdefghijklmnopqrstuvwxyz234567'.split('').map((c) => fileId.slice(0, -1) + c),
    fileId.slice(0, -1) + last,
    '',
    'tsr1',
    'x'.repeat(FILE_ID_CHARS),
  ];
  for (const c of cases) {
    let parses = true;
    try {
      parseFileId(c);
    } catch {
      parses = false;
    }
    assert.equal(isFileId(c), parses, `file id ${JSON.stringify(c)}`);
  }
  assert.equal(isFileId(fileId), true);
  assert.equal(isFileId(7 as unknown as string), false);
});

const objectRecord = (): Record<string, unknown> => ({
  fileId,
  size: 12,
  etag: '"abc"',
  checksums: { crc32c: 'AAAA' },
  contentType: 'text/plain',
  userMeta: { colour: 'blue' },
  mtime: 1_700_000_000_000,
});
const withProto = (o: Record<string, unknown>, proto: object) => Object.assign(Object.create(proto) as Record<string, unknown>, o);

test('the quick object-record check accepts only what the schema accepts, with the same result', () => {
  const cases: unknown[] = [
    objectRecord(),
    { ...objectRecord(), checksums: {}, userMeta: {} },
    { ...objectRecord(), size: 0, mtime: 0, etag: '' },
    { ...objectRecord(), size: MAX_FILE_BYTES, mtime: MAX_CREATED_AT_MS },
    { ...objectRecord(), size: MAX_FILE_BYTES + 1 },
    { ...objectRecord(), size: -1 },
    { ...objectRecord(), size: 1.5 },
    { ...objectRecord(), size: Number.NaN },
    { ...objectRecord(), size: '12' },
    { ...objectRecord(), mtime: MAX_CREATED_AT_MS + 1 },
    { ...objectRecord(), fileId: fileId.slice(1) },
    { ...objectRecord(), fileId: 5 },
    { ...objectRecord(), etag: 'e'.repeat(MAX_ETAG_CHARS) },
    { ...objectRecord(), etag: 'e'.repeat(MAX_ETAG_CHARS + 1) },
    { ...objectRecord(), contentType: 'c'.repeat(MAX_CONTENT_TYPE_CHARS + 1) },
    { ...objectRecord(), checksums: { a: 'x', b: 'x', c: 'x', d: 'x' } },
    { ...objectRecord(), checksums: Object.fromEntries(Array.from({ length: MAX_CHECKSUMS + 1 }, (_, i) => [`c${i}`, 'x'])) },
    { ...objectRecord(), checksums: { CRC: 'x' } },
    { ...objectRecord(), checksums: { crc: 'x'.repeat(MAX_CHECKSUM_CHARS + 1) } },
    { ...objectRecord(), checksums: { crc: 5 } },
    { ...objectRecord(), checksums: [] },
    { ...objectRecord(), userMeta: { 'Bad Name': 'x' } },
    { ...objectRecord(), userMeta: null },
    { ...objectRecord(), userMeta: withProto({ a: 'x' }, { b: 'y' }) },
    { ...objectRecord(), headers: { 'cache-control': 'no-cache', expires: 'never' } },
    { ...objectRecord(), headers: { 'cache-control': 'x'.repeat(MAX_STORED_HEADER_CHARS + 1) } },
    { ...objectRecord(), headers: { 'x-other': 'x' } },
    { ...objectRecord(), headers: {} },
    { ...objectRecord(), inline: randomBytes(100) },
    { ...objectRecord(), inline: new Uint8Array(MAX_INLINE_SEALED_BYTES + 1) },
    { ...objectRecord(), inline: 'bytes' },
    { ...objectRecord(), owner: { id: 'AKIA123', name: 'alice' } },
    { ...objectRecord(), owner: { id: 'AK-IA', name: 'alice' } },
    { ...objectRecord(), owner: { id: 'A'.repeat(MAX_OWNER_ID_CHARS + 1), name: 'alice' } },
    { ...objectRecord(), owner: { id: 'AKIA', name: 'n'.repeat(MAX_OWNER_NAME_CHARS + 1) } },
    { ...objectRecord(), owner: { id: 'AKIA', name: 'alice', extra: 1 } },
    { ...objectRecord(), owner: { id: 'AKIA' } },
    { ...objectRecord(), acl: 'public-read' },
    { ...objectRecord(), acl: 'private' },
    { ...objectRecord(), acl: undefined },
    { ...objectRecord(), extra: 1 },
    (() => {
      const r = objectRecord();
      delete r['mtime'];
      return r;
    })(),
    withProto(objectRecord(), { extra: 1 }),
    null,
    [objectRecord()],
    'record',
  ];
  let quickCount = 0;
  for (const c of cases) {
    const schema = objectRecordSchema.safeParse(c);
    const quick = plainObjectRecord(c);
    const what = `case ${JSON.stringify(c, (_k, v) => (v instanceof Uint8Array ? `bytes(${v.length})` : v))}`;
    // The quick check may leave a valid record to the schema, never accept an invalid one.
    if (quick !== undefined) {
      quickCount++;
      assert.equal(schema.success, true, what);
      assert.deepEqual(quick, schema.data, what);
      assert.deepEqual(Object.keys(quick), Object.keys(schema.data!), what);
    }
    if (schema.success) assert.deepEqual(checkObjectRecord(c), schema.data, what);
    else assert.throws(() => checkObjectRecord(c), /object record/, what);
  }
  // Every valid case takes the quick way but two the schema alone judges: a field present as
  // undefined, and user metadata with an inherited entry (which the schema copies in).
  assert.equal(quickCount, cases.filter((c) => objectRecordSchema.safeParse(c).success).length - 2);
});

test('versions requests and replies take the quick way when well formed and get the schema message otherwise', () => {
  const auth = randomBytes(PROOF_BYTES);
  const key = () => ({ t: 'object', p: 'bucket-id', s: 'a/key' });
  const good = { auth, keys: [key(), { t: 'bucket', p: 'p'.repeat(MAX_PARTITION_KEY_BYTES), s: 's'.repeat(MAX_SORT_KEY_BYTES) }] };
  assert.deepEqual(parseVersionsRequest(good, 'table.versions'), versionsRequest.parse(good));
  const badRequests: unknown[] = [
    { auth, keys: [] },
    { auth, keys: Array.from({ length: MAX_VERSION_KEYS + 1 }, key) },
    { auth: randomBytes(PROOF_BYTES - 1), keys: [key()] },
    { auth, keys: [{ ...key(), t: 'Object' }] },
    { auth, keys: [{ ...key(), p: 'p'.repeat(MAX_PARTITION_KEY_BYTES + 1) }] },
    { auth, keys: [{ ...key(), s: 's'.repeat(MAX_SORT_KEY_BYTES + 1) }] },
    { auth, keys: [{ ...key(), extra: 1 }] },
    { auth, keys: [{ t: 'object', p: 'x' }] },
    { auth, keys: [key()], extra: 1 },
    { auth, keys: [null] },
    [auth],
  ];
  for (const b of badRequests) {
    assert.equal(versionsRequest.safeParse(b).success, false);
    assert.throws(() => parseVersionsRequest(b, 'table.versions'), /table\.versions message does not match its schema/);
  }
  const reply = { m: [randomBytes(ENTRY_MAC_BYTES), null] };
  assert.deepEqual(parseVersionsReply(reply, 'table.versions'), versionsReply.parse(reply));
  assert.deepEqual(parseVersionsReply({ m: [] }, 'table.versions'), { m: [] });
  const badReplies: unknown[] = [
    { m: [randomBytes(ENTRY_MAC_BYTES - 1)] },
    { m: ['x'.repeat(ENTRY_MAC_BYTES)] },
    { m: Array.from({ length: MAX_VERSION_KEYS + 1 }, () => null) },
    { m: [null], extra: 1 },
    { m: null },
    {},
  ];
  for (const b of badReplies) {
    assert.equal(versionsReply.safeParse(b).success, false);
    assert.throws(() => parseVersionsReply(b, 'table.versions'), /table\.versions message does not match its schema/);
  }
});
