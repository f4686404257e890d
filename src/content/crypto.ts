/**
 * Convergent chunk encryption and the key hierarchy derived from a cluster's data key.
 *
 * A chunk's key is HMAC(convergence secret, SHA-256(plaintext)), so equal plaintexts encrypt to
 * equal ciphertexts inside one cluster (deduplication) while nodes without the secret learn
 * nothing they could confirm by guessing. Because every key encrypts exactly one plaintext, the
 * GCM nonce can be derived from the key without ever repeating a (key, nonce) pair.
 */
import { createCipheriv, createDecipheriv, createHash, createHmac, hkdfSync, timingSafeEqual } from 'node:crypto';
import { CHUNK_ID_BYTES, MAX_CHUNK_BYTES } from '../limits.js';
import { TesseraError, badInput, corrupt, tooLarge } from '../errors.js';
import { nativeGcm } from './native-gcm.js';

export const KEY_BYTES = 32;
export const GCM_TAG_BYTES = 16;
export const GCM_NONCE_BYTES = 12;
/** Largest plaintext one chunk may hold: the ciphertext plus its tag must fit MAX_CHUNK_BYTES. */
export const MAX_PLAIN_CHUNK_BYTES = MAX_CHUNK_BYTES - GCM_TAG_BYTES;
/** Smallest data key accepted: anything shorter cannot carry 256 bits of entropy. */
export const MIN_DATA_KEY_BYTES = 32;
/** Largest data key accepted; HKDF takes any length but a key file is never this large. */
export const MAX_DATA_KEY_BYTES = 1024;
/**
 * cipher.update() allocates a fresh output buffer per call; above glibc's mmap threshold each one
 * costs fresh pages (DESIGN §9). Feeding the cipher in slices below the threshold keeps those
 * allocations on the reused heap, and copying them into one output buffer is far cheaper.
 */
const GCM_SLICE_BYTES = 64 << 10;

const NONCE_LABEL = Buffer.from('tessera/v1/chunk-nonce', 'utf8');

export interface EncryptedChunk {
  /** SHA-256 of `data`: the chunk's address. */
  readonly id: Buffer;
  /** The chunk's AES-256-GCM key; whoever holds it can read the chunk. */
  readonly key: Buffer;
  /** Ciphertext ‖ 16-byte GCM tag: the bytes a node stores. */
  readonly data: Buffer;
}

/** The secrets derived from a cluster's data key, one per purpose so none is ever reused. */
export interface ClusterKeys {
  /** Keys data chunks by their plaintext hash. */
  readonly convergenceSecret: Buffer;
  /** Keys manifest pages; distinct so a manifest page never shares a key with a data chunk. */
  readonly manifestSecret: Buffer;
  /** Turns a file name into the lookup key nodes see instead of the name. */
  readonly nameKey: Buffer;
  /** Encrypts name records. */
  readonly nameSealKey: Buffer;
  /** Authenticates metadata table entries and full-node proofs: a storage-only node cannot make these MACs. */
  readonly tableMacKey: Buffer;
  /** Page-encrypts the metadata table database on disk. */
  readonly tableDiskKey: Buffer;
}

const KEY_LABELS: Record<keyof ClusterKeys, string> = {
  convergenceSecret: 'tessera/v1/convergence',
  manifestSecret: 'tessera/v1/manifest',
  nameKey: 'tessera/v1/name-lookup',
  nameSealKey: 'tessera/v1/name-seal',
  tableMacKey: 'tessera/v1/table-mac',
  tableDiskKey: 'tessera/v1/table-disk',
};

const HKDF_SALT = Buffer.from('tessera/v1/hkdf-salt', 'utf8');

export function deriveClusterKeys(dataKey: Uint8Array): ClusterKeys {
  if (dataKey.length < MIN_DATA_KEY_BYTES || dataKey.length > MAX_DATA_KEY_BYTES) {
    throw badInput(
      `data key is ${dataKey.length} bytes; it must be ${MIN_DATA_KEY_BYTES}..${MAX_DATA_KEY_BYTES} bytes (run 'tessera init' to make one)`,
    );
  }
  const derive = (label: string) => Buffer.from(hkdfSync('sha256', dataKey, HKDF_SALT, label, KEY_BYTES));
  return {
    convergenceSecret: derive(KEY_LABELS.convergenceSecret),
    manifestSecret: derive(KEY_LABELS.manifestSecret),
    nameKey: derive(KEY_LABELS.nameKey),
    nameSealKey: derive(KEY_LABELS.nameSealKey),
    tableMacKey: derive(KEY_LABELS.tableMacKey),
    tableDiskKey: derive(KEY_LABELS.tableDiskKey),
  };
}

export function sha256(data: Uint8Array): Buffer {
  return createHash('sha256').update(data).digest();
}

/** The id a chunk is stored under: SHA-256 of its stored (encrypted) bytes. */
export const chunkIdOf = sha256;

export function convergentKey(plain: Uint8Array, secret: Uint8Array): Buffer {
  checkKey(secret, 'convergence secret');
  return createHmac('sha256', secret).update(sha256(plain)).digest();
}

function nonceFor(key: Uint8Array): Buffer {
  return createHmac('sha256', key).update(NONCE_LABEL).digest().subarray(0, GCM_NONCE_BYTES);
}

