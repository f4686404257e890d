/**
 * Name records: how a file name maps to a file id without any storage node learning the name.
 * Nodes see only the lookup key (an HMAC of the name), an opaque sealed box, and the clock
 * timestamp beside it, which is all they need to keep the latest record (last writer wins).
 */
import { createCipheriv, createDecipheriv, createHmac, randomBytes } from 'node:crypto';
import { Encoder } from 'cbor-x';
import { z } from 'zod';
import { TesseraError, badInput, corrupt, tooLarge } from '../errors.js';
import { GCM_NONCE_BYTES, GCM_TAG_BYTES, KEY_BYTES, type ClusterKeys } from './crypto.js';
import { checkHlc, compareHlc, encodeHlc, hlcSchema, type Hlc } from './hlc.js';
import { FILE_ID_CHARS, isFileId } from './ids.js';
import { MAX_CREATED_AT_MS, MAX_FILE_BYTES } from './manifest.js';
import { policySchema, type RedundancyPolicy } from './policy.js';

/** Longest file name, in UTF-8 bytes. */
export const MAX_NAME_BYTES = 1024;
/** Largest sealed name record; a name, a file id and a few numbers fit with room to spare. */
export const MAX_NAME_RECORD_BYTES = 4096;
export const NAME_LOOKUP_KEY_BYTES = 32;

const LOOKUP_PREFIX = Buffer.from('name:', 'utf8');
const AAD_LABEL = Buffer.from('tessera/v1/name-record', 'utf8');
// C0 controls and DEL make names that print badly or can be mistaken for others; NUL also ends C strings.
const CONTROL_RE = /[\u0000-\u001f\u007f]/;
const LONE_SURROGATE_RE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

export interface NameRecord {
  readonly name: string;
  readonly fileId: string;
  readonly size: number;
  readonly createdAt: number;
  readonly policy: RedundancyPolicy;
  /** A tombstone: the name was removed at this record's timestamp. */
  readonly deleted?: boolean;
}

/** What a node stores and replicates for one name. */
export interface SealedNameRecord {
  readonly key: Buffer;
  readonly hlc: Hlc;
  /** nonce ‖ AES-256-GCM ciphertext ‖ tag of the CBOR-encoded record. */
  readonly box: Buffer;
}

export type NameKeys = Pick<ClusterKeys, 'nameKey' | 'nameSealKey'>;

const cbor = new Encoder({ useRecords: false, mapsAsObjects: true, tagUint8Array: false });

const recordSchema = z
  .object({
    name: z.string().max(MAX_NAME_BYTES),
    fileId: z.string().length(FILE_ID_CHARS).refine(isFileId, 'not a valid file id'),
    size: z.number().int().min(0).max(MAX_FILE_BYTES),
    createdAt: z.number().int().min(0).max(MAX_CREATED_AT_MS),
    policy: policySchema,
    deleted: z.boolean().optional(),
  })
  .strict();

/**
 * Checks a file name and returns it in Unicode NFC, so the same visible name typed on different
 * systems finds the same record.
 */
export function checkName(name: string): string {
  if (typeof name !== 'string') throw badInput('file name must be a string');
  if (name.length === 0) throw badInput('file name is empty');
  if (LONE_SURROGATE_RE.test(name)) throw badInput('file name is not valid Unicode (it has an unpaired surrogate)');
  const normal = name.normalize('NFC');
  const bytes = Buffer.byteLength(normal, 'utf8');
  if (bytes > MAX_NAME_BYTES) throw badInput(`file name is ${bytes} bytes of UTF-8; the limit is ${MAX_NAME_BYTES}`);
  if (normal.includes('\u0000')) throw badInput('file name contains a NUL character');
  if (CONTROL_RE.test(normal)) throw badInput('file name contains a control character');
  if (isFileId(normal)) throw badInput('file name looks like a file id, so it could not be told apart from one; choose another');
  return normal;
}

/** Decodes a name from raw bytes, refusing invalid UTF-8 rather than substituting characters. */
export function nameFromBytes(bytes: Uint8Array): string {
  if (bytes.length > MAX_NAME_BYTES) throw badInput(`file name is ${bytes.length} bytes; the limit is ${MAX_NAME_BYTES}`);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw badInput('file name is not valid UTF-8');
  }
  return checkName(text);
}

/** The key a name is stored under; nodes can compare keys but not recover names. */
export function nameLookupKey(nameKey: Uint8Array, name: string): Buffer {
  if (nameKey.length !== KEY_BYTES) throw badInput(`name key must be ${KEY_BYTES} bytes`);
  return createHmac('sha256', nameKey).update(LOOKUP_PREFIX).update(checkName(name), 'utf8').digest();
}

