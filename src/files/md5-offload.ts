/**
 * The MD5 of a body (an object's ETag), computed on the put thread (put-thread.ts) while the body
 * streams.
 *
 * A named put hashes its plaintext three times: SHA-256 for the convergent key, SHA-256 of the
 * ciphertext for the chunk id, and MD5 for the ETag. MD5 cannot use the CPU's SHA or AES
 * extensions (≈ 650 MB/s here against > 1.5 GB/s for SHA-256), so on the writer's event loop it
 * took about a fifth of the put's time while the loop is what the put waits on. On the thread it
 * runs beside the loop; the loop only copies each piece into a staging buffer (a memcpy, about
 * a twentieth of the hash's cost) and hands the buffer over without copying it again.
 *
 * Bodies that end before one staging buffer fills are hashed on the calling thread: a small
 * object never waits for a thread. Memory per body is at most MAX_STAGED_BUFFERS + 1 staging
 * buffers of STAGE_BYTES.
 *
 * A put that seals its chunks on the same thread can take the hashing over (`takeOver`): the seal
 * jobs then hash the plaintext stages they carry there anyway, in order with this body's own
 * hand-overs, so the loop's copy into a staging buffer and one message per MiB go away.
 *
 * A body starts in a FIRST_STAGE_BYTES buffer and moves to a full one only when it outgrows it:
 * a 1 MiB buffer per 4 KiB S3 PUT cost the S3 node about a twentieth of its main thread in
 * allocation alone, and its external memory set V8 collecting garbage far more often.
 */
import { createHash } from 'node:crypto';
import { TesseraError } from '../errors.js';
import { putThread, type PutThreadReply } from './put-thread.js';

/** Bytes copied together before the thread sees them: one message per MiB. */
export const STAGE_BYTES = 1 << 20;
/** Staging buffers one body may have at the thread at once; the body waits for one beyond that. */
export const MAX_STAGED_BUFFERS = 4;
/** A body's first staging buffer: small objects (inline ones are at most 8 KiB) stay in it. */
export const FIRST_STAGE_BYTES = 64 << 10;

/**
 * What a put's writer needs to hash a body's plaintext in its seal jobs instead of the body doing
 * it piece by piece (files/writer.ts): the body's MD5 at the put thread, fed in order, then checked.
 */
export interface PlainTap {
  /** From now on the body's bytes are hashed only by seal jobs and `direct`; see OffThreadMd5.takeOver. */
  begin(): { body: number; hashed: number };
  /** A piece no seal job carries, in order with them. */
  direct(piece: Uint8Array): Promise<void>;
  /** Every byte was handed over (the body was read to its end): takes the digest and checks it; rejects on a mismatch. */
  end(): Promise<void>;
  /** The put failed: the thread forgets the MD5. */
  abort(): void;
}

/** One body's MD5: `update` with each piece in order, then `digest` once (or `abort`). */
export class OffThreadMd5 {
  /** Bytes of the body not yet handed over, in the current staging buffer. */
  #stage: Buffer | undefined;
  #fill = 0;
  /** Staging buffers back from the thread. */
  readonly #free: ArrayBuffer[] = [];
  /** Hand-overs not yet answered, oldest first. */
  readonly #out: Promise<PutThreadReply>[] = [];
  #body: number | undefined;
  #done = false;
  /** Bytes taken by `update`. */
  #updated = 0;
  /** Set once `takeOver` has handed the body to seal jobs: `update` is closed to it. */
  #taken = false;

  /** Staging buffers this body holds, at the thread or here: at most MAX_STAGED_BUFFERS + 1. */
  get buffersHeld(): number {
    return this.#out.length + this.#free.length + (this.#stage !== undefined ? 1 : 0);
  }

  /** Bytes of the staging buffer being filled (0 when none). */
  get stageBytes(): number {
    return this.#stage?.length ?? 0;
  }

