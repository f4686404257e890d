/**
 * Chunk-sized buffers a read decrypts into and reads local copies into, kept for the next chunk.
 * A node keeps one pair of pools for all its reads: a client that downloads a large object in
 * ranges (aws-cli: 8 MiB, 10 at once) starts a read per range, and a read's own free list ended
 * with it, so every chunk landed in a fresh buffer (its allocation, the GC work it brings and
 * memory cold in the CPU's cache: on a 1 GiB ranged GET the serving node spent about 1.8× the
 * CPU per MiB of one plain get).
 *
 * A buffer handed out belongs to one read until it gives it back; one given back while still in
 * use would carry one request's plaintext into another's, so a second give of a buffer already
 * free is refused loudly.
 */
import { TesseraError } from '../errors.js';

/** A free list bounded by count and by bytes; one too small for a request is dropped. LIFO, so the warmest buffer goes out first. */
export class Spares {
  readonly #free: Buffer[] = [];
  #bytes = 0;
  constructor(readonly maxBuffers: number, readonly maxBytes = Number.POSITIVE_INFINITY) {}

  take(bytes: number): Buffer {
    const b = this.#free.pop();
    if (b === undefined) return Buffer.allocUnsafeSlow(bytes);
    this.#bytes -= b.length;
    return b.length >= bytes ? b : Buffer.allocUnsafeSlow(bytes);
  }

  give(b: Buffer): void {
    if (this.#free.length >= this.maxBuffers || this.#bytes + b.length > this.maxBytes) return;
    if (this.#free.includes(b)) throw new TesseraError('INTERNAL', 'a read buffer was given back twice');
    this.#free.push(b);
    this.#bytes += b.length;
  }

  /** Buffers and bytes kept now (for tests of the bounds). */
  get held(): { buffers: number; bytes: number } {
    return { buffers: this.#free.length, bytes: this.#bytes };
  }
}

/** The two free lists a read uses: stored (encrypted) copies read from the local store, and plaintext. */
export interface ReadBuffers {
  readonly cipher: Spares;
  readonly plain: Spares;
}

/**
 * Buffers of each kind a node keeps between reads, and the bytes they may hold: enough for the
 * chunks ten ranged GETs of 8 MiB pass from one to the next, while idle memory stays bounded.
 */
export const POOLED_READ_BUFFERS = 24;
export const POOLED_READ_BYTES = 24 << 20;

export function nodeReadBuffers(): ReadBuffers {
  return { cipher: new Spares(POOLED_READ_BUFFERS, POOLED_READ_BYTES), plain: new Spares(POOLED_READ_BUFFERS, POOLED_READ_BYTES) };
}
