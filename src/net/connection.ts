/**
 * One authenticated connection carrying multiplexed requests in both directions. The dialer
 * numbers its requests with odd ids and the acceptor with even ones, so ids never collide.
 */
import type { TLSSocket } from 'node:tls';
import { TesseraError } from '../errors.js';
import type { Logger } from '../log.js';
import { FRAME_KIND_NAMES, FrameFlag, FrameKind, decodeControl, decodeControlUnknown, encodeControl, encodeFrame, payloadLength, type Frame, type FrameDecoder } from '../wire/index.js';
import type { BulkBytes, BulkChannel } from './bulk-channel.js';
import { encodeDescriptor, parseDescriptor, type Descriptor } from './bulk-wire.js';
import { checkRequestControl, checkResponseControl, errorControl, toErrorCode, truncateMessage } from './messages.js';
import { Semaphore } from './semaphore.js';
import { unlessAborted } from './abortable.js';
import type { CallOptions, PeerHello, Reply, RequestHandler, Role, TransportCounters } from './types.js';

export const DEFAULT_MAX_IN_FLIGHT = 64;
export const DEFAULT_MAX_INBOUND_HANDLERS = 32;
/** Inbound requests waiting for a handler slot; beyond it the socket stops being read. */
export const DEFAULT_MAX_QUEUED_INBOUND = 256;
/** Bytes of queued inbound requests (payloads included) before the socket stops being read. */
export const DEFAULT_MAX_QUEUED_INBOUND_BYTES = 64 << 20;
export const DEFAULT_CALL_TIMEOUT_MS = 30_000;

export interface ConnectionOptions {
  role: Role;
  peer: PeerHello;
  handler: RequestHandler;
  logger: Logger;
  counters: TransportCounters;
  maxInFlight: number;
  maxInboundHandlers: number;
  maxQueuedInbound: number;
  maxQueuedInboundBytes: number;
  defaultTimeoutMs: number;
  /** Largest payload a method accepts; a request over it is a violation. Default: the frame limit. */
  maxPayloadBytesFor?: (method: string) => number;
  /** Which payloads may travel on the bulk plane; without it none do. */
  bulk?: BulkPolicy;
  /** The peer takes content-addressed payloads untagged (BULK_CONTENT_CAPABILITY). */
  bulkUntagged?: boolean;
}

/**
 * Methods whose payloads are already ciphertext with their own authentication (chunks, sealed
 * volume sectors): only these may leave the TLS connection. Payloads under `minBytes` stay on TLS,
 * where they cost less than a second write.
 */
export interface BulkPolicy {
  requests: ReadonlySet<string>;
  replies: ReadonlySet<string>;
  /**
   * Request methods whose payload is content-addressed: the handler hashes it against an id the
   * control message names before it keeps or uses a byte (chunk.put). With a peer that offers
   * BULK_CONTENT_CAPABILITY they go without a tag; the hash is the check, and a second one (GMAC,
   * about 0.3 CPU-ms per MiB on each end) would only repeat it.
   */
  contentAddressed: ReadonlySet<string>;
  minBytes: number;
  maxTransferBytes: number;
}

interface Pending {
  method: string;
  resolve: (r: { body: unknown; payload: Buffer }) => void;
  reject: (e: TesseraError) => void;
}

interface Inbound {
  /** Made on first use: most handlers never look at their signal, and each costs an EventTarget. */
  controller: AbortController | undefined;
  /** Set once, when the caller cancelled or the connection died. */
  cancelled: TesseraError | undefined;
  /** The payload, when it travels on the bulk plane: resolves once it arrived and verified. */
  bulk?: Promise<BulkBytes>;
  bulkBytes?: number;
}

const ignore = () => {};

function inboundSignal(s: Inbound): AbortSignal {
  if (s.controller === undefined) {
    s.controller = new AbortController();
    if (s.cancelled) s.controller.abort(s.cancelled);
  }
  return s.controller.signal;
}

