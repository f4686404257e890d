import type { Socket } from 'node:net';
import { TesseraError } from '../../errors.js';

/**
 * Exact-length reads from a socket with bounded buffering. Data beyond `highWaterBytes` that
 * nobody asked for pauses the socket, so a client that sends faster than we serve is held back
 * by TCP rather than by our memory.
 */
export class SocketReader {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private waiter: Waiter | null = null;
  private failure: Error | null = null;
  private paused = false;
  // Listeners of different shapes, kept so detach() removes exactly these.
  private readonly handlers: Array<[string, (...args: any[]) => void]>;

  constructor(
    private readonly socket: Socket,
    private readonly highWaterBytes: number,
  ) {
    this.handlers = [
      ['data', (chunk: Buffer) => {
        this.chunks.push(chunk);
        this.buffered += chunk.length;
        this.pump();
      }],
      ['end', () => this.fail(new TesseraError('UNAVAILABLE', 'NBD client closed the connection'))],
      ['close', () => this.fail(new TesseraError('UNAVAILABLE', 'NBD connection closed'))],
      ['error', (err: Error) => this.fail(new TesseraError('UNAVAILABLE', `NBD socket error: ${err.message}`, undefined, { cause: err }))],
    ];
    for (const [event, fn] of this.handlers) socket.on(event, fn);
  }

  /**
   * Stops reading the socket so another layer (TLS) can take it over. Returns the bytes received
   * and not consumed: after NBD_OPT_STARTTLS there must be none, or the client spoke too early.
   */
  detach(): number {
    for (const [event, fn] of this.handlers) this.socket.off(event, fn);
    if (this.paused) this.socket.resume();
    return this.buffered;
  }

  /** Bytes received and not yet consumed. */
  get bufferedBytes(): number {
    return this.buffered;
  }

  /** Resolves with exactly `n` bytes; rejects if the connection ends first. */
  read(n: number): Promise<Buffer> {
    if (this.waiter) return Promise.reject(new TesseraError('INTERNAL', 'concurrent reads on one NBD socket'));
    if (n === 0) return Promise.resolve(Buffer.alloc(0));
    if (this.buffered >= n) return Promise.resolve(this.take(n));
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      this.waiter = { kind: 'read', n, resolve, reject };
      this.pump();
    });
  }

  /** Discards exactly `n` bytes without holding more than one socket chunk at a time. */
  skip(n: number): Promise<void> {
    if (this.waiter) return Promise.reject(new TesseraError('INTERNAL', 'concurrent reads on one NBD socket'));
    return new Promise((resolve, reject) => {
      this.waiter = { kind: 'skip', remaining: n, resolve: () => resolve(), reject };
      this.pump();
    });
  }

  private pump(): void {
    const w = this.waiter;
    if (w) {
      if (w.kind === 'read' && this.buffered >= w.n) {
        this.waiter = null;
        w.resolve(this.take(w.n));
      } else if (w.kind === 'skip') {
        this.discard(Math.min(w.remaining, this.buffered), w);
        if (w.remaining === 0) {
          this.waiter = null;
          w.resolve();
        }
      }
    }
    if (this.waiter && this.failure) {
      const pending = this.waiter;
      this.waiter = null;
      pending.reject(this.failure);
    }
    const wantMore = this.waiter !== null;
    if (!wantMore && this.buffered >= this.highWaterBytes) {
      if (!this.paused) {
        this.paused = true;
        this.socket.pause();
      }
    } else if (this.paused) {
      this.paused = false;
      this.socket.resume();
    }
  }

  private take(n: number): Buffer {
    const first = this.chunks[0]!;
    let out: Buffer;
    if (first.length >= n) {
      // Socket chunks are fresh allocations, so handing out a view is safe and saves a copy.
      out = first.subarray(0, n);
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
    } else {
      out = Buffer.allocUnsafe(n);
      let filled = 0;
      while (filled < n) {
        const c = this.chunks[0]!;
        const k = Math.min(c.length, n - filled);
        c.copy(out, filled, 0, k);
        filled += k;
        if (k === c.length) this.chunks.shift();
        else this.chunks[0] = c.subarray(k);
      }
    }
    this.buffered -= n;
    queueMicrotask(() => this.pump());
    return out;
  }

  private discard(n: number, w: SkipWaiter): void {
    let left = n;
    while (left > 0) {
      const c = this.chunks[0]!;
      if (c.length <= left) {
        this.chunks.shift();
        left -= c.length;
      } else {
        this.chunks[0] = c.subarray(left);
        left = 0;
      }
    }
    this.buffered -= n;
    w.remaining -= n;
  }

  private fail(err: Error): void {
    if (!this.failure) this.failure = err;
    this.pump();
  }
}

interface ReadWaiter {
  kind: 'read';
  n: number;
  resolve: (b: Buffer) => void;
  reject: (e: Error) => void;
}
interface SkipWaiter {
  kind: 'skip';
  remaining: number;
  resolve: () => void;
  reject: (e: Error) => void;
}
type Waiter = ReadWaiter | SkipWaiter;
