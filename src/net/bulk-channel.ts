/**
 * One bound bulk connection: a plain TCP stream that carries the payloads of transfers its TLS
 * session described. The sender writes `header | bytes` per transfer in transfer-id order; the
 * receiver takes them in that same order and hands out the bytes of a transfer only when they
 * verify against the tag its TLS descriptor carried. Anything out of order, undescribed or not
 * verifying closes the channel: the transfers in flight fail, the TLS connection lives on.
 */
import { createHmac } from 'node:crypto';
import type { Socket } from 'node:net';
import { TesseraError } from '../errors.js';
import { POOLED_BODY_MIN_BYTES, takePooledBody } from '../wire/index.js';
import {
  MAX_TRANSFER_ID, NO_TAG, TRANSFER_HEADER_BYTES, encodeTransferHeader, transferTag,
  type BulkKeys, type Descriptor,
} from './bulk-wire.js';

/** A transfer whose header arrived before its descriptor waits this long for it. */
export const DESCRIPTOR_WAIT_MS = 10_000;

export interface BulkChannelOptions {
  generation: number;
  keys: BulkKeys;
  /** Largest transfer this end accepts. */
  maxTransferBytes: number;
  /** Called once, when the channel closes for any reason. */
  onClose: (why: TesseraError) => void;
}

/** A transfer's verified bytes. */
export interface BulkBytes {
  bytes: Buffer;
  /** Present when `bytes` lie in a pooled buffer: the consumer done with them for good may return it. */
  recycle?: () => void;
}

interface Expected {
  d: Descriptor;
  /** Whether the consumer recycles the bytes, so they may be received into a pooled buffer. */
  pooled: boolean;
  /** Content-addressed: no tag to check; the consumer hashes the bytes against the id it was told. */
  untagged: boolean;
  resolve: (b: BulkBytes) => void;
  reject: (e: TesseraError) => void;
}

/** Keys of one bulk connection: a fresh pair per generation, so transfer ids restart at 1 and never repeat under a key. */
function generationKey(sessionKey: Buffer, generation: number): Buffer {
  return createHmac('sha256', sessionKey).update(`tessera bulk generation ${generation}`).digest();
}

export class BulkChannel {
  readonly generation: number;
  private readonly o: BulkChannelOptions;
  private readonly sendKey: Buffer;
  private readonly receiveKey: Buffer;
  /** Sending is allowed once the acceptor confirmed the binding. */
  private sendable = false;
  private nextSendId = 1;
  private lastDescribedId = 0;
  private readonly expected = new Map<number, Expected>();
  /** Receive state: the header being read, then the body of transfer `current`. */
  private readonly header = Buffer.allocUnsafe(TRANSFER_HEADER_BYTES);
  private headerFill = 0;
  private nextStreamId = 1;
  private current: { id: number; length: number; body: Buffer; fill: number; recycle?: () => void } | undefined;
  /** Bytes that arrived while waiting for a descriptor. */
  private held: Buffer | undefined;
  private waitTimer: NodeJS.Timeout | undefined;
  private closedWith: TesseraError | undefined;

  constructor(readonly socket: Socket, opts: BulkChannelOptions) {
    this.o = opts;
    this.generation = opts.generation;
    this.sendKey = generationKey(opts.keys.send, opts.generation);
    this.receiveKey = generationKey(opts.keys.receive, opts.generation);
    socket.on('close', () => this.close(new TesseraError('UNAVAILABLE', 'bulk connection lost')));
    socket.on('error', () => {});
  }

  get closed(): boolean {
    return this.closedWith !== undefined;
  }

  /** True when the channel can take a transfer to send now. */
  get canSend(): boolean {
    return this.sendable && !this.closed && this.nextSendId < MAX_TRANSFER_ID;
  }

  get needsDrain(): boolean {
    return this.socket.writableNeedDrain;
  }

  markSendable(): void {
    this.sendable = true;
  }

  /**
   * Allocates the transfer and its tag; `send` must follow in the same turn, after its descriptor
   * went out. `untagged`: a content-addressed payload, whose receiver checks it by its hash.
   */
  describe(parts: readonly Buffer[], untagged = false): Descriptor {
    const transferId = this.nextSendId++;
    let length = 0;
    for (const p of parts) length += p.length;
    return { generation: this.generation, transferId, length, tag: untagged ? NO_TAG : transferTag(this.sendKey, transferId, parts) };
  }

  /** header + payload in one writev: no copy of the payload. */
  send(d: Descriptor, parts: readonly Buffer[]): void {
    if (this.closed) return;
    const s = this.socket;
    s.cork();
    s.write(encodeTransferHeader(d.transferId, d.length));
    for (const p of parts) if (p.length > 0) s.write(p);
    s.uncork();
  }

