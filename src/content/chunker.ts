/**
 * Fixed-size chunking of a byte stream. Memory stays at about one chunk whatever the stream's
 * length: bytes are copied into the chunk being filled and handed on as soon as it is full.
 */
import { DEFAULT_CHUNK_BYTES } from '../limits.js';
import { badInput } from '../errors.js';
import { MAX_PLAIN_CHUNK_BYTES } from './crypto.js';

/** Smallest configurable chunk: below this, per-chunk overhead (ids, keys, manifest refs) dominates. */
export const MIN_CHUNK_BYTES = 4 << 10;
/** Largest configurable chunk: its ciphertext plus tag must still fit MAX_CHUNK_BYTES. */
export const MAX_CONFIG_CHUNK_BYTES = MAX_PLAIN_CHUNK_BYTES;

export function checkChunkSize(chunkBytes: number): number {
  if (!Number.isSafeInteger(chunkBytes) || chunkBytes < MIN_CHUNK_BYTES || chunkBytes > MAX_CONFIG_CHUNK_BYTES) {
    throw badInput(`chunk size ${chunkBytes} is out of range; choose a whole number of bytes in ${MIN_CHUNK_BYTES}..${MAX_CONFIG_CHUNK_BYTES}`);
  }
  return chunkBytes;
}

export interface ChunkStreamOptions {
  /**
   * Assemble every chunk in one buffer, reused: a yielded chunk is only valid until the consumer
   * asks for the next one. For consumers that are done with a chunk's plaintext before they move
   * on (the writer encrypts it at once); saves a chunk-sized allocation per chunk.
   */
  reuse?: boolean;
  /**
   * Where each chunk is assembled: a buffer of at least `chunkBytes` the consumer owns once the
   * chunk is yielded (it may move the memory elsewhere, e.g. to a worker thread, without a copy).
   * Takes precedence over `reuse`.
   */
  alloc?: () => Buffer;
}

/**
 * Yields chunks of exactly `chunkBytes`, the last one shorter; an empty stream yields nothing.
 * Each yielded Buffer is the consumer's to keep, unless `opts.reuse`. When an input piece holds a
 * whole chunk at a chunk boundary it is passed on without copying (a subarray of the input).
 */
export async function* chunkStream(
  source: AsyncIterable<unknown> | Iterable<unknown>,
  chunkBytes: number = DEFAULT_CHUNK_BYTES,
  opts: ChunkStreamOptions = {},
): AsyncGenerator<Buffer, void, undefined> {
  checkChunkSize(chunkBytes);
  let spare: Buffer | undefined;
  let pending: Buffer | undefined;
  let filled = 0;
  for await (const piece of source) {
    if (!(piece instanceof Uint8Array)) {
      throw badInput('chunker input must be a byte stream (Buffer or Uint8Array pieces); open the stream without an encoding');
    }
    const bytes = Buffer.isBuffer(piece) ? piece : Buffer.from(piece.buffer, piece.byteOffset, piece.byteLength);
    let at = 0;
    // Each pass consumes at least one byte or yields a chunk, so this ends within bytes.length passes.
    while (at < bytes.length) {
      if (pending === undefined && bytes.length - at >= chunkBytes) {
        yield bytes.subarray(at, at + chunkBytes);
        at += chunkBytes;
        continue;
      }
      if (pending === undefined) {
        pending = opts.alloc?.() ?? spare ?? Buffer.allocUnsafeSlow(chunkBytes);
        spare = undefined;
      }
      const n = bytes.copy(pending, filled, at, Math.min(bytes.length, at + chunkBytes - filled));
      filled += n;
      at += n;
      if (filled === chunkBytes) {
        const full = pending;
        pending = undefined;
        filled = 0;
        yield full.length === chunkBytes ? full : full.subarray(0, chunkBytes);
        // The consumer asked for the next chunk, so it is done with this one.
        if (opts.reuse === true && opts.alloc === undefined) spare = full;
      }
    }
  }
  if (pending !== undefined && filled > 0) yield pending.subarray(0, filled);
}
