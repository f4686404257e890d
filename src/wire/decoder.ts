/**
 * Streaming frame decoder: socket chunks go in with `push`, whole frames come out of `next`.
 *
 * Pull-based so the consumer can stop taking frames (e.g. when its handlers are saturated, or
 * when the handshake ends and the limits change) without frames piling up in a queue here.
 * A frame that lies inside one chunk is returned as a view of it; one that spans chunks is
 * assembled into a single buffer of exactly its size, so each payload byte is copied at most once.
 */
import { TesseraError } from '../errors.js';
import { POOLED_BODY_MIN_BYTES, takePooledBody } from './body-pool.js';
import { DEFAULT_FRAME_LIMITS, FRAME_HEADER_BYTES, parseFrameHeader, type Frame, type FrameHeader, type FrameLimits } from './frame.js';

/**
 * Bodies smaller than this are copied even when contiguous, so a tiny frame kept by a handler
 * does not pin the whole socket chunk it arrived in.
 */
export const SMALL_BODY_COPY_BYTES = 4096;


export class FrameDecoder {
  private limits: FrameLimits;
  private readonly chunks: Buffer[] = [];
  private head = 0; // index of the first unconsumed chunk
  private offset = 0; // read position inside chunks[head]
  private buffered = 0;
  private readonly headerBuf = Buffer.alloc(FRAME_HEADER_BYTES);
  private header: FrameHeader | undefined;
  private body: Buffer | undefined;
  /** Returns `body` to the pool, if it came from there. */
  private recycleBody: (() => void) | undefined;
  private bodyFill = 0;
  private failure: TesseraError | undefined;

  constructor(limits: FrameLimits = DEFAULT_FRAME_LIMITS) {
    this.limits = limits;
  }

  /** Limits apply to headers read after this call (the handshake uses tighter ones). */
  setLimits(limits: FrameLimits): void {
    this.limits = limits;
  }

  /** Bytes received but not yet returned as frames (including a partly assembled body). */
  get bufferedBytes(): number {
    return this.buffered + this.bodyFill + (this.header === undefined ? 0 : FRAME_HEADER_BYTES);
  }

  push(chunk: Buffer): void {
    if (this.failure) throw this.failure;
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.buffered += chunk.length;
  }

  /** The next whole frame, or undefined until more bytes arrive. Throws BAD_FRAME on a violation, and keeps throwing. */
  next(): Frame | undefined {
    if (this.failure) throw this.failure;
    try {
      return this.step();
    } catch (e) {
      this.failure =
        e instanceof TesseraError ? e : new TesseraError('BAD_FRAME', `frame decoding failed: ${String(e)}`, undefined, { cause: e });
      this.release();
      throw this.failure;
    }
  }

  /** Convenience for tests and simple consumers: push, then take every frame now complete. */
  pushAndDrain(chunk: Buffer): Frame[] {
    this.push(chunk);
    const out: Frame[] = [];
    for (let f = this.next(); f !== undefined; f = this.next()) out.push(f);
    return out;
  }

  private step(): Frame | undefined {
    if (this.header === undefined) {
      if (this.buffered < FRAME_HEADER_BYTES) return undefined;
      const first = this.chunks[this.head]!;
      if (first.length - this.offset >= FRAME_HEADER_BYTES) {
        this.header = parseFrameHeader(first, this.offset, this.limits);
        this.consume(FRAME_HEADER_BYTES);
      } else {
        this.copyOut(this.headerBuf, 0, FRAME_HEADER_BYTES);
        this.header = parseFrameHeader(this.headerBuf, 0, this.limits);
      }
    }
    const h = this.header;
    const len = h.bodyLength;
    let body: Buffer;
    if (this.body === undefined) {
      if (len === 0) {
        body = Buffer.alloc(0);
      } else {
        const first = this.chunks[this.head];
        if (first !== undefined && len >= SMALL_BODY_COPY_BYTES && first.length - this.offset >= len) {
          body = first.subarray(this.offset, this.offset + len);
          this.consume(len);
        } else {
          if (len < SMALL_BODY_COPY_BYTES && this.buffered < len) return undefined;
          if (len >= POOLED_BODY_MIN_BYTES) {
            const pooled = takePooledBody(len);
            this.body = pooled.body;
            this.recycleBody = pooled.recycle;
          } else {
            // allocUnsafeSlow: a big body must not come from (and pin) the shared pool slab.
            this.body = len < SMALL_BODY_COPY_BYTES ? Buffer.allocUnsafe(len) : Buffer.allocUnsafeSlow(len);
          }
          this.bodyFill = 0;
          const n = Math.min(len, this.buffered);
          this.copyOut(this.body, 0, n);
          this.bodyFill = n;
          if (this.bodyFill < len) return undefined;
          body = this.body;
        }
      }
    } else {
      const n = Math.min(len - this.bodyFill, this.buffered);
      this.copyOut(this.body, this.bodyFill, n);
      this.bodyFill += n;
      if (this.bodyFill < len) return undefined;
      body = this.body;
    }
    const recycle = this.recycleBody;
    this.header = undefined;
    this.body = undefined;
    this.recycleBody = undefined;
    this.bodyFill = 0;
    const frame: Frame = {
      kind: h.kind,
      flags: h.flags,
      requestId: h.requestId,
      control: body.subarray(0, h.controlLength),
      payload: body.subarray(h.controlLength),
    };
    if (recycle !== undefined) frame.recycle = recycle;
    return frame;
  }

  /** Copies `n` buffered bytes into target[at..] and consumes them; caller guarantees n <= buffered. */
  private copyOut(target: Buffer, at: number, n: number): void {
    let done = 0;
    while (done < n) {
      const c = this.chunks[this.head]!;
      const take = Math.min(n - done, c.length - this.offset);
      c.copy(target, at + done, this.offset, this.offset + take);
      done += take;
      this.consume(take);
    }
  }

  private consume(n: number): void {
    this.offset += n;
    this.buffered -= n;
    const c = this.chunks[this.head];
    if (c !== undefined && this.offset === c.length) {
      this.chunks[this.head] = EMPTY; // drop the reference now, not at compaction
      this.head++;
      this.offset = 0;
      if (this.head > 64 && this.head * 2 > this.chunks.length) {
        this.chunks.splice(0, this.head);
        this.head = 0;
      }
    }
  }

  private release(): void {
    this.chunks.length = 0;
    this.head = 0;
    this.offset = 0;
    this.buffered = 0;
    this.body = undefined;
    this.recycleBody = undefined;
    this.header = undefined;
  }
}

const EMPTY = Buffer.alloc(0);