  /**
   * Registers a transfer a TLS frame described; resolves with its bytes once they arrived and
   * verified. Descriptors come in transfer-id order, as the sender allocated them. `pooled`: the
   * consumer will recycle the bytes (see `BulkBytes`). `untagged`: the caller's policy lists the
   * transfer as content-addressed, so its bytes are handed out unchecked, for the consumer to hash.
   */
  expect(d: Descriptor, pooled = false, untagged = false): Promise<BulkBytes> {
    if (this.closedWith) return Promise.reject(this.closedWith);
    if (d.transferId !== this.lastDescribedId + 1) {
      const e = new TesseraError('PROTOCOL', `bulk descriptor names transfer ${d.transferId}, expected ${this.lastDescribedId + 1}`);
      this.close(e);
      return Promise.reject(e);
    }
    if (d.length > this.o.maxTransferBytes) {
      const e = new TesseraError('PROTOCOL', `bulk transfer of ${d.length} bytes exceeds the limit of ${this.o.maxTransferBytes}`);
      this.close(e);
      return Promise.reject(e);
    }
    this.lastDescribedId = d.transferId;
    const p = new Promise<BulkBytes>((resolve, reject) => this.expected.set(d.transferId, { d, pooled, untagged, resolve, reject }));
    if (this.held !== undefined) {
      clearTimeout(this.waitTimer);
      this.waitTimer = undefined;
      const held = this.held;
      this.held = undefined;
      this.socket.resume();
      this.onBytes(held);
    }
    return p;
  }

  /**
   * Where the dialing side's next read lands (`onread`): straight into the transfer being received,
   * so its bytes are never copied, else into `scratch` (headers, and bytes after a transfer's end).
   */
  readTarget(scratch: Buffer): Buffer {
    const c = this.current;
    return c !== undefined && this.held === undefined && !this.closed ? c.body.subarray(c.fill) : scratch;
  }

  /** `n` bytes were read into `buf`, the buffer `readTarget` gave. */
  onRead(n: number, buf: Buffer): void {
    const c = this.current;
    if (c !== undefined && buf.buffer === c.body.buffer && buf.byteOffset === c.body.byteOffset + c.fill) {
      c.fill += n;
      if (c.fill === c.length) this.finish();
      return;
    }
    this.onBytes(buf.subarray(0, n));
  }

  /** Feeds bytes read from the socket; copies what it keeps, so `chunk` may be reused after. */
  onBytes(chunk: Buffer): void {
    let at = 0;
    while (at < chunk.length && !this.closed) {
      if (this.current === undefined) {
        const n = Math.min(TRANSFER_HEADER_BYTES - this.headerFill, chunk.length - at);
        chunk.copy(this.header, this.headerFill, at, at + n);
        this.headerFill += n;
        at += n;
        if (this.headerFill < TRANSFER_HEADER_BYTES) return;
        const id = this.header.readUInt32BE(0);
        const length = this.header.readUInt32BE(4);
        if (id !== this.nextStreamId) return this.close(new TesseraError('PROTOCOL', `bulk stream carries transfer ${id}, expected ${this.nextStreamId}`));
        const e = this.expected.get(id);
        if (e === undefined) {
          // The TLS frame describing it is still on its way: wait for it, reading nothing more.
          if (length > this.o.maxTransferBytes) return this.close(new TesseraError('PROTOCOL', `bulk transfer of ${length} bytes exceeds the limit of ${this.o.maxTransferBytes}`));
          this.held = Buffer.from(chunk.subarray(at));
          this.headerFill = 0;
          this.unreadHeader(id, length);
          return;
        }
        if (e.d.length !== length) return this.close(new TesseraError('PROTOCOL', `bulk transfer ${id} is ${length} bytes, its descriptor said ${e.d.length}`));
        this.headerFill = 0;
        this.nextStreamId++;
        this.current = e.pooled && length >= POOLED_BODY_MIN_BYTES ? { id, length, fill: 0, ...takePooledBody(length) } : { id, length, body: Buffer.allocUnsafe(length), fill: 0 };
        if (length === 0) this.finish();
        continue;
      }
      const c = this.current;
      const n = Math.min(c.length - c.fill, chunk.length - at);
      chunk.copy(c.body, c.fill, at, at + n);
      c.fill += n;
      at += n;
      if (c.fill === c.length) this.finish();
    }
  }

  /** Puts a header back in front of the held bytes, to be read again once its descriptor is in. */
  private unreadHeader(id: number, length: number): void {
    const h = encodeTransferHeader(id, length);
    this.held = this.held!.length > 0 ? Buffer.concat([h, this.held!]) : h;
    this.socket.pause();
    this.waitTimer = setTimeout(() => this.close(new TesseraError('PROTOCOL', `bulk transfer ${id} was never described on the TLS connection`)), DESCRIPTOR_WAIT_MS);
    this.waitTimer.unref();
  }

  private finish(): void {
    const c = this.current!;
    this.current = undefined;
    const e = this.expected.get(c.id)!;
    this.expected.delete(c.id);
    if (!e.untagged && !transferTag(this.receiveKey, c.id, [c.body]).equals(e.d.tag)) {
      const err = new TesseraError('CORRUPT', `bulk transfer ${c.id} does not verify: its bytes were altered on the way; closing the bulk connection`);
      c.recycle?.();
      e.reject(err);
      this.close(err);
      return;
    }
    e.resolve(c.recycle ? { bytes: c.body, recycle: c.recycle } : { bytes: c.body });
  }

  close(why: TesseraError): void {
    if (this.closedWith) return;
    this.closedWith = why;
    clearTimeout(this.waitTimer);
    this.held = undefined;
    this.current = undefined;
    const lost = why.code === 'CORRUPT' ? new TesseraError('UNAVAILABLE', `bulk connection closed: ${why.message}`) : why;
    for (const e of this.expected.values()) e.reject(lost);
    this.expected.clear();
    this.socket.destroy();
    this.o.onClose(why);
  }
}
