/**
 * The contract every chunk engine keeps (DESIGN §3.1, §7): content-addressed, verified on every
 * read, durable when a put resolves, bounded by a quota. The checks every engine shares live here
 * so the engines cannot drift apart on what they accept.
 */
import { createHash } from 'node:crypto';
import { CHUNK_ID_BYTES, MAX_CHUNK_BYTES } from '../limits.js';
import { TesseraError, badInput, corrupt, tooLarge } from '../errors.js';

export interface ChunkStoreUsage {
  /** Bytes of live (not quarantined) chunk data. */
  used: number;
  /** Number of live chunks. */
  count: number;
  /** Configured quota in bytes, Infinity if none. */
  quota: number;
  /** min(quota, free space + used): what this node could hold in total. */
  capacity: number;
}

export interface PutOptions {
  /**
   * The caller computed `id` from these very bytes in this process (a writer storing its own
   * copy), so hashing them again here is skipped. Never set for bytes that came from a peer, a
   * client or a disk: those are verified.
   */
  verified?: boolean;
}

export interface GetOptions {
  /**
   * A buffer the copy may be read into, when it is large enough: the result is then a view of it,
   * valid until the caller reuses the buffer. Lets a reader recycle one buffer per chunk in flight
   * instead of allocating one per read. Engines that do not read from disk may ignore it.
   */
  into?: Buffer;
  /**
   * The caller authenticates the bytes itself (an AEAD tag under a key only it holds), so the
   * engine may hand them out without hashing them first: a read that decrypts would otherwise
   * hash every byte twice over. A caller whose check fails must read again without this option,
   * which verifies the copy and quarantines it when it is bad. Engines may ignore it.
   */
  unverified?: boolean;
}

export interface ChunkStore {
  /**
   * Verifies sha256(data) == id first (CORRUPT if not), unless `opts.verified`. Returns false when
   * the chunk was already there (dedup). Durable when resolved. NO_SPACE when quota/disk would be
   * exceeded, leaving nothing behind. The store keeps its own copy: the caller may reuse `data`
   * afterwards.
   */
  put(id: Buffer, data: Buffer, opts?: PutOptions): Promise<boolean>;
  /**
   * Verifies the id before returning; a mismatch quarantines the copy and throws CORRUPT, so bad
   * bytes are never returned. NOT_FOUND if absent.
   */
  get(id: Buffer, opts?: GetOptions): Promise<Buffer>;
  has(id: Buffer): Promise<boolean>;
  /** True when a live copy was removed. */
  delete(id: Buffer): Promise<boolean>;
  list(): AsyncIterable<Buffer>;
  /**
   * Moves the live copy aside (kept for inspection, no longer served, no longer counted in
   * usage). True when there was a live copy to move. Used by get on a hash mismatch and by scrub.
   */
  quarantine(id: Buffer): Promise<boolean>;
  /** Ids with a quarantined copy. */
  listQuarantined(): AsyncIterable<Buffer>;
  /** Drops a quarantined copy for good (after repair). True when one existed. */
  purgeQuarantined(id: Buffer): Promise<boolean>;
  usage(): ChunkStoreUsage;
  close(): Promise<void>;
}

/** Throws BAD_INPUT unless `id` is a chunk id (32-byte SHA-256). */
export function checkChunkId(id: Buffer): void {
  if (!Buffer.isBuffer(id) || id.length !== CHUNK_ID_BYTES) {
    throw badInput(`chunk id must be ${CHUNK_ID_BYTES} bytes (SHA-256), got ${Buffer.isBuffer(id) ? id.length : typeof id}`);
  }
}

/** Throws TOO_LARGE when a chunk exceeds MAX_CHUNK_BYTES. */
export function checkChunkSize(size: number): void {
  if (size > MAX_CHUNK_BYTES) {
    throw tooLarge(`chunk of ${size} bytes exceeds the ${MAX_CHUNK_BYTES}-byte limit`, { size, limit: MAX_CHUNK_BYTES });
  }
}

export function chunkIdOf(data: Uint8Array): Buffer {
  return createHash('sha256').update(data).digest();
}

/** True when sha256(data) equals id. */
export function matchesId(id: Buffer, data: Uint8Array): boolean {
  return chunkIdOf(data).equals(id);
}

/** The checks a put makes before touching storage: id shape, size, then the hash (unless the caller computed it from these bytes). */
export function checkPut(id: Buffer, data: Buffer, opts?: PutOptions): void {
  checkChunkId(id);
  if (!Buffer.isBuffer(data)) throw badInput('chunk data must be a Buffer');
  checkChunkSize(data.length);
  if (opts?.verified !== true && !matchesId(id, data)) {
    throw corrupt(`chunk data does not hash to its id ${id.toString('hex')}`, { id: id.toString('hex') });
  }
}

/** The error a read reports when a stored copy no longer hashes to its id (it has been quarantined). */
export function corruptChunk(hex: string): TesseraError {
  return corrupt(`stored copy of chunk ${hex} does not match its id (bit rot); it was quarantined, fetch it from another holder`, { id: hex });
}

export function noSpace(message: string, details?: Record<string, unknown>, cause?: unknown): TesseraError {
  return new TesseraError('NO_SPACE', message, details, cause === undefined ? undefined : { cause });
}

/** Parses a quota option: undefined or Infinity means none; otherwise a non-negative safe integer. */
export function normalizeQuota(quota: number | undefined): number {
  if (quota === undefined || quota === Infinity) return Infinity;
  if (!Number.isSafeInteger(quota) || quota < 0) throw badInput(`quota must be a non-negative integer of bytes, got ${quota}`);
  return quota;
}

/**
 * Serialises operations per key so a put, delete or quarantine of one chunk never interleaves
 * with another on the same chunk, while different chunks proceed in parallel.
 */
export class KeyedMutex {
  readonly #tails = new Map<string, Promise<unknown>>();

  run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.#tails.get(key) ?? Promise.resolve();
    const next = prev.then(fn, fn);
    const tail = next.then(
      () => undefined,
      () => undefined,
    );
    this.#tails.set(key, tail);
    void tail.then(() => {
      if (this.#tails.get(key) === tail) this.#tails.delete(key);
    });
    return next;
  }

  /** Resolves when every operation queued so far has settled. */
  async idle(): Promise<void> {
    while (this.#tails.size > 0) await Promise.all([...this.#tails.values()]);
  }
}
