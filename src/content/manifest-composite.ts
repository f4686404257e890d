/**
 * Composite manifests: a file made of other files, in order. A completed multipart upload is one:
 * its root lists the parts' file ids (manifest root id and key) with their sizes, so the object is
 * stitched from the parts' manifests and not a byte is copied. The root is sealed like any
 * manifest page; a reader follows each part's own manifest, so every chunk is still verified
 * against its id, and only the parts a byte range touches are opened.
 */
import { Encoder } from 'cbor-x';
import { z } from 'zod';
import { CHUNK_ID_BYTES } from '../limits.js';
import { TesseraError, badInput, corrupt, tooLarge } from '../errors.js';
import { KEY_BYTES, decryptChunk, encryptChunk, type EncryptedChunk } from './crypto.js';
import { MAX_CONFIG_CHUNK_BYTES, MIN_CHUNK_BYTES } from './chunker.js';
import { formatFileId, parseFileId, type FileId } from './ids.js';
import { MANIFEST_VERSION, MAX_CREATED_AT_MS, MAX_FILE_BYTES, decodePage, type ManifestInfo } from './manifest.js';
import { ManifestReader, type FetchChunk, type LocatedChunkRef } from './manifest-reader.js';
import { checkPolicy, policySchema, type RedundancyPolicy } from './policy.js';

/** S3's limit on parts in one multipart upload; a composite root lists at most this many files. */
export const MAX_COMPOSITE_PARTS = 10_000;
/**
 * Most chunks a composite may count in total: every part is at most MAX_FILE_BYTES, but the sum
 * of sizes is bounded by MAX_FILE_BYTES too, and chunks by sizes.
 */
const MAX_TOTAL_CHUNKS = MAX_FILE_BYTES;

/** One file the composite is made of. */
export interface CompositePart {
  readonly rootId: Buffer;
  readonly rootKey: Buffer;
  /** Plaintext bytes of the part's file. */
  readonly size: number;
  /** Chunks of the part's file (for stat and health counts without opening every part). */
  readonly chunks: number;
}

export interface CompositeManifest {
  readonly info: ManifestInfo;
  readonly parts: readonly CompositePart[];
}

export interface CompositeOptions {
  readonly parts: readonly CompositePart[];
  /** The parts' redundancy policy: a composite is read with the same pipeline as its parts. */
  readonly policy: RedundancyPolicy;
  /** The largest chunk size among the parts (what stat reports). */
  readonly chunkSize: number;
  readonly createdAt?: number;
}

type CompositeEntry = [id: Buffer, key: Buffer, size: number, chunks: number];

const cbor = new Encoder({ useRecords: false, mapsAsObjects: true, tagUint8Array: false });
const id32 = z.custom<Buffer>((v) => Buffer.isBuffer(v) && v.length === CHUNK_ID_BYTES, 'expected a 32-byte id');
const key32 = z.custom<Buffer>((v) => Buffer.isBuffer(v) && v.length === KEY_BYTES, 'expected a 32-byte key');
const entrySchema = z.tuple([id32, key32, z.number().int().min(0).max(MAX_FILE_BYTES), z.number().int().min(0).max(MAX_FILE_BYTES)]);
const compositeSchema = z
  .object({
    v: z.literal(MANIFEST_VERSION),
    t: z.literal('composite'),
    e: z.array(z.unknown()).min(1).max(MAX_COMPOSITE_PARTS),
    size: z.number().int().min(0).max(MAX_FILE_BYTES),
    cs: z.number().int().min(MIN_CHUNK_BYTES).max(MAX_CONFIG_CHUNK_BYTES),
    n: z.number().int().min(0).max(MAX_TOTAL_CHUNKS),
    p: policySchema,
    at: z.number().int().min(0).max(MAX_CREATED_AT_MS),
  })
  .strict();

