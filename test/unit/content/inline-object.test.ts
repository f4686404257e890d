/**
 * Inline object sealing and its bounds: what a sealed object costs in an entry, that the largest
 * record with the largest inline object still fits a table value, and that altered or misfiled
 * bytes are refused.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import {
  deriveClusterKeys, encryptChunk, INLINE_FILE_ID, INLINE_SEAL_OVERHEAD_BYTES, isFileId, MAX_INLINE_OBJECT_BYTES, MAX_INLINE_SEALED_BYTES, openInlineObject, sealInlineObject,
} from '../../../src/content/index.js';
import { MAX_VALUE_BYTES } from '../../../src/tables/entry.js';
import {
  checkObjectRecord, decodeRecord, encodeRecord, MAX_CHECKSUM_CHARS, MAX_CHECKSUMS, MAX_CONTENT_TYPE_CHARS, MAX_ETAG_CHARS, MAX_STORED_HEADER_CHARS, MAX_USER_METADATA_BYTES,
  STORED_HEADER_NAMES, type ObjectRecord,
} from '../../../src/tables/records.js';
import { isTesseraError } from '../../../src/errors.js';

const secret = deriveClusterKeys(randomBytes(32)).convergenceSecret;

test('sealing is the one-chunk file encryption: chunk key in front, ciphertext and tag behind', () => {
  const plain = randomBytes(1000);
  const sealed = sealInlineObject(plain, secret);
  assert.equal(sealed.length, plain.length + INLINE_SEAL_OVERHEAD_BYTES);
  const chunk = encryptChunk(plain, secret);
  assert.ok(sealed.subarray(0, 32).equals(chunk.key));
  assert.ok(sealed.subarray(32).equals(chunk.data));
  assert.equal(sealed.indexOf(plain.subarray(0, 32)), -1, 'no plaintext in the sealed bytes');
  assert.ok(openInlineObject(sealed, plain.length).equals(plain));
  assert.equal(openInlineObject(sealInlineObject(Buffer.alloc(0), secret), 0).length, 0);
});

test('bounds: the largest inline object seals, one byte more is TOO_LARGE', () => {
  const max = randomBytes(MAX_INLINE_OBJECT_BYTES);
  assert.equal(sealInlineObject(max, secret).length, MAX_INLINE_SEALED_BYTES);
  assert.throws(() => sealInlineObject(randomBytes(MAX_INLINE_OBJECT_BYTES + 1), secret), (e) => isTesseraError(e, 'TOO_LARGE'));
});

test('altered, truncated, misfiled or foreign sealed bytes are CORRUPT', () => {
  const plain = randomBytes(4096);
  const sealed = sealInlineObject(plain, secret);
  const flipped = Buffer.from(sealed);
  flipped[100]! ^= 1;
  assert.throws(() => openInlineObject(flipped, plain.length), (e) => isTesseraError(e, 'CORRUPT'));
  assert.throws(() => openInlineObject(sealed, plain.length + 1), (e) => isTesseraError(e, 'CORRUPT'));
  assert.throws(() => openInlineObject(sealed.subarray(0, 20), 0), (e) => isTesseraError(e, 'CORRUPT'));
  assert.throws(() => openInlineObject(Buffer.alloc(MAX_INLINE_SEALED_BYTES + 1), MAX_INLINE_OBJECT_BYTES + 1), (e) => isTesseraError(e, 'CORRUPT'));
  const other = sealInlineObject(plain, deriveClusterKeys(randomBytes(32)).convergenceSecret);
  // The key travels with the bytes, so a foreign entry opens only if it is whole; swapping in another key fails.
  const mixed = Buffer.concat([sealed.subarray(0, 32), other.subarray(32)]);
  assert.throws(() => openInlineObject(mixed, plain.length), (e) => isTesseraError(e, 'CORRUPT'));
});

test('the largest object record with the largest inline object fits one table value', () => {
  assert.ok(isFileId(INLINE_FILE_ID));
  const userMeta: Record<string, string> = {};
  // Many short pairs cost the most CBOR framing for the 2 KiB user-metadata budget.
  for (let i = 0; userMetaBytesOf(userMeta) + 6 <= MAX_USER_METADATA_BYTES; i++) userMeta[`m${String(i).padStart(3, '0')}`] = 'vv';
  const headers = Object.fromEntries(STORED_HEADER_NAMES.map((n) => [n, 'h'.repeat(MAX_STORED_HEADER_CHARS)]));
  const checksums = Object.fromEntries(Array.from({ length: MAX_CHECKSUMS }, (_, i) => [`sum${i}`.padEnd(16, 'x'), 'c'.repeat(MAX_CHECKSUM_CHARS)]));
  const record: ObjectRecord = {
    fileId: INLINE_FILE_ID, size: MAX_INLINE_OBJECT_BYTES, etag: 'e'.repeat(MAX_ETAG_CHARS), checksums, contentType: 't'.repeat(MAX_CONTENT_TYPE_CHARS),
    userMeta, mtime: Date.now(), headers, inline: sealInlineObject(randomBytes(MAX_INLINE_OBJECT_BYTES), secret),
  };
  const bytes = encodeRecord(checkObjectRecord(record));
  assert.ok(bytes.length > MAX_INLINE_SEALED_BYTES + 6000, `the record is not the largest: ${bytes.length} bytes`);
  assert.ok(bytes.length <= MAX_VALUE_BYTES, `largest record is ${bytes.length} bytes, over the ${MAX_VALUE_BYTES}-byte value limit`);
  const back = decodeRecord(bytes, checkObjectRecord, 'record');
  assert.ok(Buffer.from(back.inline!).equals(Buffer.from(record.inline!)));
  assert.equal(openInlineObject(back.inline!, back.size).length, MAX_INLINE_OBJECT_BYTES);
});

test('records: inline data over the bound is refused; records written before inline objects still decode', () => {
  const base = { fileId: INLINE_FILE_ID, size: 0, etag: '', checksums: {}, contentType: 'x', userMeta: {}, mtime: 1 };
  assert.throws(() => checkObjectRecord({ ...base, inline: Buffer.alloc(MAX_INLINE_SEALED_BYTES + 1) }), (e) => isTesseraError(e, 'BAD_INPUT'));
  assert.throws(() => checkObjectRecord({ ...base, inline: 'not bytes' }), (e) => isTesseraError(e, 'BAD_INPUT'));
  const old = decodeRecord(encodeRecord(base), checkObjectRecord, 'record');
  assert.equal(old.inline, undefined);
});

function userMetaBytesOf(m: Record<string, string>): number {
  return Object.entries(m).reduce((n, [k, v]) => n + k.length + v.length, 0);
}
