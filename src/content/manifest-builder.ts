/**
 * Builds a manifest incrementally from chunk refs, in memory bounded by one page per tree level.
 * Full pages are sealed and handed back as soon as the next entry shows they are not the root;
 * the caller stores each like a chunk, then stores the root last (it names everything below).
 */
import { CHUNK_ID_BYTES } from '../limits.js';
import { badInput, tooLarge } from '../errors.js';
import { KEY_BYTES, type EncryptedChunk } from './crypto.js';
import { checkChunkSize } from './chunker.js';
import { checkPolicy, type RedundancyPolicy } from './policy.js';
import {
  DEFAULT_PAGE_ENTRIES,
  MANIFEST_VERSION,
  MANIFEST_NONCE_BYTES,
  MAX_CREATED_AT_MS,
  MAX_FILE_BYTES,
  MAX_MANIFEST_DEPTH,
  MAX_PAGE_ENTRIES,
  MIN_PAGE_ENTRIES,
  sealPage,
  type ChunkEntry,
  type ChunkRef,
  type ManifestInfo,
  type PageEntry,
} from './manifest.js';

export interface ManifestBuilderOptions {
  readonly manifestSecret: Uint8Array;
  readonly chunkSize: number;
  readonly policy: RedundancyPolicy;
  /** Milliseconds since the epoch; defaults to now. */
  readonly createdAt?: number;
  /** Makes the root unique (see ManifestInfo.nonce). */
  readonly nonce?: Uint8Array;
  /** Entries per page; small values make deep trees (for tests). */
  readonly pageEntries?: number;
}

export interface BuiltManifest {
  /** Pages not yet handed out by add(); store them before the root. */
  readonly pages: EncryptedChunk[];
  /** The root page: its id and key make the file id. */
  readonly root: EncryptedChunk;
  readonly info: ManifestInfo;
}

interface Level {
  entries: (ChunkEntry | PageEntry)[];
  chunks: number;
  bytes: number;
}

export class ManifestBuilder {
  readonly #secret: Uint8Array;
  readonly #chunkSize: number;
  readonly #policy: RedundancyPolicy;
  readonly #createdAt: number;
  readonly #nonce: Buffer | undefined;
  readonly #pageEntries: number;
  readonly #levels: Level[] = [{ entries: [], chunks: 0, bytes: 0 }];
  #fileSize = 0;
  #chunkCount = 0;
  #sawShortChunk = false;
  #finished = false;

  constructor(opts: ManifestBuilderOptions) {
    if (opts.manifestSecret.length !== KEY_BYTES) throw badInput(`manifest secret must be ${KEY_BYTES} bytes`);
    this.#secret = opts.manifestSecret;
    this.#chunkSize = checkChunkSize(opts.chunkSize);
    this.#policy = checkPolicy(opts.policy);
    const createdAt = opts.createdAt ?? Date.now();
    if (!Number.isSafeInteger(createdAt) || createdAt < 0 || createdAt > MAX_CREATED_AT_MS) {
      throw badInput(`creation time ${createdAt} is not a millisecond timestamp`);
    }
    this.#createdAt = createdAt;
    if (opts.nonce !== undefined && opts.nonce.length !== MANIFEST_NONCE_BYTES) throw badInput(`manifest nonce must be ${MANIFEST_NONCE_BYTES} bytes`);
    this.#nonce = opts.nonce === undefined ? undefined : Buffer.from(opts.nonce);
    const pageEntries = opts.pageEntries ?? DEFAULT_PAGE_ENTRIES;
    if (!Number.isInteger(pageEntries) || pageEntries < MIN_PAGE_ENTRIES || pageEntries > MAX_PAGE_ENTRIES) {
      throw badInput(`page size ${pageEntries} must be ${MIN_PAGE_ENTRIES}..${MAX_PAGE_ENTRIES} entries`);
    }
    this.#pageEntries = pageEntries;
  }

  get chunkCount(): number {
    return this.#chunkCount;
  }

  get fileSize(): number {
    return this.#fileSize;
  }

  /** Appends the next chunk of the file; returns pages that filled up and must be stored. */
  add(ref: ChunkRef): EncryptedChunk[] {
    if (this.#finished) throw badInput('manifest is already finished');
    if (ref.id.length !== CHUNK_ID_BYTES || ref.key.length !== KEY_BYTES) {
      throw badInput(`chunk ref needs a ${CHUNK_ID_BYTES}-byte id and a ${KEY_BYTES}-byte key`);
    }
    if (!Number.isInteger(ref.size) || ref.size < 1 || ref.size > this.#chunkSize) {
      throw badInput(`chunk of ${ref.size} bytes does not fit the ${this.#chunkSize}-byte chunk size`);
    }
    if (this.#sawShortChunk) throw badInput('only the last chunk of a file may be shorter than the chunk size');
    if (this.#fileSize + ref.size > MAX_FILE_BYTES) throw tooLarge(`file exceeds the ${MAX_FILE_BYTES}-byte limit`);
    if (ref.size < this.#chunkSize) this.#sawShortChunk = true;
    this.#fileSize += ref.size;
    this.#chunkCount++;
    const emitted: EncryptedChunk[] = [];
    this.#push(0, [Buffer.from(ref.id), Buffer.from(ref.key), ref.size], 1, ref.size, emitted);
    return emitted;
  }

  /** Seals the partial pages and the root. The builder cannot be used afterwards. */
  finish(): BuiltManifest {
    if (this.#finished) throw badInput('manifest is already finished');
    this.#finished = true;
    const pages: EncryptedChunk[] = [];
    // Each pass either finds the top level or moves one level up; levels never exceed the depth bound.
    for (let depth = 0; depth <= MAX_MANIFEST_DEPTH; depth++) {
      const level = this.#levels[depth] as Level;
      if (depth === this.#levels.length - 1) {
        const info: ManifestInfo = {
          version: MANIFEST_VERSION,
          fileSize: this.#fileSize,
          chunkSize: this.#chunkSize,
          chunkCount: this.#chunkCount,
          policy: this.#policy,
          createdAt: this.#createdAt,
          depth,
          ...(this.#nonce ? { nonce: this.#nonce } : {}),
        };
        return { pages, root: sealPage({ depth, entries: level.entries, info }, this.#secret), info };
      }
      this.#flush(depth, pages);
    }
    throw tooLarge(`manifest would be deeper than ${MAX_MANIFEST_DEPTH} levels; use larger pages or chunks`);
  }

  #push(depth: number, entry: ChunkEntry | PageEntry, chunks: number, bytes: number, emitted: EncryptedChunk[]): void {
    if (depth > MAX_MANIFEST_DEPTH) throw tooLarge(`manifest would be deeper than ${MAX_MANIFEST_DEPTH} levels; use larger pages or chunks`);
    let level = this.#levels[depth];
    if (level === undefined) {
      level = { entries: [], chunks: 0, bytes: 0 };
      this.#levels.push(level);
    }
    // A full level is sealed only when another entry arrives, so the top level can still become the root.
    if (level.entries.length === this.#pageEntries) this.#flush(depth, emitted);
    level.entries.push(entry);
    level.chunks += chunks;
    level.bytes += bytes;
  }

  #flush(depth: number, emitted: EncryptedChunk[]): void {
    const level = this.#levels[depth] as Level;
    const page = sealPage({ depth, entries: level.entries }, this.#secret);
    emitted.push(page);
    const { chunks, bytes } = level;
    level.entries = [];
    level.chunks = 0;
    level.bytes = 0;
    this.#push(depth + 1, [page.id, page.key, chunks, bytes], chunks, bytes, emitted);
  }
}
