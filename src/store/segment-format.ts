/**
 * On-disk layout of the segment engine, kept pure (no I/O) so that framing and its bounds can be
 * tested alone.
 *
 * A segment file starts with a 64-byte header (magic, sequence number, a random salt, a check),
 * then holds records back to back:
 *
 *   0  magic u32 ("TSRG")    4  kind u8, 3 zero bytes    8  data length u32
 *   12 zero u32              16 chunk id (32 bytes)      48 check (8 bytes)    56 data
 *
 * The check is SHA-256(salt || header[0..48]) truncated: it guards the framing (a torn or rotten
 * length must not send the scanner off into the middle of a chunk), and because the salt is
 * private to the segment, bytes a client stored inside a chunk cannot pass for a record header
 * when the scanner resynchronises after damage. The data itself needs no checksum: its id is its
 * SHA-256.
 */
import { createHash } from 'node:crypto';
import { CHUNK_ID_BYTES, MAX_CHUNK_BYTES } from '../limits.js';

export const SEGMENT_HEADER_BYTES = 64;
export const RECORD_HEADER_BYTES = 56;
export const SALT_BYTES = 16;
const CHECK_BYTES = 8;
const SEGMENT_MAGIC = Buffer.from('TSSEGv1\n', 'latin1');
export const RECORD_MAGIC = 0x54535247;
export const RECORD_MAGIC_BYTES = Buffer.from([0x54, 0x53, 0x52, 0x47]);

export const RecordKind = {
  Put: 1,
  /** Deletion or quarantine: the id's earlier put records no longer count. */
  Tombstone: 2,
} as const;
export type RecordKind = (typeof RecordKind)[keyof typeof RecordKind];

export interface RecordHeader {
  kind: RecordKind;
  id: Buffer;
  length: number;
}

function check(salt: Buffer, bytes: Buffer): Buffer {
  return createHash('sha256').update(salt).update(bytes).digest().subarray(0, CHECK_BYTES);
}

export function encodeSegmentHeader(seq: number, salt: Buffer): Buffer {
  const b = Buffer.alloc(SEGMENT_HEADER_BYTES);
  SEGMENT_MAGIC.copy(b, 0);
  b.writeBigUInt64BE(BigInt(seq), 8);
  salt.copy(b, 16);
  check(Buffer.alloc(0), b.subarray(0, 32)).copy(b, 32);
  return b;
}

/** The segment's salt, or undefined when the header is not one we wrote for `seq`. */
export function decodeSegmentHeader(b: Buffer, seq: number): Buffer | undefined {
  if (b.length < SEGMENT_HEADER_BYTES) return undefined;
  if (!b.subarray(0, 8).equals(SEGMENT_MAGIC)) return undefined;
  if (b.readBigUInt64BE(8) !== BigInt(seq)) return undefined;
  if (!check(Buffer.alloc(0), b.subarray(0, 32)).equals(b.subarray(32, 32 + CHECK_BYTES))) return undefined;
  return Buffer.from(b.subarray(16, 16 + SALT_BYTES));
}

export function encodeRecordHeader(salt: Buffer, kind: RecordKind, id: Buffer, length: number): Buffer {
  const b = Buffer.alloc(RECORD_HEADER_BYTES);
  b.writeUInt32BE(RECORD_MAGIC, 0);
  b[4] = kind;
  b.writeUInt32BE(length, 8);
  id.copy(b, 16);
  check(salt, b.subarray(0, 48)).copy(b, 48);
  return b;
}

/**
 * Parses a record header read from disk, or undefined when it is not a valid one: wrong magic,
 * failed check, unknown kind, a length over MAX_CHUNK_BYTES, or a tombstone carrying data.
 */
export function decodeRecordHeader(salt: Buffer, b: Buffer): RecordHeader | undefined {
  if (b.length < RECORD_HEADER_BYTES) return undefined;
  if (b.readUInt32BE(0) !== RECORD_MAGIC) return undefined;
  if (!check(salt, b.subarray(0, 48)).equals(b.subarray(48, RECORD_HEADER_BYTES))) return undefined;
  const kind = b[4];
  const length = b.readUInt32BE(8);
  if (b[5] !== 0 || b[6] !== 0 || b[7] !== 0 || b.readUInt32BE(12) !== 0) return undefined;
  if (kind !== RecordKind.Put && kind !== RecordKind.Tombstone) return undefined;
  if (length > MAX_CHUNK_BYTES) return undefined;
  if (kind === RecordKind.Tombstone && length !== 0) return undefined;
  return { kind, id: Buffer.from(b.subarray(16, 16 + CHUNK_ID_BYTES)), length };
}

export function segmentFileName(seq: number): string {
  return `${seq.toString(16).padStart(16, '0')}.seg`;
}

const SEGMENT_NAME = /^([0-9a-f]{16})\.seg$/;

export function parseSegmentFileName(name: string): number | undefined {
  const m = SEGMENT_NAME.exec(name);
  if (!m) return undefined;
  const seq = Number.parseInt(m[1]!, 16);
  return Number.isSafeInteger(seq) ? seq : undefined;
}
