/**
 * Multipart upload records: the uploads open in a bucket and the parts each has received, as
 * table entries. An upload lives in its bucket's partition of the upload table, ordered by object
 * key then upload id (what ListMultipartUploads returns); its parts live in a partition of their
 * own, ordered by part number, one entry per upload of a part (a part number uploaded again gets
 * a new entry; the newest wins at completion and the others are removed with the upload). Pure
 * functions, no I/O.
 */
import { randomBytes } from 'node:crypto';
import { Encoder } from 'cbor-x';
import { z } from 'zod';
import { badInput, tooLarge } from '../errors.js';
import { isFileId, policySchema, MAX_CREATED_AT_MS, MAX_FILE_BYTES, type RedundancyPolicy } from '../content/index.js';
import { MAX_SORT_KEY_BYTES } from './entry.js';
import {
  MAX_CONTENT_TYPE_CHARS, MAX_USER_METADATA_BYTES, checkObjectKey, checkRecord, decodeRecord, storedCannedAclSchema, storedHeadersSchema, userMetaBytes,
  type StoredCannedAcl,
} from './records.js';

export const UPLOAD_TABLE = 'mpupload';
export const PART_TABLE = 'mppart';
/** S3's part numbers: 1 to 10,000. */
export const MIN_PART_NUMBER = 1;
export const MAX_PART_NUMBER = 10_000;
/** Times one part number may be uploaded within one upload; each upload is kept until completion. */
export const MAX_PART_VERSIONS = 8;
export const UPLOAD_ID_CHARS = 32;
/** Separates the object key from the upload id in an upload's sort key; sorts before any key character. */
const KEY_SEPARATOR = '\u0000';
/** Longest object key a multipart upload may name: the sort key also holds the separator and the upload id. */
export const MAX_MULTIPART_KEY_BYTES = MAX_SORT_KEY_BYTES - 1 - UPLOAD_ID_CHARS;
const PART_NUMBER_DIGITS = 5;
const STAMP_DIGITS = 15;
const MAX_PRINCIPAL_CHARS = 128;
const MAX_ETAG_CHARS = 80;

export interface UploadRecord {
  readonly createdAt: number;
  readonly contentType: string;
  readonly userMeta: Readonly<Record<string, string>>;
  /** The bucket's policy when the upload began: every part is stored with it. */
  readonly policy: RedundancyPolicy;
  /** Who began the upload (the access key's id and name), for ListMultipartUploads. */
  readonly initiator: { readonly id: string; readonly name: string };
  /** Cache-Control, Expires and the like given when the upload began, for the completed object; absent when none were. */
  readonly headers?: Readonly<Record<string, string>>;
  /** The completed object's canned ACL; absent: private. */
  readonly acl?: StoredCannedAcl;
  /**
   * Set once the upload is completed: what the completion made, so a client that repeats the
   * same completion (a retry after a lost answer) gets the same answer. Otherwise it is gone.
   */
  readonly completed?: CompletedUpload;
}

export interface CompletedUpload {
  readonly at: number;
  readonly etag: string;
  readonly size: number;
  /** Hex SHA-256 of the part list the completion named. */
  readonly request: string;
}

export interface PartRecord {
  readonly fileId: string;
  readonly size: number;
  /** Hex MD5 of the part's bytes. */
  readonly etag: string;
  readonly mtime: number;
}

const time = z.number().int().min(0).max(MAX_CREATED_AT_MS);
const uploadSchema = z
  .object({
    createdAt: time,
    contentType: z.string().max(MAX_CONTENT_TYPE_CHARS),
    userMeta: z.record(z.string().max(128), z.string().max(MAX_USER_METADATA_BYTES)),
    policy: policySchema,
    initiator: z.object({ id: z.string().max(MAX_PRINCIPAL_CHARS), name: z.string().max(MAX_PRINCIPAL_CHARS) }).strict(),
    headers: storedHeadersSchema.optional(),
    acl: storedCannedAclSchema.optional(),
    completed: z.object({ at: time, etag: z.string().max(MAX_ETAG_CHARS), size: z.number().int().min(0).max(MAX_FILE_BYTES), request: z.string().regex(/^[0-9a-f]{64}$/) }).strict().optional(),
  })
  .strict();
