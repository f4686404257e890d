import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { isTesseraError } from '../../../src/errors.js';
import { deriveClusterKeys } from '../../../src/content/crypto.js';
import { formatFileId } from '../../../src/content/ids.js';
import {
  MAX_NAME_BYTES,
  checkName,
  checkSealedNameRecord,
  nameFromBytes,
  nameLookupKey,
  newerNameRecord,
  openNameRecord,
  sealNameRecord,
  type NameRecord,
} from '../../../src/content/names.js';

const keys = deriveClusterKeys(randomBytes(32));
const fileId = formatFileId(randomBytes(32), randomBytes(32));
const record: NameRecord = { name: 'photos/2024/ünïcode 📷.jpg', fileId, size: 12345, createdAt: 1_700_000_000_000, policy: { kind: 'replicas', r: 3, w: 2 } };
const hlc = { wall: 1_700_000_000_000, logical: 0, node: 'node-a' };
const badInput = (re: RegExp) => (e: unknown) => isTesseraError(e, 'BAD_INPUT') && re.test((e as Error).message);

test('a sealed record opens to the same record and never contains the name or file id in clear', () => {
  const sealed = sealNameRecord(keys, record, hlc);
  assert.deepEqual(openNameRecord(keys, sealed), record);
  assert.deepEqual(sealed.key, nameLookupKey(keys.nameKey, record.name));
  assert.equal(sealed.box.includes(Buffer.from('photos')), false);
  assert.equal(sealed.box.includes(Buffer.from(fileId.slice(4, 20))), false);
  const tomb = sealNameRecord(keys, { ...record, deleted: true }, { ...hlc, logical: 1 });
  assert.equal(openNameRecord(keys, tomb).deleted, true);
});

test('lookup keys depend on the name and the cluster key only; NFC and NFD forms agree', () => {
  assert.deepEqual(nameLookupKey(keys.nameKey, 'a'), nameLookupKey(keys.nameKey, 'a'));
  assert.notDeepEqual(nameLookupKey(keys.nameKey, 'a'), nameLookupKey(keys.nameKey, 'b'));
  assert.notDeepEqual(nameLookupKey(keys.nameKey, 'a'), nameLookupKey(deriveClusterKeys(randomBytes(32)).nameKey, 'a'));
  assert.deepEqual(nameLookupKey(keys.nameKey, 'e\u0301'), nameLookupKey(keys.nameKey, '\u00e9'));
});

test('tampering with the box, re-dating, or moving a record to another name is CORRUPT', () => {
  const sealed = sealNameRecord(keys, record, hlc);
  for (const pos of [0, 20, sealed.box.length - 1]) {
    const box = Buffer.from(sealed.box);
    box[pos] = (box[pos] ?? 0) ^ 1;
    assert.throws(() => openNameRecord(keys, { ...sealed, box }), (e) => isTesseraError(e, 'CORRUPT'));
  }
  assert.throws(() => openNameRecord(keys, { ...sealed, hlc: { ...hlc, wall: hlc.wall + 1 } }), (e) => isTesseraError(e, 'CORRUPT'));
  assert.throws(() => openNameRecord(keys, { ...sealed, key: nameLookupKey(keys.nameKey, 'other') }), (e) => isTesseraError(e, 'CORRUPT'));
  assert.throws(() => openNameRecord(deriveClusterKeys(randomBytes(32)), sealed), (e) => isTesseraError(e, 'CORRUPT'));
});

test('last writer wins by clock, deterministically on ties, without any key', () => {
  const older = sealNameRecord(keys, record, hlc);
  const newer = sealNameRecord(keys, { ...record, deleted: true }, { ...hlc, logical: 1 });
  assert.equal(newerNameRecord(older, newer), newer);
  assert.equal(newerNameRecord(newer, older), newer);
  const twin = sealNameRecord(keys, record, hlc);
  assert.equal(newerNameRecord(older, twin), newerNameRecord(twin, older));
  const other = sealNameRecord(keys, { ...record, name: 'x' }, hlc);
  assert.throws(() => newerNameRecord(older, other), badInput(/different keys/));
});

test('names are validated: empty, too long, NUL, control, bad UTF-8, lone surrogates, file-id look-alikes', () => {
  assert.throws(() => checkName(''), badInput(/empty/));
  assert.equal(checkName('a'.repeat(MAX_NAME_BYTES)).length, MAX_NAME_BYTES);
  assert.throws(() => checkName('a'.repeat(MAX_NAME_BYTES + 1)), badInput(/limit is 1024/));
  assert.throws(() => checkName('é'.repeat(MAX_NAME_BYTES / 2 + 1)), badInput(/bytes of UTF-8/));
  assert.throws(() => checkName('a\u0000b'), badInput(/NUL/));
  assert.throws(() => checkName('a\nb'), badInput(/control/));
  assert.throws(() => checkName('a\ud800b'), badInput(/surrogate/));
  assert.throws(() => checkName('\udc00'), badInput(/surrogate/));
  assert.equal(checkName('😀'), '😀');
  assert.throws(() => checkName(fileId), badInput(/looks like a file id/));
  assert.equal(nameFromBytes(Buffer.from('héllo', 'utf8')), 'héllo');
  assert.throws(() => nameFromBytes(Buffer.from([0x68, 0xc3])), badInput(/UTF-8/));
  assert.throws(() => nameFromBytes(Buffer.from([0xed, 0xa0, 0x80])), badInput(/UTF-8/));
  assert.throws(() => sealNameRecord(keys, { ...record, fileId: 'tsr1nope' }, hlc), badInput(/fileId/));
  assert.throws(() => sealNameRecord(keys, { ...record, size: -1 }, hlc), badInput(/size/));
  assert.throws(() => sealNameRecord(keys, record, { ...hlc, logical: -1 }), badInput(/timestamp/));
});

test('untrusted sealed records are bounded before anything else happens', () => {
  const sealed = sealNameRecord(keys, record, hlc);
  assert.throws(() => checkSealedNameRecord({ ...sealed, key: Buffer.alloc(31) }), badInput(/lookup key/));
  assert.throws(() => checkSealedNameRecord({ ...sealed, box: Buffer.alloc(5000) }), (e) => isTesseraError(e, 'TOO_LARGE'));
  assert.throws(() => checkSealedNameRecord({ ...sealed, box: Buffer.alloc(10) }), badInput(/too short/));
  assert.throws(() => checkSealedNameRecord({ ...sealed, hlc: { wall: 'x' } }), badInput(/timestamp/));
  assert.throws(() => checkSealedNameRecord({ ...sealed, box: 'text' }), badInput(/bytes/));
});
