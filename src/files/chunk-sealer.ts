/**
 * Convergent encryption of a put's chunks on the put thread (put-thread.ts), beside the writer's
 * event loop.
 *
 * The writer's loop is a put's critical path: every chunk is assembled, hashed, encrypted and
 * sent from it. Sealing a 1 MiB chunk (SHA-256 of the plaintext, AES-256-GCM, SHA-256 of the
 * ciphertext) is about 2 CPU-ms, a third of what the loop spent per MiB; on the thread it overlaps
 * with the loop's sends and stores of the chunks before it. The loop copies each plaintext once
 * (its chunker reuses one buffer) and hands the copy and the output buffer over by transfer; the
 * results are taken in the order given, with the same bytes, id and key as sealing in line.
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

  constructor(secret: Uint8Array, chunkBytes: number) {
    this.#secret = new Uint8Array(secret).buffer;
    this.#plainBytes = chunkBytes;
  }

  /**
   * Encrypts `plain` (copied: the caller may reuse it at once) into `out`, which must be a buffer
   * of its own (`Buffer.allocUnsafeSlow`) and is moved to the thread: use the `out` returned.
   */
  async seal(plain: Uint8Array, out: Buffer): Promise<{ chunk: EncryptedChunk; out: Buffer }> {
    if (out.byteOffset !== 0 || out.byteLength !== out.buffer.byteLength) throw new TesseraError('INTERNAL', 'a sealing buffer must own its memory');
    if (plain.length > this.#plainBytes) throw new TesseraError('INTERNAL', `a chunk of ${plain.length} bytes is over the put's ${this.#plainBytes}`);
    const stage = this.#free.pop() ?? new ArrayBuffer(this.#plainBytes);
    new Uint8Array(stage).set(plain);
    const r = await putThread.run({ op: 'seal', plain: stage, len: plain.length, out: out.buffer as ArrayBuffer, secret: this.#secret }, [stage, out.buffer as ArrayBuffer]);
    if (r.op !== 'sealed') throw new TesseraError('INTERNAL', `the put thread answered a seal with ${r.op}`);
    this.#free.push(r.plain);
    if ('error' in r) throw new TesseraError('INTERNAL', `sealing a chunk failed: ${r.error}`);
    const back = Buffer.from(r.out);
    return { chunk: { id: Buffer.from(r.id, 'hex'), key: Buffer.from(r.key, 'hex'), data: back.subarray(0, r.size) }, out: back };
  }
}