function checkCounts(parts: readonly { size: number; chunks: number }[], size: number, chunks: number, fail: (msg: string) => TesseraError): void {
  let bytes = 0;
  let count = 0;
  for (const p of parts) {
    // A part's chunk count must fit its size: none for an empty part, at most one per byte otherwise.
    if ((p.size === 0) !== (p.chunks === 0) || p.chunks > p.size) throw fail(`part of ${p.size} bytes claims ${p.chunks} chunks`);
    bytes += p.size;
    count += p.chunks;
    if (bytes > MAX_FILE_BYTES) throw fail(`parts add up to more than the ${MAX_FILE_BYTES}-byte file limit`);
  }
  if (bytes !== size || count !== chunks) throw fail(`parts add up to ${bytes} bytes / ${count} chunks but the composite claims ${size} / ${chunks}`);
}

/** Encodes and seals a composite root under the manifest secret; the caller stores it like any chunk. */
export function sealComposite(o: CompositeOptions, manifestSecret: Uint8Array): { root: EncryptedChunk; manifest: CompositeManifest } {
  if (o.parts.length === 0) throw badInput('a composite file needs at least one part');
  if (o.parts.length > MAX_COMPOSITE_PARTS) throw tooLarge(`a composite file lists at most ${MAX_COMPOSITE_PARTS} parts; got ${o.parts.length}`);
  const policy = checkPolicy(o.policy);
  if (!Number.isInteger(o.chunkSize) || o.chunkSize < MIN_CHUNK_BYTES || o.chunkSize > MAX_CONFIG_CHUNK_BYTES) throw badInput(`chunk size ${o.chunkSize} is out of range`);
  const createdAt = o.createdAt ?? Date.now();
  if (!Number.isSafeInteger(createdAt) || createdAt < 0 || createdAt > MAX_CREATED_AT_MS) throw badInput(`creation time ${createdAt} is not a millisecond timestamp`);
  let size = 0;
  let chunks = 0;
  const entries: CompositeEntry[] = o.parts.map((p, i) => {
    if (p.rootId.length !== CHUNK_ID_BYTES || p.rootKey.length !== KEY_BYTES) throw badInput(`part ${i + 1} needs a ${CHUNK_ID_BYTES}-byte root id and a ${KEY_BYTES}-byte key`);
    if (!Number.isSafeInteger(p.size) || p.size < 0 || !Number.isSafeInteger(p.chunks) || p.chunks < 0) throw badInput(`part ${i + 1} has a bad size or chunk count`);
    size += p.size;
    chunks += p.chunks;
    return [Buffer.from(p.rootId), Buffer.from(p.rootKey), p.size, p.chunks];
  });
  checkCounts(o.parts, size, chunks, (m) => tooLarge(m));
  const body = { v: MANIFEST_VERSION, t: 'composite', e: entries, size, cs: o.chunkSize, n: chunks, p: policy, at: createdAt };
  const info: ManifestInfo = { version: MANIFEST_VERSION, fileSize: size, chunkSize: o.chunkSize, chunkCount: chunks, policy, createdAt, depth: 0 };
  const parts = entries.map(([rootId, rootKey, s, n]) => ({ rootId, rootKey, size: s, chunks: n }));
  return { root: encryptChunk(cbor.encode(body), manifestSecret), manifest: { info, parts } };
}

/** A decoded root: a tree of pages (an ordinary file) or a composite of other files. */
export type DecodedRoot = { kind: 'file'; page: ReturnType<typeof decodePage> } | { kind: 'composite'; manifest: CompositeManifest };

