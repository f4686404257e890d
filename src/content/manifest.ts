/**
 * The manifest format: what a file is made of. A manifest is a tree of encrypted pages stored as
 * chunks. The root carries the file's metadata; every page lists entries that are either chunk
 * refs (depth 0) or refs to pages one level down (depth > 0). A small file's root lists its chunks
 * directly; a huge file's manifest never needs more than one page per level in memory.
 */
import { Encoder } from 'cbor-x';
import { z } from 'zod';
import { CHUNK_ID_BYTES } from '../limits.js';
import { TesseraError, corrupt } from '../errors.js';
import { KEY_BYTES, decryptChunk, encryptChunk, type EncryptedChunk } from './crypto.js';
import { MAX_CONFIG_CHUNK_BYTES, MIN_CHUNK_BYTES } from './chunker.js';
import { policySchema, type RedundancyPolicy } from './policy.js';

export const MANIFEST_VERSION = 1;
/** Most entries a page may list; a reader never holds more than this per level. */
export const MAX_PAGE_ENTRIES = 16_384;
/** Entries per page when building; ≈ 650 KiB pages, so a root page alone covers 8 GiB of 1 MiB chunks. */
export const DEFAULT_PAGE_ENTRIES = 8192;
/** Fewest entries per page: one would make a chain that never ends. */
export const MIN_PAGE_ENTRIES = 2;
/** Deepest tree a reader follows; 8192-way pages reach far past MAX_FILE_BYTES in 3 levels. */
export const MAX_MANIFEST_DEPTH = 6;
/** Largest file a manifest may describe (1 PiB), well inside exact integer arithmetic. */
export const MAX_FILE_BYTES = 2 ** 50;
/** Latest creation time accepted (year 9999), so a garbage timestamp cannot pass as a date. */
export const MAX_CREATED_AT_MS = 253_402_300_799_999;
/** Random bytes a root may carry so that a file is distinct from any other with the same bytes and time. */
export const MANIFEST_NONCE_BYTES = 16;

/** One data chunk of a file: where it is, how to read it, and how many plaintext bytes it holds. */
export interface ChunkRef {
  readonly id: Buffer;
  readonly key: Buffer;
  readonly size: number;
}

export interface ManifestInfo {
  readonly version: number;
  readonly fileSize: number;
  readonly chunkSize: number;
  readonly chunkCount: number;
  readonly policy: RedundancyPolicy;
  readonly createdAt: number;
  /** 0: the root lists chunks; d: the root lists pages of depth d − 1. */
  readonly depth: number;
  /**
   * Present when the file must have an id of its own even if the same bytes were stored in the
   * same millisecond (a multipart part, which only its upload's object may remove).
   */
  readonly nonce?: Buffer;
}

export type ChunkEntry = [id: Buffer, key: Buffer, size: number];
export type PageEntry = [id: Buffer, key: Buffer, chunks: number, bytes: number];

export interface DecodedPage {
  readonly depth: number;
  /** Present only on the root page. */
  readonly info?: ManifestInfo;
  readonly chunkEntries: ChunkEntry[];
  readonly pageEntries: PageEntry[];
}

const cbor = new Encoder({ useRecords: false, mapsAsObjects: true, tagUint8Array: false });

const id32 = z.custom<Buffer>((v) => Buffer.isBuffer(v) && v.length === CHUNK_ID_BYTES, 'expected a 32-byte id');
const key32 = z.custom<Buffer>((v) => Buffer.isBuffer(v) && v.length === KEY_BYTES, 'expected a 32-byte key');
const chunkEntrySchema = z.tuple([id32, key32, z.number().int().min(1).max(MAX_CONFIG_CHUNK_BYTES)]);
const pageEntrySchema = z.tuple([
  id32,
  key32,
  z.number().int().min(1).max(MAX_FILE_BYTES),
  z.number().int().min(1).max(MAX_FILE_BYTES),
]);
const entriesSchema = z.array(z.unknown()).max(MAX_PAGE_ENTRIES);
const depthSchema = z.number().int().min(0).max(MAX_MANIFEST_DEPTH);

