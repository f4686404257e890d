/**
 * Bucket and object records: what the bucket and object tables hold, their validation (S3's
 * bucket-name rules, object keys of up to 1,024 bytes of UTF-8, bounded user metadata) and their
 * encoding as table values. Pure functions, no I/O.
 */
import { Decoder, Encoder } from 'cbor-x';
import { z } from 'zod';
import { badInput, tooLarge, TesseraError } from '../errors.js';
import { isFileId } from '../content/index.js';
import { MAX_CREATED_AT_MS, MAX_FILE_BYTES } from '../content/index.js';
import { policySchema, type RedundancyPolicy } from '../content/index.js';
import { MAX_INLINE_SEALED_BYTES } from '../content/index.js';
import { MAX_SORT_KEY_BYTES } from './entry.js';

export const BUCKET_TABLE = 'bucket';
export const OBJECT_TABLE = 'object';
/** All bucket records share one partition key, so listing buckets is one ordered scan. */
export const BUCKET_PARTITION = 'buckets';
export const MIN_BUCKET_NAME_CHARS = 3;
export const MAX_BUCKET_NAME_CHARS = 63;
export const MAX_OBJECT_KEY_BYTES = MAX_SORT_KEY_BYTES;
/** S3 caps user-defined metadata at 2 KB (names and values together). */
export const MAX_USER_METADATA_BYTES = 2048;
export const MAX_CONTENT_TYPE_CHARS = 256;
/** Standard headers an object keeps as S3 does, beside its content type (Content-Encoding is left out: aws-chunked uploads use it for the transfer). */
export const STORED_HEADER_NAMES = ['cache-control', 'content-disposition', 'content-language', 'expires'] as const;
/** Each stored header's value at most. */
export const MAX_STORED_HEADER_CHARS = 1024;
export const MAX_ETAG_CHARS = 80;
/** Checksums kept per object (e.g. crc32c, sha256), each a short text. */
export const MAX_CHECKSUMS = 4;
export const MAX_CHECKSUM_CHARS = 128;
export const BUCKET_ID_CHARS = 32;
/**
 * Canned ACLs a bucket or object may carry beyond `private`, which is the field's absence (so
 * records written before ACLs read as private). What each grants is the S3 face's business.
 */
export const STORED_CANNED_ACLS = ['public-read', 'public-read-write', 'authenticated-read'] as const;
export type StoredCannedAcl = (typeof STORED_CANNED_ACLS)[number];
/** An owner's id (an S3 access key id) and display name (the key's name) at most. */
export const MAX_OWNER_ID_CHARS = 64;
export const MAX_OWNER_NAME_CHARS = 128;

/** Who wrote an object: the S3 access key's id and name. */
export interface RecordOwner {
  readonly id: string;
  readonly name: string;
}

