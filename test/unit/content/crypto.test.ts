import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { isTesseraError } from '../../../src/errors.js';
import { MAX_CHUNK_BYTES } from '../../../src/limits.js';
import {
  GCM_TAG_BYTES,
  KEY_BYTES,
  MAX_PLAIN_CHUNK_BYTES,
  chunkIdOf,
  decryptChunk,
  deriveClusterKeys,
  encryptChunk,
  encryptWithKey,
  sha256,
} from '../../../src/content/crypto.js';

const secret = randomBytes(KEY_BYTES);
const isCode = (code: string) => (e: unknown) => isTesseraError(e) && e.code === code;

test('round trip at several sizes, including empty and across the slice boundary', () => {
  for (const size of [0, 1, 15, 16, 65535, 65536, 65537, 1 << 20, (1 << 20) + 3]) {
    const plain = randomBytes(size);
    const { id, key, data } = encryptChunk(plain, secret);
    assert.equal(data.length, size + GCM_TAG_BYTES);
    assert.deepEqual(id, sha256(data));
    assert.equal(key.length, KEY_BYTES);
    if (size >= 16) assert.notDeepEqual(data.subarray(0, 16), plain.subarray(0, 16));
    assert.deepEqual(decryptChunk(data, key, id), plain);
  }
});

test('same plaintext and secret give the same id, key and bytes (dedup)', () => {
  const plain = randomBytes(100_000);
  const a = encryptChunk(plain, secret);
  const b = encryptChunk(Buffer.from(plain), secret);
  assert.deepEqual(a.id, b.id);
  assert.deepEqual(a.key, b.key);
  assert.deepEqual(a.data, b.data);
});

test('a different secret or a different plaintext gives a different id and key', () => {
  const plain = randomBytes(4096);
  const a = encryptChunk(plain, secret);
  const b = encryptChunk(plain, randomBytes(KEY_BYTES));
  assert.notDeepEqual(a.id, b.id);
  assert.notDeepEqual(a.key, b.key);
  const changed = Buffer.from(plain);
  changed[0] = (changed[0] ?? 0) ^ 1;
  assert.notDeepEqual(encryptChunk(changed, secret).id, a.id);
});

test('a caller-provided output buffer is used and the result still decrypts', () => {
  const plain = randomBytes(200_000);
  const out = Buffer.alloc(300_000);
  const enc = encryptChunk(plain, secret, out);
  assert.equal(enc.data.buffer, out.buffer);
  assert.deepEqual(enc.data, encryptChunk(plain, secret).data);
  const back = Buffer.alloc(250_000);
  const plainBack = decryptChunk(enc.data, enc.key, enc.id, back);
  assert.equal(plainBack.buffer, back.buffer);
  assert.deepEqual(plainBack, plain);
  assert.throws(() => encryptChunk(plain, secret, Buffer.alloc(10)), isCode('BAD_INPUT'));
});

test('flipping any bit of ciphertext or tag is CORRUPT, with and without the id check', () => {
  const plain = randomBytes(70_000);
  const { id, key, data } = encryptChunk(plain, secret);
  for (const pos of [0, 1000, 65536, data.length - GCM_TAG_BYTES - 1, data.length - GCM_TAG_BYTES, data.length - 1]) {
    const bad = Buffer.from(data);
    bad[pos] = (bad[pos] ?? 0) ^ 0x10;
    assert.throws(() => decryptChunk(bad, key, id), (e) => isCode('CORRUPT')(e) && /hash/.test((e as Error).message));
    assert.throws(() => decryptChunk(bad, key), (e) => isCode('CORRUPT')(e) && /authentication/.test((e as Error).message));
  }
  assert.throws(() => decryptChunk(data, randomBytes(KEY_BYTES), id), isCode('CORRUPT'));
  assert.throws(() => decryptChunk(data.subarray(0, 5), key), isCode('CORRUPT'));
});

test('limits: plaintext over the chunk limit, bad key and id lengths', () => {
  assert.throws(() => encryptWithKey(Buffer.alloc(MAX_PLAIN_CHUNK_BYTES + 1), randomBytes(KEY_BYTES)), isCode('TOO_LARGE'));
  assert.throws(() => decryptChunk(Buffer.alloc(MAX_CHUNK_BYTES + 1), randomBytes(KEY_BYTES)), isCode('TOO_LARGE'));
  assert.throws(() => encryptChunk(Buffer.alloc(10), Buffer.alloc(31)), isCode('BAD_INPUT'));
  const { key, data } = encryptChunk(Buffer.alloc(10), secret);
  assert.throws(() => decryptChunk(data, key.subarray(1)), isCode('BAD_INPUT'));
  assert.throws(() => decryptChunk(data, key, Buffer.alloc(31)), isCode('BAD_INPUT'));
  const max = encryptWithKey(Buffer.alloc(MAX_PLAIN_CHUNK_BYTES, 7), randomBytes(KEY_BYTES));
  assert.equal(max.data.length, MAX_CHUNK_BYTES);
  assert.deepEqual(chunkIdOf(max.data), max.id);
});

test('cluster keys: deterministic per data key, distinct per purpose and per data key', () => {
  const dataKey = randomBytes(32);
  const a = deriveClusterKeys(dataKey);
  const b = deriveClusterKeys(Buffer.from(dataKey));
  const c = deriveClusterKeys(randomBytes(32));
  assert.deepEqual(a, b);
  const values = Object.values(a).map((k) => k.toString('hex'));
  assert.equal(new Set(values).size, values.length);
  for (const k of Object.values(a)) assert.equal(k.length, KEY_BYTES);
  assert.notDeepEqual(a.convergenceSecret, c.convergenceSecret);
  assert.throws(() => deriveClusterKeys(Buffer.alloc(16)), isCode('BAD_INPUT'));
  assert.throws(() => deriveClusterKeys(Buffer.alloc(2000)), isCode('BAD_INPUT'));
});
