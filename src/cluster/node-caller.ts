/**
 * The one way to call a node by id: look up its address, dial it and refuse an impostor
 * (expectNodeId), serve a call to this node itself without a socket through the node's own peer
 * handlers, and hold a node that just failed down for a moment so a burst of requests does not
 * queue up behind a dead connection while membership decides.
 */
import { TesseraError, unavailable } from '../errors.js';
import type { CallOptions, CallResult, IncomingRequest, PeerHandler, PeerHello } from '../net/index.js';

/** A node whose call failed is skipped this long (membership usually decides within a few probes). */
export const DEFAULT_HOLD_DOWN_MS = 2_000;
/** Held-down entries kept at most; past it the table starts afresh rather than grow with churn. */
export const MAX_HELD_DOWN = 4096;

export interface NodeCallOptions {
  timeoutMs: number;
  signal?: AbortSignal;
  /**
   * The payload is a chunk whose id this process computed from these very bytes. Only a call to
   * this node itself honours it: bytes that cross the network are always verified by the receiver.
   */
  verified?: boolean;
  /**
   * Skip a held-down node (default). The volume master keeps its own member state (degraded
   * mode, member timeouts) and so asks every time.
   */
  respectHoldDown?: boolean;
}

export interface NodeReply {
  body: unknown;
  payload: Buffer;
}

/** What a service needs of the caller. */
export interface NodeCalls {
  readonly selfId: string;
  call(nodeId: string, method: string, body: unknown, payload: Buffer | Buffer[] | undefined, opts: NodeCallOptions): Promise<NodeReply>;
  isHeldDown(nodeId: string): boolean;
}

export interface NodeCallerOptions {
  /** This node's own hello: what its handlers see as the peer of a call to itself. */
  self: PeerHello;
  /** A member's peer address, or undefined when this node does not know it. */
  addressOf(nodeId: string): string | undefined;
  /** Sends one request over the network (the transport's call). */
  send(addr: string, method: string, body: unknown, payload: Buffer | Buffer[] | undefined, opts: CallOptions): Promise<CallResult>;
  /** The node's own peer handlers (its PeerRouter), for calls to itself. */
  local: PeerHandler;
  holdDownMs?: number;
  now?: () => number;
}

const NO_SIGNAL = new AbortController().signal;

function joined(p: Buffer | Buffer[] | undefined): Buffer {
  if (p === undefined) return Buffer.alloc(0);
  return Array.isArray(p) ? Buffer.concat(p) : p;
}

export class NodeCaller implements NodeCalls {
  readonly #o: NodeCallerOptions;
  readonly #holdDownMs: number;
  readonly #now: () => number;
  readonly #heldUntil = new Map<string, number>();

  constructor(o: NodeCallerOptions) {
    this.#o = o;
    this.#holdDownMs = o.holdDownMs ?? DEFAULT_HOLD_DOWN_MS;
    this.#now = o.now ?? Date.now;
  }

  get selfId(): string {
    return this.#o.self.nodeId;
  }

  isHeldDown(nodeId: string): boolean {
    const until = this.#heldUntil.get(nodeId);
    if (until === undefined) return false;
    if (until > this.#now()) return true;
    this.#heldUntil.delete(nodeId);
    return false;
  }

  async call(nodeId: string, method: string, body: unknown, payload: Buffer | Buffer[] | undefined, opts: NodeCallOptions): Promise<NodeReply> {
    if (nodeId === this.selfId) return this.#callSelf(method, body, payload, opts);
    if (opts.respectHoldDown !== false && this.isHeldDown(nodeId)) throw unavailable(`node ${nodeId.slice(0, 12)} failed moments ago; not retrying it yet`);
    try {
      const addr = this.#o.addressOf(nodeId);
      if (addr === undefined) throw unavailable(`node ${nodeId.slice(0, 12)} is not a known member`);
      const r = await this.#o.send(addr, method, body, payload, {
        timeoutMs: opts.timeoutMs,
        expectNodeId: nodeId,
        ...(opts.signal ? { signal: opts.signal } : {}),
      });
      return { body: r.body, payload: r.payload };
    } catch (e) {
      this.#noteFailure(nodeId, e, opts.signal);
      throw e;
    }
  }

  async #callSelf(method: string, body: unknown, payload: Buffer | Buffer[] | undefined, opts: NodeCallOptions): Promise<NodeReply> {
    opts.signal?.throwIfAborted();
    const req: IncomingRequest = {
      method,
      body,
      payload: joined(payload),
      peer: this.#o.self,
      signal: opts.signal ?? NO_SIGNAL,
      ...(opts.verified === true ? { verifiedPayload: true } : {}),
    };
    const r = await this.#o.local(req);
    return { body: r.body, payload: joined(r.payload) };
  }

  /** Only a node that did not answer is held down; an error it answered with says it is up. */
  #noteFailure(nodeId: string, e: unknown, signal: AbortSignal | undefined): void {
    const code = e instanceof TesseraError ? e.code : 'UNAVAILABLE';
    if ((code !== 'UNAVAILABLE' && code !== 'TIMEOUT') || signal?.aborted === true) return;
    if (this.#heldUntil.size >= MAX_HELD_DOWN) this.#heldUntil.clear();
    this.#heldUntil.set(nodeId, this.#now() + this.#holdDownMs);
  }
}