const BUCKET_NAME_RE = /^[a-z0-9][a-z0-9.-]*[a-z0-9]$/;
const IPV4_RE = /^\d{1,3}(\.\d{1,3}){3}$/;
const RESERVED_PREFIXES = ['xn--', 'sthree-', 'amzn-s3-demo-'];
const RESERVED_SUFFIXES = ['-s3alias', '--ol-s3', '.mrap', '--x-s3'];
const LONE_SURROGATE_RE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
const META_NAME_RE = /^[a-z0-9!#$%&'*+.^_`|~-]{1,128}$/;

/** S3's general-purpose bucket naming rules; the message says which one a name breaks. */
export function checkBucketName(name: string): void {
  if (typeof name !== 'string') throw badInput('bucket name must be a string');
  const fix = 'use 3-63 lowercase letters, digits, dots and hyphens, starting and ending with a letter or digit';
  if (name.length < MIN_BUCKET_NAME_CHARS || name.length > MAX_BUCKET_NAME_CHARS) throw badInput(`bucket name '${name.slice(0, 80)}' is ${name.length} characters; ${fix}`);
  if (!BUCKET_NAME_RE.test(name)) throw badInput(`bucket name '${name}' has a character or an end S3 does not allow; ${fix}`);
  if (name.includes('..')) throw badInput(`bucket name '${name}' has two dots in a row; ${fix}`);
  if (IPV4_RE.test(name)) throw badInput(`bucket name '${name}' looks like an IP address, which S3 does not allow`);
  for (const p of RESERVED_PREFIXES) if (name.startsWith(p)) throw badInput(`bucket names may not start with '${p}' (reserved by S3)`);
  for (const s of RESERVED_SUFFIXES) if (name.endsWith(s)) throw badInput(`bucket names may not end with '${s}' (reserved by S3)`);
}

export function checkObjectKey(key: string): void {
  if (typeof key !== 'string') throw badInput('object key must be a string');
  if (key.length === 0) throw badInput('object key is empty; give a key of 1 to 1,024 bytes of UTF-8');
  if (LONE_SURROGATE_RE.test(key)) throw badInput('object key is not valid Unicode (a lone surrogate); it cannot be stored as UTF-8');
  const n = Buffer.byteLength(key, 'utf8');
  if (n > MAX_OBJECT_KEY_BYTES) throw tooLarge(`object key of ${n} bytes exceeds S3's limit of ${MAX_OBJECT_KEY_BYTES} bytes of UTF-8`, { size: n });
}

export interface BucketRecord {
  readonly id: string;
  readonly createdAt: number;
  readonly policy: RedundancyPolicy;
  /** The S3 access key id that created the bucket; absent for buckets made through the API or CLI. */
  readonly owner?: string;
  /** The owning key's name when the bucket was made (S3's display name); absent before ACLs. */
  readonly ownerName?: string;
  /** Absent: private. */
  readonly acl?: StoredCannedAcl;
}

export interface ObjectRecord {
  readonly fileId: string;
  readonly size: number;
  readonly etag: string;
  readonly checksums: Readonly<Record<string, string>>;
  readonly contentType: string;
  /** x-amz-meta-* pairs, names lowercased. */
  readonly userMeta: Readonly<Record<string, string>>;
  readonly mtime: number;
  /** HTTP headers given at upload and served back on every read (STORED_HEADER_NAMES); absent when none were. */
  readonly headers?: Readonly<Record<string, string>>;
  /** A small object's bytes, sealed (content/inline-object.ts); its fileId is then INLINE_FILE_ID. */
  readonly inline?: Uint8Array;
  /** The S3 access key that wrote the object; absent for objects written through the API or CLI (the cluster owns them). */
  readonly owner?: RecordOwner;
  /** Absent: private. */
  readonly acl?: StoredCannedAcl;
}

const time = z.number().int().min(0).max(MAX_CREATED_AT_MS);
const ownerId = z.string().regex(new RegExp(`^[A-Za-z0-9]{1,${MAX_OWNER_ID_CHARS}}$`));
const ownerName = z.string().max(MAX_OWNER_NAME_CHARS);
const cannedAcl = z.enum(STORED_CANNED_ACLS);
export const recordOwnerSchema = z.object({ id: ownerId, name: ownerName }).strict();
export const bucketRecordSchema = z
  .object({ id: z.string().regex(/^[0-9a-f]{32}$/), createdAt: time, policy: policySchema, owner: ownerId.optional(), ownerName: ownerName.optional(), acl: cannedAcl.optional() })
  .strict();

const textMap = (maxEntries: number, nameRe: RegExp, maxValue: number) =>
  z.record(z.string().regex(nameRe), z.string().max(maxValue)).refine((m) => Object.keys(m).length <= maxEntries, `at most ${maxEntries} entries`);

export const storedHeadersSchema = z.record(z.enum(STORED_HEADER_NAMES), z.string().max(MAX_STORED_HEADER_CHARS));
export const storedCannedAclSchema = cannedAcl;

export const objectRecordSchema = z
  .object({
    fileId: z.string().refine(isFileId, 'not a tessera file id'),
    size: z.number().int().min(0).max(MAX_FILE_BYTES),
    etag: z.string().max(MAX_ETAG_CHARS),
    checksums: textMap(MAX_CHECKSUMS, /^[a-z0-9]{1,16}$/, MAX_CHECKSUM_CHARS),
    contentType: z.string().max(MAX_CONTENT_TYPE_CHARS),
    userMeta: textMap(MAX_USER_METADATA_BYTES, META_NAME_RE, MAX_USER_METADATA_BYTES),
    mtime: time,
    headers: storedHeadersSchema.optional(),
    inline: z.instanceof(Uint8Array).refine((b) => b.length <= MAX_INLINE_SEALED_BYTES, `at most ${MAX_INLINE_SEALED_BYTES} bytes`).optional(),
    owner: recordOwnerSchema.optional(),
    acl: cannedAcl.optional(),
  })
  .strict();

/** The pair as an object's owner, or undefined when it is not one (an id that is no S3 access key id). */
export function asRecordOwner(v: { id: string; name: string }): RecordOwner | undefined {
  return recordOwnerSchema.safeParse(v).success ? { id: v.id, name: v.name } : undefined;
}

export function userMetaBytes(meta: Readonly<Record<string, string>>): number {
  let n = 0;
  for (const [k, v] of Object.entries(meta)) n += Buffer.byteLength(k, 'utf8') + Buffer.byteLength(v, 'utf8');
  return n;
}

/** Validates a record against its schema; BAD_INPUT names the first field that is wrong. */
export function checkRecord<T>(schema: z.ZodType<T, z.ZodTypeDef, unknown>, value: unknown, what: string): T {
  const r = schema.safeParse(value);
  if (!r.success) {
    const issue = r.error.issues[0];
    throw badInput(`${what} ${issue && issue.path.length > 0 ? `field ${issue.path.join('.')}` : ''}: ${issue?.message ?? 'invalid'}`);
  }
  return r.data;
}

export function checkBucketRecord(value: unknown): BucketRecord {
  return checkRecord(bucketRecordSchema as z.ZodType<BucketRecord, z.ZodTypeDef, unknown>, value, 'bucket record');
}

const OBJECT_RECORD_REQUIRED = ['fileId', 'size', 'etag', 'checksums', 'contentType', 'userMeta', 'mtime'] as const;
const OBJECT_RECORD_OPTIONAL = ['headers', 'inline', 'owner', 'acl'] as const;
const OBJECT_RECORD_FIELDS: ReadonlySet<string> = new Set([...OBJECT_RECORD_REQUIRED, ...OBJECT_RECORD_OPTIONAL]);
const CHECKSUM_NAME_RE = /^[a-z0-9]{1,16}$/;
const OWNER_ID_RE = new RegExp(`^[A-Za-z0-9]{1,${MAX_OWNER_ID_CHARS}}$`);
const STORED_HEADER_SET: ReadonlySet<string> = new Set(STORED_HEADER_NAMES);
const CANNED_ACL_SET: ReadonlySet<string> = new Set(STORED_CANNED_ACLS);

/** A plain object as a decoder makes it: own enumerable keys only, no odd prototype. */
const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v) && Object.getPrototypeOf(v) === Object.prototype;