function checkKey(key: Uint8Array, what: string): void {
  if (key.length !== KEY_BYTES) throw badInput(`${what} is ${key.length} bytes; it must be ${KEY_BYTES}`);
}

/** Bytes `encryptChunk` writes for a plaintext of `plainBytes`. */
export function encryptedSize(plainBytes: number): number {
  return plainBytes + GCM_TAG_BYTES;
}

/**
 * Encrypts one chunk under a key that must never encrypt any other plaintext (the nonce derives
 * from it). `out`, when given, receives the result so hot loops can reuse one buffer; the
 * returned `data` then aliases it.
 */
export function encryptWithKey(plain: Uint8Array, key: Uint8Array, out?: Buffer): { id: Buffer; data: Buffer } {
  checkKey(key, 'chunk key');
  if (plain.length > MAX_PLAIN_CHUNK_BYTES) {
    throw tooLarge(`chunk plaintext is ${plain.length} bytes; the limit is ${MAX_PLAIN_CHUNK_BYTES}`);
  }
  const size = encryptedSize(plain.length);
  if (out !== undefined && out.length < size) {
    throw badInput(`output buffer holds ${out.length} bytes; encrypting needs ${size}`);
  }
  const data = out === undefined ? Buffer.allocUnsafeSlow(size) : out.subarray(0, size);
  const native = nativeGcm();
  if (native !== undefined) {
    native.gcmSeal(key, nonceFor(key), plain, data);
    return { id: chunkIdOf(data), data };
  }
  const cipher = createCipheriv('aes-256-gcm', key, nonceFor(key), { authTagLength: GCM_TAG_BYTES });
  let written = 0;
  for (let at = 0; at < plain.length; at += GCM_SLICE_BYTES) {
    const part = cipher.update(plain.subarray(at, Math.min(at + GCM_SLICE_BYTES, plain.length)));
    written += part.copy(data, written);
  }
  written += cipher.final().copy(data, written);
  cipher.getAuthTag().copy(data, written);
  return { id: chunkIdOf(data), data };
}

/** Convergent encryption of one chunk: same plaintext and secret ⇒ same id, key and bytes. */
export function encryptChunk(plain: Uint8Array, secret: Uint8Array, out?: Buffer): EncryptedChunk {
  const key = convergentKey(plain, secret);
  const { id, data } = encryptWithKey(plain, key, out);
  return { id, key, data };
}

function authFailed(cause?: unknown): TesseraError {
  return new TesseraError('CORRUPT', 'chunk failed authentication: its ciphertext or tag was altered, or the key is wrong', undefined, cause !== undefined ? { cause } : undefined);
}

/**
 * Verifies the id (when given) and then the GCM tag, and returns the plaintext. Any mismatch is
 * CORRUPT: the bytes are not what was stored, or the key is not theirs.
 */
export function decryptChunk(data: Uint8Array, key: Uint8Array, expectedId?: Uint8Array, out?: Buffer): Buffer {
  checkKey(key, 'chunk key');
  if (data.length > MAX_CHUNK_BYTES) throw tooLarge(`chunk is ${data.length} bytes; the limit is ${MAX_CHUNK_BYTES}`);
  if (data.length < GCM_TAG_BYTES) {
    throw corrupt(`chunk is ${data.length} bytes, shorter than its ${GCM_TAG_BYTES}-byte authentication tag`);
  }
  if (expectedId !== undefined) {
    if (expectedId.length !== CHUNK_ID_BYTES) throw badInput(`chunk id is ${expectedId.length} bytes; it must be ${CHUNK_ID_BYTES}`);
    const actual = chunkIdOf(data);
    if (!timingSafeEqual(actual, expectedId)) {
      throw corrupt(`chunk bytes hash to ${actual.toString('hex')}, not their id ${Buffer.from(expectedId).toString('hex')}`);
    }
  }
  const plainBytes = data.length - GCM_TAG_BYTES;
  if (out !== undefined && out.length < plainBytes) {
    throw badInput(`output buffer holds ${out.length} bytes; decrypting needs ${plainBytes}`);
  }
  const plain = out === undefined ? Buffer.allocUnsafeSlow(plainBytes) : out.subarray(0, plainBytes);
  const native = nativeGcm();
  if (native !== undefined) {
    // The addon zeroes what it decrypted when the tag does not verify.
    if (!native.gcmOpen(key, nonceFor(key), data, plain)) throw authFailed();
    return plain;
  }
  const decipher = createDecipheriv('aes-256-gcm', key, nonceFor(key), { authTagLength: GCM_TAG_BYTES });
  decipher.setAuthTag(data.subarray(plainBytes));
  let written = 0;
  for (let at = 0; at < plainBytes; at += GCM_SLICE_BYTES) {
    const part = decipher.update(data.subarray(at, Math.min(at + GCM_SLICE_BYTES, plainBytes)));
    written += part.copy(plain, written);
  }
  try {
    decipher.final().copy(plain, written);
  } catch (cause) {
    // Zero what was decrypted: unauthenticated plaintext must never be mistaken for data.
    plain.fill(0);
    throw authFailed(cause);
  }
  return plain;
}
