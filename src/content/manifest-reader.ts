/**
 * Reads a manifest tree from its root, fetching only the pages a byte range needs. At most one
 * page per level is held at a time, and every page is checked against what its parent claims,
 * so a damaged or malicious manifest fails with CORRUPT instead of yielding wrong chunks.
 */
import { CHUNK_ID_BYTES } from '../limits.js';
import { badInput, corrupt } from '../errors.js';
import { KEY_BYTES } from './crypto.js';
import { parseFileId, type FileId } from './ids.js';
import { openPage, type ChunkRef, type DecodedPage, type ManifestInfo } from './manifest.js';

/** Returns the stored bytes of a chunk or page by id; the reader verifies them. */
export type FetchChunk = (id: Buffer) => Promise<Uint8Array>;

export interface LocatedChunkRef extends ChunkRef {
  /** Position of the chunk in the file, from 0. */
  readonly index: number;
  /** Byte offset of the chunk's first byte in the file. */
  readonly offset: number;
}

export interface ManifestPageId {
  readonly id: Buffer;
  readonly depth: number;
}

export class ManifestReader {
  readonly info: ManifestInfo;
  readonly rootId: Buffer;
  /** An ordinary file is stitched from no other files (see CompositeReader). */
  readonly parts: readonly never[] = [];
  readonly #root: DecodedPage;
  readonly #fetch: FetchChunk;

  private constructor(rootId: Buffer, root: DecodedPage, info: ManifestInfo, fetch: FetchChunk) {
    this.rootId = rootId;
    this.#root = root;
    this.info = info;
    this.#fetch = fetch;
  }

  /** Fetches, verifies and decodes the root page named by a file id. */
  static async open(fileId: FileId | string, fetch: FetchChunk): Promise<ManifestReader> {
    const { rootId, rootKey } = typeof fileId === 'string' ? parseFileId(fileId) : fileId;
    if (rootId.length !== CHUNK_ID_BYTES || rootKey.length !== KEY_BYTES) throw badInput('file id has a bad root id or key length');
    return ManifestReader.fromRoot(Buffer.from(rootId), openPage(await fetch(Buffer.from(rootId)), rootId, rootKey, true), fetch);
  }

  /** Opens a tree whose root page was already fetched and decoded (by openFileManifest). */
  static fromRoot(rootId: Buffer, root: DecodedPage, fetch: FetchChunk): ManifestReader {
    if (root.info === undefined) throw corrupt('manifest root page carries no file information');
    const info = root.info;
    const counted = sumEntries(root);
    if (counted.chunks !== info.chunkCount || counted.bytes !== info.fileSize) {
      throw corrupt(
        `manifest root lists ${counted.chunks} chunks / ${counted.bytes} bytes but claims ${info.chunkCount} / ${info.fileSize}`,
      );
    }
    return new ManifestReader(rootId, root, info, fetch);
  }

  /**
   * Yields, in order, the chunks overlapping bytes [start, end) of the file (the whole file by
   * default), each with its index and offset. Pages outside the range are never fetched.
   */
  async *refs(start = 0, end = this.info.fileSize): AsyncGenerator<LocatedChunkRef, void, undefined> {
    const size = this.info.fileSize;
    if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || end < start || end > size) {
      throw badInput(`byte range ${start}-${end} is outside the file's ${size} bytes`);
    }
    if (start === end) return;
    yield* this.#walk(this.#root, 0, 0, start, end);
  }

  /** Every manifest page below the root, top-down (for reference counting, repair and delete). */
  async *pages(): AsyncGenerator<ManifestPageId, void, undefined> {
    yield* this.#walkPages(this.#root);
  }

  async *#walk(page: DecodedPage, index: number, offset: number, start: number, end: number): AsyncGenerator<LocatedChunkRef> {
    const chunkSize = this.info.chunkSize;
    const fileSize = this.info.fileSize;
    if (page.depth === 0) {
      for (const [id, key, size] of page.chunkEntries) {
        // Fixed-size chunking: every chunk but the file's last is full.
        if (size !== chunkSize && offset + size !== fileSize) {
          throw corrupt(`manifest lists chunk ${index} of ${size} bytes in a file of ${chunkSize}-byte chunks`);
        }
        if (offset >= end) return;
        if (offset + size > start) yield { id, key, size, index, offset };
        index++;
        offset += size;
      }
      return;
    }
    for (const [id, key, chunks, bytes] of page.pageEntries) {
      if (offset >= end) return;
      if (offset + bytes > start) {
        const child = openPage(await this.#fetch(Buffer.from(id)), id, key, false);
        checkChild(child, page.depth, chunks, bytes);
        yield* this.#walk(child, index, offset, start, end);
      }
      index += chunks;
      offset += bytes;
    }
  }

  async *#walkPages(page: DecodedPage): AsyncGenerator<ManifestPageId> {
    if (page.depth === 0) return;
    for (const [id, key, chunks, bytes] of page.pageEntries) {
      yield { id, depth: page.depth - 1 };
      if (page.depth === 1) continue;
      const child = openPage(await this.#fetch(Buffer.from(id)), id, key, false);
      checkChild(child, page.depth, chunks, bytes);
      yield* this.#walkPages(child);
    }
  }
}

function sumEntries(page: DecodedPage): { chunks: number; bytes: number } {
  if (page.depth === 0) {
    let bytes = 0;
    for (const entry of page.chunkEntries) bytes += entry[2];
    return { chunks: page.chunkEntries.length, bytes };
  }
  let chunks = 0;
  let bytes = 0;
  for (const entry of page.pageEntries) {
    chunks += entry[2];
    bytes += entry[3];
  }
  return { chunks, bytes };
}

function checkChild(child: DecodedPage, parentDepth: number, chunks: number, bytes: number): void {
  if (child.depth !== parentDepth - 1) {
    throw corrupt(`manifest page at depth ${child.depth} sits under a page at depth ${parentDepth}`);
  }
  const counted = sumEntries(child);
  if (counted.chunks !== chunks || counted.bytes !== bytes) {
    throw corrupt(`manifest page lists ${counted.chunks} chunks / ${counted.bytes} bytes but its parent claims ${chunks} / ${bytes}`);
  }
}