const partSchema = z
  .object({
    fileId: z.string().refine(isFileId, 'not a tessera file id'),
    size: z.number().int().min(0).max(MAX_FILE_BYTES),
    etag: z.string().regex(/^[0-9a-f]{32}$/).max(MAX_ETAG_CHARS),
    mtime: time,
  })
  .strict();

export function checkUploadRecord(value: unknown): UploadRecord {
  const r = checkRecord(uploadSchema as z.ZodType<UploadRecord, z.ZodTypeDef, unknown>, value, 'upload record');
  const n = userMetaBytes(r.userMeta);
  if (n > MAX_USER_METADATA_BYTES) throw tooLarge(`user metadata of ${n} bytes exceeds S3's limit of ${MAX_USER_METADATA_BYTES} bytes`, { size: n });
  return r;
}

export function checkPartRecord(value: unknown): PartRecord {
  return checkRecord(partSchema as z.ZodType<PartRecord, z.ZodTypeDef, unknown>, value, 'part record');
}

const encoder = new Encoder({ useRecords: false, mapsAsObjects: true, tagUint8Array: false, pack: false });

export function encodeUploadRecord(r: UploadRecord): Buffer {
  return Buffer.from(encoder.encode(checkUploadRecord(r)));
}

export function encodePartRecord(r: PartRecord): Buffer {
  return Buffer.from(encoder.encode(checkPartRecord(r)));
}

export function decodeUploadRecord(bytes: Buffer, what: string): UploadRecord {
  return decodeRecord(bytes, checkUploadRecord, what);
}

export function decodePartRecord(bytes: Buffer, what: string): PartRecord {
  return decodeRecord(bytes, checkPartRecord, what);
}

export function newUploadId(): string {
  return randomBytes(UPLOAD_ID_CHARS / 2).toString('hex');
}

export function isUploadId(id: unknown): id is string {
  return typeof id === 'string' && id.length === UPLOAD_ID_CHARS && /^[0-9a-f]+$/.test(id);
}

export function checkMultipartKey(key: string): void {
  checkObjectKey(key);
  const n = Buffer.byteLength(key, 'utf8');
  if (n > MAX_MULTIPART_KEY_BYTES) throw tooLarge(`object key of ${n} bytes is too long for a multipart upload (at most ${MAX_MULTIPART_KEY_BYTES} bytes); use a shorter key or a single PUT`, { size: n });
}

export function checkPartNumber(n: unknown): number {
  if (typeof n !== 'number' || !Number.isInteger(n) || n < MIN_PART_NUMBER || n > MAX_PART_NUMBER) {
    throw badInput(`part number ${String(n).slice(0, 20)} is outside ${MIN_PART_NUMBER}..${MAX_PART_NUMBER}`);
  }
  return n;
}

/** The upload's sort key in its bucket's partition: key order first, as S3 lists uploads. */
export function uploadSortKey(key: string, uploadId: string): string {
  return `${key}${KEY_SEPARATOR}${uploadId}`;
}

export function parseUploadSortKey(sk: string): { key: string; uploadId: string } {
  const cut = sk.length - UPLOAD_ID_CHARS - 1;
  if (cut < 1 || sk[cut] !== KEY_SEPARATOR || !isUploadId(sk.slice(cut + 1))) throw badInput('not an upload sort key');
  return { key: sk.slice(0, cut), uploadId: sk.slice(cut + 1) };
}

/** Every upload of one part number shares this prefix; ordered by number. */
export function partPrefix(partNumber: number): string {
  return `${String(checkPartNumber(partNumber)).padStart(PART_NUMBER_DIGITS, '0')}:`;
}

/** One upload of a part: later uploads of the same number sort after earlier ones. */
export function partSortKey(partNumber: number, at: number): string {
  return `${partPrefix(partNumber)}${String(at).padStart(STAMP_DIGITS, '0')}:${randomBytes(4).toString('hex')}`;
}

export function parsePartSortKey(sk: string): number {
  const n = Number.parseInt(sk.slice(0, PART_NUMBER_DIGITS), 10);
  return checkPartNumber(n);
}
