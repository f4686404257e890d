/**
 * Text forms of ids. A file id is a capability: it names the manifest's root chunk and carries
 * the key that decrypts it, so whoever holds the string can read the file and nothing else.
 * Lower-case base32 keeps it safe in URLs, shells, file names and case-insensitive places.
 */
import { CHUNK_ID_BYTES } from '../limits.js';
import { badInput } from '../errors.js';
import { KEY_BYTES } from './crypto.js';

export const FILE_ID_PREFIX = 'tsr1';
const FILE_ID_PAYLOAD_BYTES = CHUNK_ID_BYTES + KEY_BYTES;
const BASE32_ALPHABET = 'abcdefghijklmnopqrstuvwxyz234567';
const FILE_ID_BASE32_CHARS = Math.ceil((FILE_ID_PAYLOAD_BYTES * 8) / 5);
/** Length of every file id string. */
export const FILE_ID_CHARS = FILE_ID_PREFIX.length + FILE_ID_BASE32_CHARS;
const CHUNK_ID_HEX_CHARS = CHUNK_ID_BYTES * 2;

const BASE32_VALUE = new Int8Array(128).fill(-1);
for (let i = 0; i < BASE32_ALPHABET.length; i++) {
  BASE32_VALUE[BASE32_ALPHABET.charCodeAt(i)] = i;
  BASE32_VALUE[BASE32_ALPHABET.toUpperCase().charCodeAt(i)] = i;
}

export interface FileId {
  /** Id of the manifest's root chunk. */
  readonly rootId: Buffer;
  /** Key that decrypts the manifest's root chunk. */
  readonly rootKey: Buffer;
}

function base32Encode(bytes: Uint8Array): string {
  let out = '';
  let acc = 0;
  let bits = 0;
  for (const byte of bytes) {
    acc = ((acc << 8) | byte) & 0xffff;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      out += BASE32_ALPHABET[(acc >> bits) & 31];
    }
  }
  if (bits > 0) out += BASE32_ALPHABET[(acc << (5 - bits)) & 31];
  return out;
}

export function formatFileId(rootId: Uint8Array, rootKey: Uint8Array): string {
  if (rootId.length !== CHUNK_ID_BYTES) throw badInput(`manifest root id is ${rootId.length} bytes; it must be ${CHUNK_ID_BYTES}`);
  if (rootKey.length !== KEY_BYTES) throw badInput(`manifest key is ${rootKey.length} bytes; it must be ${KEY_BYTES}`);
  const payload = Buffer.concat([rootId, rootKey]);
  return FILE_ID_PREFIX + base32Encode(payload);
}

/** Parses a file id, accepting either letter case; rejects anything else with BAD_INPUT naming the fault. */
export function parseFileId(text: string): FileId {
  if (typeof text !== 'string') throw badInput('file id must be a string');
  if (text.length !== FILE_ID_CHARS) {
    throw badInput(`file id is ${text.length} characters; a file id is ${FILE_ID_CHARS} characters starting with '${FILE_ID_PREFIX}'`);
  }
  if (text.slice(0, FILE_ID_PREFIX.length).toLowerCase() !== FILE_ID_PREFIX) {
    throw badInput(`file id must start with '${FILE_ID_PREFIX}'`);
  }
  const payload = Buffer.alloc(FILE_ID_PAYLOAD_BYTES);
  let acc = 0;
  let bits = 0;
  let n = 0;
  for (let i = FILE_ID_PREFIX.length; i < text.length; i++) {
    const code = text.charCodeAt(i);
    const value = code < 128 ? (BASE32_VALUE[code] ?? -1) : -1;
    if (value < 0) {
      throw badInput(`file id has a bad character at position ${i}: only a-z and 2-7 are allowed after '${FILE_ID_PREFIX}'`);
    }
    acc = ((acc << 5) | value) & 0xffff;
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      payload[n++] = (acc >> bits) & 0xff;
    }
  }
  // Leftover bits must be zero so every file has exactly one id string.
  if ((acc & ((1 << bits) - 1)) !== 0) throw badInput('file id is not canonical: its last character carries stray bits');
  return { rootId: payload.subarray(0, CHUNK_ID_BYTES), rootKey: payload.subarray(CHUNK_ID_BYTES) };
}

/**
 * What parseFileId accepts, without building the payload or an error: every object record read
 * checks its file id, a thousand to a listing page.
 */
export function isFileId(text: string): boolean {
  if (typeof text !== 'string' || text.length !== FILE_ID_CHARS) return false;
  if (text.slice(0, FILE_ID_PREFIX.length).toLowerCase() !== FILE_ID_PREFIX) return false;
  let acc = 0;
  let bits = 0;
  for (let i = FILE_ID_PREFIX.length; i < text.length; i++) {
    const code = text.charCodeAt(i);
    const value = code < 128 ? (BASE32_VALUE[code] ?? -1) : -1;
    if (value < 0) return false;
    acc = ((acc << 5) | value) & 0xffff;
    bits += 5;
    if (bits >= 8) bits -= 8;
  }
  return (acc & ((1 << bits) - 1)) === 0;
}

export function chunkIdToHex(id: Uint8Array): string {
  if (id.length !== CHUNK_ID_BYTES) throw badInput(`chunk id is ${id.length} bytes; it must be ${CHUNK_ID_BYTES}`);
  return Buffer.from(id.buffer, id.byteOffset, id.byteLength).toString('hex');
}

const HEX_RE = /^[0-9a-f]*$/;

/** Parses a lower-case hex chunk id, as written by chunkIdToHex. */
export function chunkIdFromHex(hex: string): Buffer {
  if (typeof hex !== 'string') throw badInput('chunk id must be a string');
  if (hex.length !== CHUNK_ID_HEX_CHARS) throw badInput(`chunk id is ${hex.length} characters; it must be ${CHUNK_ID_HEX_CHARS} hex digits`);
  if (!HEX_RE.test(hex)) throw badInput('chunk id has a character other than 0-9 and a-f');
  return Buffer.from(hex, 'hex');
}
