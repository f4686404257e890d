/**
 * The files layer's view of the cluster: which nodes are live, how they rank for a chunk, and
 * one way to call any of them. Calls to this node itself skip the network but go through the
 * same handler, so local and remote requests are validated alike.
 */
import { TesseraError, unavailable } from '../errors.js';
import { placeChunk, type WeightedNode } from '../cluster/placement.js';
import { DOWN_HOLD_MS } from './limits.js';
import { HolderBoard } from './holder-board.js';

export interface FilesNet {
  readonly selfId: string;
  /** Nodes believed up (alive or suspect), this one included, with their capacity in bytes. */
  live(): { nodeId: string; capacity: number }[];
  /** Every known member with its state, dead and left ones included (repair waits out their grace period). */
  members?(): { nodeId: string; state: string; capacity: number }[];
  /** Calls a peer; BAD_INPUT-style errors come back as TesseraErrors with the peer's code. */
  call(nodeId: string, method: string, body: unknown, payload: Buffer | undefined, opts: { timeoutMs: number; signal?: AbortSignal }): Promise<{ body: unknown; payload: Buffer }>;
}

/** `local.verified`: the payload's id was computed from it by this process (see CallOptions.verified). */
export type LocalHandler = (method: string, body: unknown, payload: Buffer, local: { verified: boolean }) => Promise<{ body?: unknown; payload?: Buffer | Buffer[] }>;

export interface CallOptions {
  timeoutMs: number;
  signal?: AbortSignal;
  /**
   * The payload is a chunk whose id this process computed from these very bytes, so this node's
   * own store need not hash it again. Only a call to this node itself honours it: bytes that go
   * over the network are always verified by the receiver.
   */
  verified?: boolean;
}

const GIB = 2 ** 30;

export class Peers {
  /** What reads have measured of each holder: shared by every get on this node, replicated or striped. */
  readonly board = new HolderBoard();
  readonly #net: FilesNet;
  readonly #local: LocalHandler;
  readonly #down = new Map<string, number>();
  #nodes: WeightedNode[] = [];
  #signature = '';

  constructor(net: FilesNet, local: LocalHandler) {
    this.#net = net;
    this.#local = local;
  }

  get selfId(): string {
    return this.#net.selfId;
  }

  /**
   * Live nodes weighted by capacity in whole GiB: rounding keeps placement stable while
   * free space drifts as data arrives. The same array is returned while nothing changed, so
   * placement reuses its precomputed state.
   */
  live(): WeightedNode[] {
    const list = this.#net
      .live()
      .filter((m) => m.capacity > 0)
      .map((m) => ({ nodeId: m.nodeId, weight: Math.max(1, Math.round(m.capacity / GIB)) }))
      .sort((a, b) => (a.nodeId < b.nodeId ? -1 : 1));
    const sig = list.map((n) => `${n.nodeId}:${n.weight}`).join(',');
    if (sig !== this.#signature) {
      this.#signature = sig;
      this.#nodes = list;
    }
    return this.#nodes;
  }

  /** Every node in placement order for this id: the first R are where its copies belong. */
  rank(id: Uint8Array, nodes: WeightedNode[]): string[] {
    return placeChunk(id, nodes, nodes.length);
  }

  /** A node that failed recently is not tried again for a moment (membership will soon decide). */
  isHeldDown(nodeId: string): boolean {
    const until = this.#down.get(nodeId);
    if (until === undefined) return false;
    if (until > Date.now()) return true;
    this.#down.delete(nodeId);
    return false;
  }

  async call(nodeId: string, method: string, body: unknown, payload: Buffer | undefined, opts: CallOptions): Promise<{ body: unknown; payload: Buffer }> {
    if (nodeId === this.#net.selfId) {
      opts.signal?.throwIfAborted();
      const r = await this.#local(method, body, payload ?? Buffer.alloc(0), { verified: opts.verified === true });
      const p = r.payload;
      return { body: r.body, payload: p === undefined ? Buffer.alloc(0) : Array.isArray(p) ? Buffer.concat(p) : p };
    }
    if (this.isHeldDown(nodeId)) throw unavailable(`node ${nodeId.slice(0, 12)} failed moments ago; not retrying it yet`);
    try {
      return await this.#net.call(nodeId, method, body, payload, { timeoutMs: opts.timeoutMs, ...(opts.signal ? { signal: opts.signal } : {}) });
    } catch (e) {
      const code = e instanceof TesseraError ? e.code : 'UNAVAILABLE';
      if ((code === 'UNAVAILABLE' || code === 'TIMEOUT') && !opts.signal?.aborted) {
        this.#down.set(nodeId, Date.now() + DOWN_HOLD_MS);
        if (this.#down.size > 4096) this.#down.clear();
      }
      throw e;
    }
  }
}