function aadFor(key: Uint8Array, hlc: Hlc): Buffer {
  // Binding key and timestamp means a node cannot move a record to another name or re-date it.
  return Buffer.concat([AAD_LABEL, key, encodeHlc(hlc)]);
}

export function sealNameRecord(keys: NameKeys, record: NameRecord, hlc: Hlc): SealedNameRecord {
  const parsed = recordSchema.safeParse(record);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw badInput(`bad name record: ${issue ? `${issue.path.join('.')}: ${issue.message}` : 'invalid'}`);
  }
  const body = { ...parsed.data, name: checkName(parsed.data.name) };
  const key = nameLookupKey(keys.nameKey, body.name);
  const hlcChecked = checkHlc(hlc);
  const plain = cbor.encode(body);
  const nonce = randomBytes(GCM_NONCE_BYTES);
  const cipher = createCipheriv('aes-256-gcm', keys.nameSealKey, nonce, { authTagLength: GCM_TAG_BYTES });
  cipher.setAAD(aadFor(key, hlcChecked));
  const box = Buffer.concat([nonce, cipher.update(plain), cipher.final(), cipher.getAuthTag()]);
  if (box.length > MAX_NAME_RECORD_BYTES) throw tooLarge(`name record is ${box.length} bytes; the limit is ${MAX_NAME_RECORD_BYTES}`);
  return { key, hlc: hlcChecked, box };
}

/** Checks the parts of a sealed record a node can check without the keys (for untrusted input). */
export function checkSealedNameRecord(value: { key: unknown; hlc: unknown; box: unknown }): SealedNameRecord {
  const { key, hlc, box } = value;
  if (!(key instanceof Uint8Array) || key.length !== NAME_LOOKUP_KEY_BYTES) {
    throw badInput(`name lookup key must be ${NAME_LOOKUP_KEY_BYTES} bytes`);
  }
  if (!(box instanceof Uint8Array)) throw badInput('name record box must be bytes');
  if (box.length > MAX_NAME_RECORD_BYTES) throw tooLarge(`name record is ${box.length} bytes; the limit is ${MAX_NAME_RECORD_BYTES}`);
  if (box.length < GCM_NONCE_BYTES + GCM_TAG_BYTES) throw badInput(`name record is ${box.length} bytes, too short to be sealed`);
  const parsed = hlcSchema.safeParse(hlc);
  if (!parsed.success) throw badInput('name record has a malformed clock timestamp');
  return { key: Buffer.from(key), hlc: parsed.data, box: Buffer.from(box) };
}

/** Decrypts and validates a record; CORRUPT if it was altered, re-dated, or moved to another name. */
export function openNameRecord(keys: NameKeys, sealed: SealedNameRecord): NameRecord {
  const { key, hlc, box } = checkSealedNameRecord(sealed);
  const tagAt = box.length - GCM_TAG_BYTES;
  const decipher = createDecipheriv('aes-256-gcm', keys.nameSealKey, box.subarray(0, GCM_NONCE_BYTES), { authTagLength: GCM_TAG_BYTES });
  decipher.setAAD(aadFor(key, hlc));
  decipher.setAuthTag(box.subarray(tagAt));
  let plain: Buffer;
  try {
    plain = Buffer.concat([decipher.update(box.subarray(GCM_NONCE_BYTES, tagAt)), decipher.final()]);
  } catch (cause) {
    throw new TesseraError('CORRUPT', 'name record failed authentication: altered, re-dated, or sealed with another key', undefined, {
      cause,
    });
  }
  let raw: unknown;
  try {
    raw = cbor.decode(plain);
  } catch {
    throw corrupt('name record is not valid CBOR');
  }
  const parsed = recordSchema.safeParse(raw);
  if (!parsed.success) throw corrupt(`name record is malformed: ${parsed.error.issues[0]?.message ?? 'invalid'}`);
  if (!nameLookupKey(keys.nameKey, parsed.data.name).equals(key)) throw corrupt('name record is stored under another name');
  return parsed.data;
}

/**
 * Last-writer-wins merge a node can run without keys: the later timestamp wins; identical
 * timestamps (a replay of one write) fall back to comparing boxes so every replica picks the same.
 */
export function newerNameRecord(a: SealedNameRecord, b: SealedNameRecord): SealedNameRecord {
  if (!a.key.equals(b.key)) throw badInput('cannot merge name records stored under different keys');
  const order = compareHlc(a.hlc, b.hlc);
  if (order !== 0) return order > 0 ? a : b;
  return Buffer.compare(a.box, b.box) >= 0 ? a : b;
}