function cancelInbound(s: Inbound, reason: TesseraError): void {
  if (s.cancelled) return;
  s.cancelled = reason;
  s.controller?.abort(reason);
}

const MAX_ID = 0xffff_ffff;

export class RpcConnection {
  readonly peer: PeerHello;
  readonly role: Role;
  private readonly socket: TLSSocket;
  private readonly decoder: FrameDecoder;
  private readonly opts: ConnectionOptions;
  private readonly log: Logger;
  private readonly slots: Semaphore;
  private readonly pending = new Map<number, Pending>();
  private readonly inbound = new Map<number, Inbound>();
  private readonly queued: Frame[] = [];
  private queuedBytes = 0;
  private running = 0;
  private nextId: number;
  private readPaused = false;
  private closedError: TesseraError | undefined;
  private drainWaiters: Array<() => void> = [];
  private corked = false;
  private readonly closeListeners: Array<(c: RpcConnection) => void> = [];
  private retireTimer: NodeJS.Timeout | undefined;
  private retiring = false;
  private bulkChannel: BulkChannel | undefined;
  private bulkSends: Array<{ ch: BulkChannel; d: Descriptor; parts: readonly Buffer[] }> = [];

  constructor(socket: TLSSocket, decoder: FrameDecoder, opts: ConnectionOptions) {
    this.socket = socket;
    this.decoder = decoder;
    this.opts = opts;
    this.peer = opts.peer;
    this.role = opts.role;
    this.log = opts.logger;
    this.slots = new Semaphore(opts.maxInFlight);
    this.nextId = opts.role === 'dialer' ? 1 : 2;
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('drain', () => this.flushDrainWaiters());
    socket.on('error', (e) => this.log.debug({ peer: this.peer.nodeId, err: e.message }, 'connection error'));
    socket.on('close', () => this.onClosed());
    socket.setNoDelay(true);
    // Frames that arrived with the hello are already buffered in the decoder.
    this.pump();
    socket.resume();
  }

  get closed(): boolean {
    return this.closedError !== undefined;
  }

  /** Requests in progress in either direction. */
  get activeCount(): number {
    return this.pending.size + this.running + this.queued.length;
  }

  get inFlight(): number {
    return this.slots.inUse;
  }

  /** Both ends offered the bulk plane. */
  get peerUsesBulk(): boolean {
    return this.opts.bulk !== undefined;
  }

  get bulk(): BulkChannel | undefined {
    return this.bulkChannel;
  }

  /** Receives on `ch` at once; sends on it once the channel says it may. */
  attachBulk(ch: BulkChannel): void {
    if (this.closed) return void ch.close(new TesseraError('UNAVAILABLE', 'its TLS connection closed'));
    const old = this.bulkChannel;
    this.bulkChannel = ch;
    ch.socket.on('drain', () => this.flushDrainWaiters());
    old?.close(new TesseraError('UNAVAILABLE', 'replaced by a newer bulk connection'));
  }

  detachBulk(ch: BulkChannel): void {
    if (this.bulkChannel === ch) this.bulkChannel = undefined;
  }

  onClose(cb: (c: RpcConnection) => void): void {
    if (this.closed) queueMicrotask(() => cb(this));
    else this.closeListeners.push(cb);
  }