  /** Takes `piece` (copied: the caller may reuse it); resolves when the body may send more. */
  async update(piece: Uint8Array): Promise<void> {
    if (this.#done) throw new TesseraError('INTERNAL', 'MD5 updated after its digest or abort');
    if (this.#taken) throw new TesseraError('INTERNAL', 'MD5 updated after seal jobs took it over');
    this.#updated += piece.length;
    let at = 0;
    while (at < piece.length) {
      this.#stage ??= this.#body === undefined ? Buffer.allocUnsafeSlow(FIRST_STAGE_BYTES) : Buffer.from(this.#free.pop() ?? new ArrayBuffer(STAGE_BYTES));
      if (this.#fill === this.#stage.length) {
        // Outgrew the first buffer: only full-sized ones go to the thread.
        const full = Buffer.from(new ArrayBuffer(STAGE_BYTES));
        this.#stage.copy(full, 0, 0, this.#fill);
        this.#stage = full;
      }
      const n = Math.min(this.#stage.length - this.#fill, piece.length - at);
      this.#stage.set(piece.subarray(at, at + n), this.#fill);
      this.#fill += n;
      at += n;
      if (this.#fill === STAGE_BYTES) {
        this.#handOver();
        // At most MAX_STAGED_BUFFERS at the thread: the body waits for the oldest to come back.
        if (this.#out.length >= MAX_STAGED_BUFFERS) await this.#takeBack();
      }
    }
  }

  /**
   * Hands the rest of the body to seal jobs (put-thread.ts `seal` with `md5`) and `direct`: what
   * was updated so far goes to the thread now, ahead of them. Returns the number seal jobs name
   * the body by, and how many leading bytes of the body are hashed already (they must not be again).
   */
  takeOver(): { body: number; hashed: number } {
    if (this.#done || this.#taken) throw new TesseraError('INTERNAL', 'MD5 taken over after its digest, abort or another take-over');
    this.#taken = true;
    // Even with nothing staged the body is opened at the thread, so seal jobs find it.
    if (this.#fill > 0 || this.#body === undefined) {
      this.#stage ??= Buffer.alloc(0);
      this.#handOver();
    }
    return { body: this.#body!, hashed: this.#updated };
  }

  /** A piece of a taken-over body that no seal job carries (a chunk sealed in line): copied and sent in order with them. */
  async direct(piece: Uint8Array): Promise<void> {
    if (this.#done || !this.#taken) throw new TesseraError('INTERNAL', 'MD5 fed directly without a take-over, or after its digest');
    this.#stage = Buffer.from(new ArrayBuffer(piece.length));
    this.#stage.set(piece);
    this.#fill = piece.length;
    this.#handOver();
    if (this.#out.length >= MAX_STAGED_BUFFERS) await this.#takeBack();
  }

  /** The MD5 of everything updated. */
  async digest(): Promise<Buffer> {
    if (this.#done) throw new TesseraError('INTERNAL', 'MD5 digest taken twice');
    this.#done = true;
    if (this.#body === undefined) {
      // Never handed over: a body under one staging buffer is hashed here.
      const d = createHash('md5').update(this.#stage?.subarray(0, this.#fill) ?? Buffer.alloc(0)).digest();
      this.#stage = undefined;
      return d;
    }
    if (this.#fill > 0) this.#handOver();
    while (this.#out.length > 0) await this.#takeBack();
    const r = await putThread.run({ op: 'md5-digest', body: this.#body }, []);
    if (r.op !== 'digest') throw new TesseraError('INTERNAL', `the put thread answered a digest with ${r.op}`);
    return Buffer.from(r.digest, 'hex');
  }

  /** Gives up on the body: the thread forgets it once what is out comes back. */
  abort(): void {
    if (this.#done) return;
    this.#done = true;
    this.#stage = undefined;
    const body = this.#body;
    if (body !== undefined) void Promise.allSettled(this.#out).then(() => putThread.tell({ op: 'md5-drop', body }));
  }

  #handOver(): void {
    const stage = this.#stage!;
    const len = this.#fill;
    this.#stage = undefined;
    this.#fill = 0;
    this.#body ??= putThread.newBody();
    const p = putThread.run({ op: 'md5', body: this.#body, buf: stage.buffer as ArrayBuffer, len }, [stage.buffer as ArrayBuffer]);
    p.catch(() => {});
    this.#out.push(p);
  }

  async #takeBack(): Promise<void> {
    const r = await this.#out.shift()!;
    if (r.op !== 'hashed') throw new TesseraError('INTERNAL', `the put thread answered an MD5 update with ${r.op}`);
    if (!this.#done && !this.#taken) this.#free.push(r.buf);
  }
}
