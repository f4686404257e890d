/**
 * Convergent encryption of a put's chunks on the put thread (put-thread.ts), beside the writer's
 * event loop.
 *
 * The writer's loop is a put's critical path: every chunk is assembled, hashed, encrypted and
 * sent from it. Sealing a 1 MiB chunk (SHA-256 of the plaintext, AES-256-GCM, SHA-256 of the
 * ciphertext) is about 2 CPU-ms, a third of what the loop spent per MiB; on the thread it overlaps
 * with the loop's sends and stores of the chunks before it. The loop's chunker assembles each
 * plaintext in a stage buffer of the sealer's (`stage`), which goes to the thread with the output
 * buffer by transfer, so the plaintext is copied once, from the body into the stage; the results
 * are taken in the order given, with the same bytes, id and key as sealing in line.
 *
 * Bounds: the writer has at most SEAL_AHEAD chunks at the thread; a put's memory grows by that
 * many plaintext and ciphertext buffers.
 */
import { TesseraError } from '../errors.js';
import type { EncryptedChunk } from '../content/index.js';
import { putThread } from './put-thread.js';

/** Chunks of one put at the thread at once: enough to keep it busy while the loop sends. */
export const SEAL_AHEAD = 2;
/**
 * Smaller chunks are sealed in line when none of the put's is at the thread (a small file's only
 * chunk): the round trip would cost more than the sealing. Behind chunks at the thread, a small
 * one goes there too, so the put's chunks stay in order.
 */
export const SEAL_OFFLOAD_MIN_BYTES = 256 << 10;

/** Seals one put's chunks; one per put, as it keeps that put's plaintext buffers. */
export class ChunkSealer {
  readonly #secret: ArrayBuffer;
  readonly #plainBytes: number;
  /** Plaintext buffers back from the thread, for the next chunks. */
  readonly #free: ArrayBuffer[] = [];
  /** Stages out with the chunker, not yet sealed or released. */
  readonly #staged = new WeakSet<ArrayBuffer>();

  constructor(secret: Uint8Array, chunkBytes: number) {
    this.#secret = new Uint8Array(secret).buffer;
    this.#plainBytes = chunkBytes;
  }

  /**
   * A buffer to assemble the next plaintext in (the chunker's `alloc`): sealed from there, a chunk
   * moves to the thread without the copy `seal` makes. Give it to `seal`, or back with `release`.
   */
  stage(): Buffer {
    const b = this.#free.pop() ?? new ArrayBuffer(this.#plainBytes);
    this.#staged.add(b);
    return Buffer.from(b);
  }

  /** Takes back a stage that was not sealed (a chunk sealed in line); anything else is left alone. */
  release(plain: Uint8Array): void {
    if (this.#isStage(plain)) {
      this.#staged.delete(plain.buffer as ArrayBuffer);
      this.#free.push(plain.buffer as ArrayBuffer);
    }
  }

  /** Only memory `stage` handed out is ever moved or reused: a caller's buffer never is. */
  #isStage(plain: Uint8Array): boolean {
    return plain.byteOffset === 0 && plain.buffer instanceof ArrayBuffer && this.#staged.has(plain.buffer);
  }

  /**
   * Encrypts `plain` into `out`, which must be a buffer of its own (`Buffer.allocUnsafeSlow`) and
   * is moved to the thread: use the `out` returned. A `plain` from `stage()` moves too, and is
   * the sealer's again; any other is copied, and the caller may reuse it at once. `md5`: the
   * plaintext from byte `from` on also goes into that MD5 at the thread (md5-offload.ts `takeOver`).
   */
  async seal(plain: Uint8Array, out: Buffer, md5?: { body: number; from: number }): Promise<{ chunk: EncryptedChunk; out: Buffer }> {
    if (out.byteOffset !== 0 || out.byteLength !== out.buffer.byteLength) throw new TesseraError('INTERNAL', 'a sealing buffer must own its memory');
    if (plain.length > this.#plainBytes) throw new TesseraError('INTERNAL', `a chunk of ${plain.length} bytes is over the put's ${this.#plainBytes}`);
    let stage: ArrayBuffer;
    if (this.#isStage(plain)) {
      stage = plain.buffer as ArrayBuffer;
      this.#staged.delete(stage);
    } else {
      stage = this.#free.pop() ?? new ArrayBuffer(this.#plainBytes);
      new Uint8Array(stage).set(plain);
    }
    if (md5 !== undefined && !(Number.isInteger(md5.from) && md5.from >= 0 && md5.from < plain.length)) throw new TesseraError('INTERNAL', `MD5 from byte ${md5.from} of a ${plain.length}-byte chunk`);
    const r = await putThread.run({ op: 'seal', plain: stage, len: plain.length, out: out.buffer as ArrayBuffer, secret: this.#secret, ...(md5 !== undefined ? { md5 } : {}) }, [stage, out.buffer as ArrayBuffer]);
    if (r.op !== 'sealed') throw new TesseraError('INTERNAL', `the put thread answered a seal with ${r.op}`);
    this.#free.push(r.plain);
    if ('error' in r) throw new TesseraError('INTERNAL', `sealing a chunk failed: ${r.error}`);
    const back = Buffer.from(r.out);
    return { chunk: { id: Buffer.from(r.id, 'hex'), key: Buffer.from(r.key, 'hex'), data: back.subarray(0, r.size) }, out: back };
  }
}