const isTime = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= MAX_CREATED_AT_MS;

/** A text map as textMap(maxEntries, nameRe, maxValue) accepts it, else false. */
function plainTextMap(v: unknown, maxEntries: number, nameOk: (k: string) => boolean, maxValue: number): v is Record<string, string> {
  if (!isPlainObject(v)) return false;
  const keys = Object.keys(v);
  if (keys.length > maxEntries) return false;
  for (const k of keys) {
    const x = v[k];
    if (k === '__proto__' || !nameOk(k) || typeof x !== 'string' || x.length > maxValue) return false;
  }
  return true;
}

/**
 * An object record as objectRecordSchema accepts it, checked by hand and copied into a fresh
 * object in the schema's field order, else undefined. Every record read is checked (a listing
 * page checks a thousand) and the schema's walk was a fifth of a page's work on the node; anything
 * this refuses goes through the schema, which accepts or names what is wrong.
 */
export function plainObjectRecord(v: unknown): ObjectRecord | undefined {
  if (!isPlainObject(v)) return undefined;
  for (const k of Object.keys(v)) if (!OBJECT_RECORD_FIELDS.has(k) || v[k] === undefined) return undefined;
  const { fileId, size, etag, checksums, contentType, userMeta, mtime, headers, inline, owner, acl } = v;
  if (typeof fileId !== 'string' || !isFileId(fileId)) return undefined;
  if (typeof size !== 'number' || !Number.isInteger(size) || size < 0 || size > MAX_FILE_BYTES) return undefined;
  if (typeof etag !== 'string' || etag.length > MAX_ETAG_CHARS) return undefined;
  if (!plainTextMap(checksums, MAX_CHECKSUMS, (k) => CHECKSUM_NAME_RE.test(k), MAX_CHECKSUM_CHARS)) return undefined;
  if (typeof contentType !== 'string' || contentType.length > MAX_CONTENT_TYPE_CHARS) return undefined;
  if (!plainTextMap(userMeta, MAX_USER_METADATA_BYTES, (k) => META_NAME_RE.test(k), MAX_USER_METADATA_BYTES)) return undefined;
  if (!isTime(mtime)) return undefined;
  const out: { -readonly [K in keyof ObjectRecord]: ObjectRecord[K] } = { fileId, size, etag, checksums: { ...checksums }, contentType, userMeta: { ...userMeta }, mtime };
  if (headers !== undefined) {
    if (!plainTextMap(headers, STORED_HEADER_NAMES.length, (k) => STORED_HEADER_SET.has(k), MAX_STORED_HEADER_CHARS)) return undefined;
    out.headers = { ...headers };
  }
  if (inline !== undefined) {
    if (!(inline instanceof Uint8Array) || inline.length > MAX_INLINE_SEALED_BYTES) return undefined;
    out.inline = inline;
  }
  if (owner !== undefined) {
    if (!isPlainObject(owner)) return undefined;
    const keys = Object.keys(owner);
    const { id, name } = owner;
    if (keys.length !== 2 || typeof id !== 'string' || !OWNER_ID_RE.test(id) || typeof name !== 'string' || name.length > MAX_OWNER_NAME_CHARS) return undefined;
    if (!Object.hasOwn(owner, 'id') || !Object.hasOwn(owner, 'name')) return undefined;
    out.owner = { id, name };
  }
  if (acl !== undefined) {
    if (typeof acl !== 'string' || !CANNED_ACL_SET.has(acl)) return undefined;
    out.acl = acl as StoredCannedAcl;
  }
  return out;
}