const innerPageSchema = z.object({ v: z.literal(MANIFEST_VERSION), t: z.literal('page'), d: depthSchema, e: entriesSchema }).strict();
const rootPageSchema = z
  .object({
    v: z.literal(MANIFEST_VERSION),
    t: z.literal('root'),
    d: depthSchema,
    e: entriesSchema,
    size: z.number().int().min(0).max(MAX_FILE_BYTES),
    cs: z.number().int().min(MIN_CHUNK_BYTES).max(MAX_CONFIG_CHUNK_BYTES),
    n: z.number().int().min(0).max(MAX_FILE_BYTES),
    p: policySchema,
    at: z.number().int().min(0).max(MAX_CREATED_AT_MS),
    u: z.custom<Buffer>((v) => Buffer.isBuffer(v) && v.length === MANIFEST_NONCE_BYTES, `expected a ${MANIFEST_NONCE_BYTES}-byte nonce`).optional(),
  })
  .strict();

export interface PageContent {
  readonly depth: number;
  readonly entries: readonly (ChunkEntry | PageEntry)[];
  readonly info?: ManifestInfo;
}

export function encodePage(page: PageContent): Buffer {
  const base = { v: MANIFEST_VERSION, t: page.info ? 'root' : 'page', d: page.depth, e: page.entries };
  if (!page.info) return cbor.encode(base);
  const { fileSize, chunkSize, chunkCount, policy, createdAt, nonce } = page.info;
  return cbor.encode({ ...base, size: fileSize, cs: chunkSize, n: chunkCount, p: policy, at: createdAt, ...(nonce ? { u: nonce } : {}) });
}

/** Encrypts a page convergently under the manifest secret; the caller stores it like any chunk. */
export function sealPage(page: PageContent, manifestSecret: Uint8Array): EncryptedChunk {
  return encryptChunk(encodePage(page), manifestSecret);
}

function describe(error: z.ZodError): string {
  const issue = error.issues[0];
  if (!issue) return 'invalid';
  return `${issue.path.length > 0 ? issue.path.join('.') + ': ' : ''}${issue.message}`;
}

/**
 * Decodes and validates one plaintext page. Every field is checked, so nothing a malicious page
 * claims can make a reader allocate or loop beyond the page's own bounded size.
 */
export function decodePage(plain: Uint8Array, expectRoot: boolean): DecodedPage {
  let raw: unknown;
  try {
    raw = cbor.decode(plain);
  } catch (cause) {
    throw new TesseraError('CORRUPT', `manifest page is not valid CBOR: ${(cause as Error).message}`, undefined, { cause });
  }
  const what = expectRoot ? 'manifest root' : 'manifest page';
  const header = (expectRoot ? rootPageSchema : innerPageSchema).safeParse(raw);
  if (!header.success) {
    const v = typeof raw === 'object' && raw !== null ? (raw as { v?: unknown }).v : undefined;
    if (typeof v === 'number' && v !== MANIFEST_VERSION) {
      throw corrupt(`${what} has format version ${v}; this build reads version ${MANIFEST_VERSION} (upgrade tessera)`);
    }
    throw corrupt(`${what} is malformed: ${describe(header.error)}`);
  }
  const page = header.data;
  const chunkEntries: ChunkEntry[] = [];
  const pageEntries: PageEntry[] = [];
  const schema = page.d === 0 ? chunkEntrySchema : pageEntrySchema;
  for (let i = 0; i < page.e.length; i++) {
    const entry = schema.safeParse(page.e[i]);
    if (!entry.success) throw corrupt(`${what} entry ${i} is malformed: ${describe(entry.error)}`);
    if (page.d === 0) chunkEntries.push(entry.data as ChunkEntry);
    else pageEntries.push(entry.data as PageEntry);
  }
  if (page.d > 0 && page.e.length === 0) throw corrupt(`${what} at depth ${page.d} lists no pages`);
  if (page.t !== 'root') return { depth: page.d, chunkEntries, pageEntries };
  const root = page as z.infer<typeof rootPageSchema>;
  const info: ManifestInfo = {
    version: root.v,
    fileSize: root.size,
    chunkSize: root.cs,
    chunkCount: root.n,
    policy: root.p,
    createdAt: root.at,
    depth: root.d,
    ...(root.u ? { nonce: root.u } : {}),
  };
  if (info.chunkCount !== Math.ceil(info.fileSize / info.chunkSize)) {
    throw corrupt(`manifest root claims ${info.chunkCount} chunks for ${info.fileSize} bytes in ${info.chunkSize}-byte chunks`);
  }
  return { depth: root.d, info, chunkEntries, pageEntries };
}

/** Verifies, decrypts and decodes a stored page. */
export function openPage(data: Uint8Array, id: Uint8Array, key: Uint8Array, expectRoot: boolean): DecodedPage {
  return decodePage(decryptChunk(data, key, id), expectRoot);
}
