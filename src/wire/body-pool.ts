/**
 * Reusable buffers for large message bodies, shared by the TLS frame decoder and the bulk plane.
 * Bodies at least `POOLED_BODY_MIN_BYTES` long (chunk and shard payloads) are received into pooled
 * buffers when their consumer recycles them: a buffer reused while still in cache takes the copy
 * ~12× faster than a fresh one (0.03 against 0.36 ms per MiB here), and the garbage collector has
 * fewer large buffers to chase.
 */
export const POOLED_BODY_MIN_BYTES = 256 * 1024;
/**
 * Pooled buffers kept per process: enough for a writer's window of chunks in flight to one node
 * (16 by default, files/limits.ts) and a few more. With 8, a node taking a put's copies had about
 * twice that many bodies out between arrival and fsync, so half of them came fresh from the
 * allocator, and receiving into their untouched pages was 3.5 % of its main thread (page faults,
 * perf, 1 GiB put). Taken most recently returned first, so the ones in use stay warm.
 */
export const BODY_POOL_BUFFERS = 20;
/** Bytes the kept buffers may hold together, so larger chunks keep fewer of them (8 MiB chunks: 7). */
export const BODY_POOL_BYTES = 64 << 20;
/** Pooled buffers are sized in these steps, so one buffer serves bodies of nearby sizes. */
const POOL_GRANULE_BYTES = 64 * 1024;

/** Free buffers for large bodies, most recently returned first (the warmest). */
class BodyPool {
  readonly #free: Buffer[] = [];
  #bytes = 0;

  take(len: number): Buffer {
    const size = Math.ceil(len / POOL_GRANULE_BYTES) * POOL_GRANULE_BYTES;
    for (let i = this.#free.length - 1; i >= 0; i--) {
      const b = this.#free[i]!;
      if (b.length === size) {
        this.#free.splice(i, 1);
        this.#bytes -= b.length;
        return b;
      }
    }
    // allocUnsafeSlow: a big body must not come from (and pin) the shared pool slab.
    return Buffer.allocUnsafeSlow(size);
  }

  give(b: Buffer): void {
    this.#free.push(b);
    this.#bytes += b.length;
    while (this.#free.length > BODY_POOL_BUFFERS || this.#bytes > BODY_POOL_BYTES) this.#bytes -= this.#free.shift()!.length;
  }
}

const bodyPool = new BodyPool();

/** A body of exactly `len` bytes in a pooled buffer. */
export interface PooledBody {
  body: Buffer;
  /** Returns the buffer to the pool; only the first call counts. Never calling it is safe. */
  recycle: () => void;
}

export function takePooledBody(len: number): PooledBody {
  const buf = bodyPool.take(len);
  let given = false;
  return {
    body: buf.subarray(0, len),
    recycle: () => {
      if (given) return;
      given = true;
      bodyPool.give(buf);
    },
  };
}
