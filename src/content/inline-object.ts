/**
 * Small objects kept inside their object-table entry instead of as a file: the plaintext is
 * sealed exactly as a one-chunk file's data chunk is (convergent AES-256-GCM under the cluster's
 * convergence secret, crypto.ts), and the entry holds the chunk key beside the ciphertext, as a
 * file id holds its manifest key. Pure functions, no I/O.
 *
 * Layout of the sealed bytes: chunk key (32) ‖ ciphertext ‖ GCM tag (16).
 */
import { corrupt, tooLarge } from '../errors.js';
import { decryptChunk, encryptChunk, GCM_TAG_BYTES, KEY_BYTES } from './crypto.js';
import { formatFileId } from './ids.js';

/**
 * Largest object stored inline. A table value is at most 16 KiB (tables/entry.ts) and the rest
 * of an object record may take about 7.3 KiB at worst (2 KiB of user metadata, four stored
 * headers of 1 KiB, content type, ETag, checksums, file id); 8 KiB of sealed data fits beside
 * that with room to spare (a test builds the largest record). Above this a put is a file.
 */
export const MAX_INLINE_OBJECT_BYTES = 8 << 10;
/** What sealing adds: the chunk key in front, the GCM tag behind. */
export const INLINE_SEAL_OVERHEAD_BYTES = KEY_BYTES + GCM_TAG_BYTES;
export const MAX_INLINE_SEALED_BYTES = MAX_INLINE_OBJECT_BYTES + INLINE_SEAL_OVERHEAD_BYTES;
/**
 * The file id an inline object's record carries: no file has it (a root id of zeros is no
 * chunk's SHA-256), so code that would follow it to a file must look at `inline` first.
 */
export const INLINE_FILE_ID = formatFileId(Buffer.alloc(32), Buffer.alloc(32));

/** Seals an object's bytes for its entry; TOO_LARGE above MAX_INLINE_OBJECT_BYTES. */
export function sealInlineObject(plain: Uint8Array, convergenceSecret: Uint8Array): Buffer {
  if (plain.length > MAX_INLINE_OBJECT_BYTES) throw tooLarge(`an inline object holds at most ${MAX_INLINE_OBJECT_BYTES} bytes, got ${plain.length}; store it as a file`);
  const out = Buffer.allocUnsafe(plain.length + INLINE_SEAL_OVERHEAD_BYTES);
  const { key } = encryptChunk(plain, convergenceSecret, out.subarray(KEY_BYTES));
  key.copy(out, 0);
  return out;
}

/**
 * The plaintext of sealed inline bytes, checked against the size its record states. CORRUPT when
 * the bytes are truncated, altered, or sealed under another data key.
 */
export function openInlineObject(sealed: Uint8Array, expectedSize: number): Buffer {
  if (sealed.length < INLINE_SEAL_OVERHEAD_BYTES || sealed.length > MAX_INLINE_SEALED_BYTES) {
    throw corrupt(`inline object data is ${sealed.length} bytes; sealed data is ${INLINE_SEAL_OVERHEAD_BYTES}..${MAX_INLINE_SEALED_BYTES} bytes`);
  }
  if (sealed.length - INLINE_SEAL_OVERHEAD_BYTES !== expectedSize) {
    throw corrupt(`inline object data holds ${sealed.length - INLINE_SEAL_OVERHEAD_BYTES} bytes but its record says ${expectedSize}`);
  }
  return decryptChunk(sealed.subarray(KEY_BYTES), sealed.subarray(0, KEY_BYTES));
}