/** Decodes a root's plaintext, whichever kind it is; every field is checked before use. */
export function decodeRoot(plain: Uint8Array): DecodedRoot {
  let raw: unknown;
  try {
    raw = cbor.decode(plain);
  } catch (cause) {
    throw new TesseraError('CORRUPT', `manifest root is not valid CBOR: ${(cause as Error).message}`, undefined, { cause });
  }
  const kind = typeof raw === 'object' && raw !== null ? (raw as { t?: unknown }).t : undefined;
  if (kind !== 'composite') return { kind: 'file', page: decodePage(plain, true) };
  const parsed = compositeSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw corrupt(`composite manifest is malformed: ${issue ? `${issue.path.join('.')}: ${issue.message}` : 'invalid'}`);
  }
  const c = parsed.data;
  const parts: CompositePart[] = c.e.map((e, i) => {
    const entry = entrySchema.safeParse(e);
    if (!entry.success) throw corrupt(`composite manifest part ${i + 1} is malformed: ${entry.error.issues[0]?.message ?? 'invalid'}`);
    const [rootId, rootKey, size, chunks] = entry.data;
    return { rootId, rootKey, size, chunks };
  });
  checkCounts(parts, c.size, c.n, corrupt);
  const info: ManifestInfo = { version: c.v, fileSize: c.size, chunkSize: c.cs, chunkCount: c.n, policy: c.p, createdAt: c.at, depth: 0 };
  return { kind: 'composite', manifest: { info, parts } };
}

/** What a byte-range read needs of a file, whether it is a tree of pages or a composite. */
export interface FileManifest {
  readonly info: ManifestInfo;
  readonly rootId: Buffer;
  /** The files this one is stitched from, in order; empty for an ordinary file. */
  readonly parts: readonly CompositePart[];
  refs(start?: number, end?: number): AsyncGenerator<LocatedChunkRef, void, undefined>;
}

/**
 * Reads a composite's chunks in order across its parts. One part's manifest is open at a time,
 * and parts outside the byte range are never fetched; each part's reader checks its own pages.
 */
export class CompositeReader implements FileManifest {
  constructor(
    readonly rootId: Buffer,
    private readonly manifest: CompositeManifest,
    private readonly fetch: FetchChunk,
  ) {}

  get info(): ManifestInfo {
    return this.manifest.info;
  }

  get parts(): readonly CompositePart[] {
    return this.manifest.parts;
  }

  async *refs(start = 0, end = this.info.fileSize): AsyncGenerator<LocatedChunkRef, void, undefined> {
    const size = this.info.fileSize;
    if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || end < start || end > size) {
      throw badInput(`byte range ${start}-${end} is outside the file's ${size} bytes`);
    }
    let offset = 0;
    let index = 0;
    for (const part of this.manifest.parts) {
      if (offset >= end) return;
      if (part.size > 0 && offset + part.size > start) {
        const reader = await ManifestReader.open({ rootId: part.rootId, rootKey: part.rootKey }, this.fetch);
        if (reader.info.fileSize !== part.size || reader.info.chunkCount !== part.chunks) {
          throw corrupt(`part ${formatFileId(part.rootId, part.rootKey).slice(0, 16)}… holds ${reader.info.fileSize} bytes / ${reader.info.chunkCount} chunks; the composite says ${part.size} / ${part.chunks}`);
        }
        const from = Math.max(0, start - offset);
        const to = Math.min(part.size, end - offset);
        for await (const ref of reader.refs(from, to)) yield { ...ref, index: index + ref.index, offset: offset + ref.offset };
      }
      offset += part.size;
      index += part.chunks;
    }
  }
}

/** Fetches a root once and opens the kind of manifest it is. */
export async function openFileManifest(fileId: FileId | string, fetch: FetchChunk): Promise<FileManifest> {
  const { rootId, rootKey } = typeof fileId === 'string' ? parseFileId(fileId) : fileId;
  if (rootId.length !== CHUNK_ID_BYTES || rootKey.length !== KEY_BYTES) throw badInput('file id has a bad root id or key length');
  const id = Buffer.from(rootId);
  const root = decodeRoot(decryptChunk(await fetch(id), rootKey, rootId));
  if (root.kind === 'composite') return new CompositeReader(id, root.manifest, fetch);
  return ManifestReader.fromRoot(id, root.page, fetch);
}