  async call(method: string, body: unknown, payload: Buffer | Buffer[] | undefined, opts: CallOptions = {}): Promise<{ body: unknown; payload: Buffer }> {
    const timeoutMs = opts.timeoutMs ?? this.opts.defaultTimeoutMs;
    const control = encodeControl({ m: method, b: body });
    // No AbortController unless the call has to queue: an EventTarget per call was 4 % of a
    // volume master's CPU under small block I/O. `end` reaches whichever stage the call is in.
    let ended: TesseraError | undefined;
    let queued: AbortController | undefined;
    let abandon: (() => void) | undefined;
    const end = (err: TesseraError) => {
      if (ended) return;
      ended = err;
      queued?.abort(err);
      abandon?.();
    };
    const queueSignal = (): AbortSignal => {
      queued = new AbortController();
      if (ended) queued.abort(ended);
      return queued.signal;
    };
    const timer = setTimeout(() => end(new TesseraError('TIMEOUT', `call ${method} to ${this.describePeer()} timed out after ${timeoutMs} ms`)), timeoutMs);
    const onCallerAbort = () =>
      end(new TesseraError('CANCELLED', `call ${method} to ${this.describePeer()} was cancelled${reasonSuffix(opts.signal?.reason)}`));
    if (opts.signal?.aborted) onCallerAbort();
    else opts.signal?.addEventListener('abort', onCallerAbort, { once: true });
    let holding = false;
    try {
      this.throwIfClosed();
      if (ended) throw ended;
      if (!this.slots.tryAcquire()) await this.slots.acquire(queueSignal());
      holding = true;
      this.throwIfClosed();
      await this.waitWritable(queueSignal);
      if (ended) throw ended;
      const id = this.allocateId();
      const result = new Promise<{ body: unknown; payload: Buffer }>((resolve, reject) => {
        this.pending.set(id, { method, resolve, reject });
        abandon = () => {
          if (!this.pending.delete(id)) return;
          this.sendNow(FrameKind.CANCEL, id, undefined);
          reject(ended);
        };
      });
      try {
        const bulk = this.bulkFor(this.opts.bulk?.requests, method, payload);
        if (bulk) this.writeBulk(bulk, FrameKind.REQUEST, id, control, payload!, this.untagged(method));
        else this.write(encodeFrame(FrameKind.REQUEST, id, control, payload));
      } catch (e) {
        this.pending.delete(id);
        throw e;
      }
      const r = await result;
      this.opts.counters.callsOk++;
      return r;
    } catch (e) {
      const err = e instanceof TesseraError ? e : new TesseraError('INTERNAL', `call ${method} failed: ${String(e)}`, undefined, { cause: e });
      this.countFailure(err);
      throw err;
    } finally {
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onCallerAbort);
      if (holding) this.slots.release();
      this.maybeRetireClose();
    }
  }

  /** Close now; pending calls fail with UNAVAILABLE. */
  close(reason = 'closed locally'): void {
    if (!this.closed) this.closedError = new TesseraError('UNAVAILABLE', `connection to ${this.describePeer()} ${reason}`);
    this.socket.destroy();
  }

  /** Stop choosing this connection; close it once both directions are idle. */
  retire(): void {
    this.retiring = true;
    this.maybeRetireClose();
  }

  private maybeRetireClose(): void {
    if (!this.retiring || this.closed || this.activeCount > 0 || this.retireTimer) return;
    // A grace period lets requests the peer sent before it retired this connection arrive.
    this.retireTimer = setTimeout(() => {
      this.retireTimer = undefined;
      if (this.activeCount === 0) this.close('retired in favour of another connection to the same peer');
    }, RETIRE_GRACE_MS);
    this.retireTimer.unref();
  }

  private describePeer(): string {
    return `${this.peer.nodeId.slice(0, 12)}@${this.peer.listenAddr || this.socket.remoteAddress}`;
  }

  private countFailure(err: TesseraError): void {
    const c = this.opts.counters;
    if (err.code === 'TIMEOUT') c.callsTimedOut++;
    else if (err.code === 'CANCELLED') c.callsCancelled++;
    else if (err.code === 'UNAVAILABLE') c.callsUnavailable++;
    else c.callsFailed++;
  }

  private bulkFor(methods: ReadonlySet<string> | undefined, method: string, payload: Buffer | readonly Buffer[] | undefined): BulkChannel | undefined {
    const ch = this.bulkChannel;
    if (ch === undefined || !ch.canSend || methods === undefined || !methods.has(method)) return undefined;
    const n = payloadLength(payload);
    return n >= this.opts.bulk!.minBytes && n <= this.opts.bulk!.maxTransferBytes ? ch : undefined;
  }

  /** Whether a request of `method` carries its bulk payload without a tag, on this connection. */
  private untagged(method: string): boolean {
    return this.opts.bulkUntagged === true && this.opts.bulk?.contentAddressed.has(method) === true;
  }

  /** The frame on TLS names the transfer and carries its tag; the bytes follow on the bulk connection. */
  private writeBulk(ch: BulkChannel, kind: FrameKind, id: number, control: Buffer, payload: Buffer | readonly Buffer[], untagged = false): void {
    const parts = Buffer.isBuffer(payload) ? [payload] : payload;
    const d = ch.describe(parts, untagged);
    this.write(encodeFrame(kind, id, control, encodeDescriptor(d), undefined, FrameFlag.BULK));
    // The bytes leave right after the TLS frames of this turn, so their descriptors are usually
    // in before them and the receiver need not stop reading to wait for one.
    this.bulkSends.push({ ch, d, parts });
    this.opts.counters.bulkBytesOut += d.length;
    this.opts.counters.bytesOut += d.length;
  }

  private flushBulk(): void {
    const sends = this.bulkSends;
    if (sends.length === 0) return;
    this.bulkSends = [];
    let corked: BulkChannel | undefined;
    for (const { ch, d, parts } of sends) {
      if (ch !== corked) {
        corked?.socket.uncork();
        corked = ch;
        ch.socket.cork();
      }
      ch.send(d, parts);
    }
    corked?.socket.uncork();
  }

  /** Registers a described transfer at once, in arrival order, whoever ends up waiting for it. */
  private expectBulk(f: Frame, pooled: boolean, untagged = false): { d: Descriptor; bytes: Promise<BulkBytes> } | undefined {
    let d: Descriptor;
    try {
      d = parseDescriptor(f.payload, this.opts.bulk?.maxTransferBytes ?? 0);
    } catch (e) {
      this.violation((e as Error).message);
      return undefined;
    }
    const ch = this.bulkChannel;
    const bytes =
      ch !== undefined && ch.generation === d.generation
        ? ch.expect(d, pooled, untagged)
        : Promise.reject(new TesseraError('UNAVAILABLE', `bulk connection ${d.generation} to ${this.describePeer()} is gone; its transfer is lost`));
    bytes.then((b) => {
      this.opts.counters.bulkBytesIn += b.bytes.length;
      this.opts.counters.bytesIn += b.bytes.length;
    }, ignore);
    return { d, bytes };
  }

  private throwIfClosed(): void {
    if (this.closedError) throw this.closedError;
  }

  private allocateId(): number {
    for (;;) {
      const id = this.nextId;
      this.nextId = this.nextId + 2 > MAX_ID ? (this.role === 'dialer' ? 1 : 2) : this.nextId + 2;
      if (!this.pending.has(id)) return id;
    }
  }

  /** `abortOn` is called only when there is something to wait for. */
  private waitWritable(abortOn: () => AbortSignal): Promise<void> {
    if (!this.socket.writableNeedDrain && this.bulkChannel?.needsDrain !== true) return Promise.resolve();
    const signal = abortOn();
    if (signal.aborted) return Promise.reject(signal.reason);
    return new Promise<void>((resolve, reject) => {
      const onAbort = () => reject(signal.reason);
      signal.addEventListener('abort', onAbort, { once: true });
      this.drainWaiters.push(() => {
        signal.removeEventListener('abort', onAbort);
        if (this.closedError) reject(this.closedError);
        else resolve();
      });
    });
  }

  private flushDrainWaiters(): void {
    const w = this.drainWaiters;
    this.drainWaiters = [];
    for (const f of w) f();
  }

  private write(parts: Buffer[]): void {
    this.throwIfClosed();
    const s = this.socket;
    let n = 0;
    // Frames written during one event-loop turn leave in one writev: many small requests or
    // replies then share TLS records and system calls instead of paying for one each.
    if (!this.corked) {
      this.corked = true;
      s.cork();
      setImmediate(() => {
        this.corked = false;
        s.uncork();
        this.flushBulk();
      });
    }
    for (const b of parts) {
      s.write(b);
      n += b.length;
    }
    this.opts.counters.bytesOut += n;
  }

  /** For small control frames (cancel, error) that must not wait behind drain. */
  private sendNow(kind: FrameKind, id: number, control: Buffer | undefined): void {
    if (this.closed) return;
    try {
      this.write(encodeFrame(kind, id, control));
    } catch (e) {
      this.log.debug({ err: (e as Error).message }, 'could not send control frame');
    }
  }

  private onData(chunk: Buffer): void {
    this.opts.counters.bytesIn += chunk.length;
    try {
      this.decoder.push(chunk);
    } catch (e) {
      return this.violation((e as Error).message);
    }
    this.pump();
  }

  /** Takes frames while there is room to queue inbound requests. */
  private pump(): void {
    while (!this.closed) {
      if (this.queueFull()) {
        if (!this.readPaused) {
          this.readPaused = true;
          this.socket.pause();
        }
        return;
      }
      let f: Frame | undefined;
      try {
        f = this.decoder.next();
      } catch (e) {
        return this.violation((e as Error).message);
      }
      if (f === undefined) break;
      this.onFrame(f);
    }
    if (this.readPaused && !this.closed && !this.queueFull()) {
      this.readPaused = false;
      this.socket.resume();
    }
  }

  private queueFull(): boolean {
    return this.queued.length >= this.opts.maxQueuedInbound || this.queuedBytes >= this.opts.maxQueuedInboundBytes;
  }

  private onFrame(f: Frame): void {
    switch (f.kind) {
      case FrameKind.REQUEST:
        return this.onRequest(f);
      case FrameKind.RESPONSE:
      case FrameKind.ERROR:
        return this.onReply(f);
      case FrameKind.CANCEL:
        return this.onCancel(f.requestId);
      default:
        return this.violation(`unexpected ${FRAME_KIND_NAMES[f.kind]} frame after the handshake`);
    }
  }

  private isPeerId(id: number): boolean {
    return id !== 0 && (id % 2 === 1) === (this.role === 'acceptor');
  }

  private onRequest(f: Frame): void {
    if (!this.isPeerId(f.requestId)) return this.violation(`request id ${f.requestId} has the wrong parity for a ${this.role === 'dialer' ? 'acceptor' : 'dialer'}`);
    if (this.inbound.has(f.requestId)) return this.violation(`request id ${f.requestId} reused while still in progress`);
    const state: Inbound = { controller: undefined, cancelled: undefined };
    if ((f.flags & FrameFlag.BULK) !== 0) {
      let method: string;
      try {
        method = checkRequestControl(decodeControlUnknown(f.control)).m;
      } catch (e) {
        return this.violation(`request ${f.requestId}: ${(e as Error).message}`);
      }
      if (this.opts.bulk?.requests.has(method) !== true) return this.violation(`request ${f.requestId}: ${method} may not carry its payload on the bulk plane`);
      // A request's handler recycles its payload (see IncomingRequest.recycle); a reply's caller keeps it.
      const x = this.expectBulk(f, true, this.untagged(method));
      if (x === undefined) return;
      x.bytes.catch(ignore);
      state.bulk = x.bytes;
      state.bulkBytes = x.d.length;
    }
    this.inbound.set(f.requestId, state);
    this.queued.push(f);
    this.queuedBytes += f.control.length + f.payload.length + (state.bulkBytes ?? 0);
    this.startHandlers();
  }

  private startHandlers(): void {
    while (this.running < this.opts.maxInboundHandlers && this.queued.length > 0) {
      const f = this.queued.shift()!;
      const state = this.inbound.get(f.requestId);
      this.queuedBytes -= f.control.length + f.payload.length + (state?.bulkBytes ?? 0);
      if (state === undefined || state.cancelled) continue; // cancelled while queued
      this.running++;
      void this.serve(f, state).finally(() => {
        this.running--;
        this.inbound.delete(f.requestId);
        this.startHandlers();
        if (this.readPaused) this.pump();
        this.maybeRetireClose();
      });
    }
  }

  private async serve(f: Frame, state: Inbound): Promise<void> {
    const id = f.requestId;
    let method = '?';
    let reply: Reply;
    try {
      let control: unknown;
      try {
        control = decodeControlUnknown(f.control);
      } catch (e) {
        // Not a bad request but a broken or hostile peer: nothing else it sends can be trusted.
        this.violation(`request ${id}: ${(e as Error).message}`);
        return;
      }
      const req = checkRequestControl(control);
      method = req.m;
      const maxPayload = this.opts.maxPayloadBytesFor?.(method);
      const length = state.bulk !== undefined ? state.bulkBytes! : f.payload.length;
      if (maxPayload !== undefined && length > maxPayload) {
        this.violation(`request ${id}: ${method} takes at most ${maxPayload} payload bytes, got ${length}`);
        return;
      }
      const bulk = state.bulk !== undefined ? await unlessAborted(state.bulk, inboundSignal(state), () => inboundSignal(state).reason) : undefined;
      const payload = bulk !== undefined ? bulk.bytes : f.payload;
      const recycle = bulk !== undefined ? bulk.recycle : f.recycle;
      reply = await this.opts.handler({
        method, body: req.b, payload, peer: this.peer,
        get signal() {
          return inboundSignal(state);
        },
        ...(recycle ? { recycle } : {}),
      });
    } catch (e) {
      if (state.cancelled || this.closed) return;
      this.opts.counters.requestsFailed++;
      const err =
        e instanceof TesseraError ? e : new TesseraError('INTERNAL', `handler for ${method} failed: ${e instanceof Error ? e.message : String(e)}`);
      if (!(e instanceof TesseraError)) this.log.error({ method, err: e instanceof Error ? e.stack : String(e) }, 'request handler threw');
      this.sendNow(FrameKind.ERROR, id, encodeControl({ c: err.code, m: truncateMessage(err.message) }));
      return;
    }
    if (state.cancelled) {
      this.opts.counters.requestsCancelled++;
      return;
    }
    if (this.closed) return;
    let parts: Buffer[];
    try {
      parts = encodeFrame(FrameKind.RESPONSE, id, encodeControl({ b: reply.body }), reply.payload);
    } catch (e) {
      this.opts.counters.requestsFailed++;
      const err = e instanceof TesseraError ? e : new TesseraError('INTERNAL', String(e));
      this.sendNow(FrameKind.ERROR, id, encodeControl({ c: err.code, m: truncateMessage(`reply to ${method} cannot be sent: ${err.message}`) }));
      return;
    }
    try {
      await this.waitWritable(() => inboundSignal(state));
      if (state.cancelled || this.closed) return;
      const bulk = this.bulkFor(this.opts.bulk?.replies, method, reply.payload);
      if (bulk) this.writeBulk(bulk, FrameKind.RESPONSE, id, encodeControl({ b: reply.body }), reply.payload!);
      else this.write(parts);
      this.opts.counters.requestsServed++;
    } catch {
      /* connection closed or request cancelled while waiting to write */
    }
  }

  private onCancel(id: number): void {
    const state = this.inbound.get(id);
    if (state === undefined) return; // already answered: the cancel crossed the reply
    cancelInbound(state, new TesseraError('CANCELLED', 'the caller cancelled the request'));
  }

  private onReply(f: Frame): void {
    if (f.requestId === 0 && f.kind === FrameKind.ERROR) {
      let reason = 'no reason given';
      try {
        reason = decodeControl(f.control, errorControl).m;
      } catch {
        /* keep the generic reason */
      }
      this.log.warn({ peer: this.peer.nodeId, reason }, 'peer closed the connection');
      return this.close(`closed by the peer: ${reason}`);
    }
    const p = this.pending.get(f.requestId);
    if ((f.flags & FrameFlag.BULK) !== 0) return this.onBulkReply(f, p);
    if (p === undefined) return; // late reply to a call that timed out or was cancelled
    this.pending.delete(f.requestId);
    if (f.kind === FrameKind.RESPONSE) {
      let r;
      try {
        r = checkResponseControl(decodeControlUnknown(f.control));
      } catch (e) {
        p.reject(new TesseraError('PROTOCOL', `reply to ${p.method} from ${this.describePeer()} is malformed: ${(e as Error).message}`));
        return;
      }
      p.resolve({ body: r.b, payload: f.payload });
      return;
    }
    let code: ReturnType<typeof toErrorCode> = 'INTERNAL';
    let message = 'remote error without details';
    try {
      const e = decodeControl(f.control, errorControl);
      code = toErrorCode(e.c);
      message = e.m;
    } catch {
      /* keep the generic error */
    }
    p.reject(new TesseraError(code, message, { peer: this.peer.nodeId, method: p.method, remote: true }));
  }

  /**
   * A reply whose payload comes on the bulk plane. Its transfer is taken even when nobody waits
   * any more (the stream stays in order); the bytes go only to the call that asked, and only for
   * a method whose replies may travel there.
   */
  private onBulkReply(f: Frame, p: Pending | undefined): void {
    if (f.kind !== FrameKind.RESPONSE) return this.violation(`${FRAME_KIND_NAMES[f.kind]} frame ${f.requestId} claims a bulk payload`);
    if (p !== undefined && this.opts.bulk?.replies.has(p.method) !== true) {
      return this.violation(`reply to ${p.method} may not carry its payload on the bulk plane`);
    }
    const x = this.expectBulk(f, false);
    if (x === undefined) return;
    if (p === undefined) return void x.bytes.catch(ignore);
    let r: { b: unknown };
    try {
      r = checkResponseControl(decodeControlUnknown(f.control));
    } catch (e) {
      x.bytes.catch(ignore);
      this.pending.delete(f.requestId);
      p.reject(new TesseraError('PROTOCOL', `reply to ${p.method} from ${this.describePeer()} is malformed: ${(e as Error).message}`));
      return;
    }
    // Still pending until the bytes are in: a timeout or cancel meanwhile ends the call as usual.
    x.bytes.then(
      ({ bytes }) => {
        if (this.pending.get(f.requestId) !== p) return;
        this.pending.delete(f.requestId);
        p.resolve({ body: r.b, payload: bytes });
      },
      (e: TesseraError) => {
        if (this.pending.get(f.requestId) !== p) return;
        this.pending.delete(f.requestId);
        p.reject(e);
      },
    );
  }

  private violation(reason: string): void {
    if (this.closed) return;
    this.opts.counters.protocolViolations++;
    this.log.warn({ peer: this.peer.nodeId, reason }, 'closing connection after a protocol violation');
    this.closedError = new TesseraError('UNAVAILABLE', `connection to ${this.describePeer()} closed: protocol violation (${reason})`);
    this.socket.destroy();
  }

  private onClosed(): void {
    if (!this.closedError) this.closedError = new TesseraError('UNAVAILABLE', `connection to ${this.describePeer()} was lost`);
    this.opts.counters.connectionsClosed++;
    clearTimeout(this.retireTimer);
    const err = this.closedError;
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
    const lost = new TesseraError('CANCELLED', 'the connection to the caller was lost');
    for (const s of this.inbound.values()) cancelInbound(s, lost);
    this.queued.length = 0;
    this.queuedBytes = 0;
    this.bulkChannel?.close(new TesseraError('UNAVAILABLE', 'its TLS connection closed'));
    this.flushDrainWaiters();
    for (const cb of this.closeListeners.splice(0)) cb(this);
  }
}

/** How long a retired, idle connection stays open for requests already on the wire. */
export const RETIRE_GRACE_MS = 2000;

function reasonSuffix(reason: unknown): string {
  if (reason instanceof Error && reason.name !== 'AbortError') return `: ${reason.message}`;
  if (typeof reason === 'string') return `: ${reason}`;
  return '';
}