export function checkObjectRecord(value: unknown): ObjectRecord {
  const r = plainObjectRecord(value) ?? checkRecord(objectRecordSchema as z.ZodType<ObjectRecord, z.ZodTypeDef, unknown>, value, 'object record');
  const n = userMetaBytes(r.userMeta);
  if (n > MAX_USER_METADATA_BYTES) throw tooLarge(`user metadata of ${n} bytes exceeds S3's limit of ${MAX_USER_METADATA_BYTES} bytes`, { size: n });
  return r;
}

const encoder = new Encoder({ useRecords: false, mapsAsObjects: true, tagUint8Array: false, pack: false });
const decoder = new Decoder({ useRecords: false, mapsAsObjects: true });

export function encodeRecord(value: BucketRecord | ObjectRecord): Buffer {
  return Buffer.from(encoder.encode(value));
}

/** Decodes a stored value; a value that does not decode was corrupted, since every writer validated it. */
export function decodeRecord<T>(bytes: Buffer, check: (v: unknown) => T, what: string): T {
  let v: unknown;
  try {
    v = decoder.decode(bytes);
  } catch (e) {
    throw new TesseraError('CORRUPT', `${what} does not decode: ${(e as Error).message}`);
  }
  try {
    return check(v);
  } catch (e) {
    throw new TesseraError('CORRUPT', `${what} is malformed: ${(e as Error).message}`);
  }
}
