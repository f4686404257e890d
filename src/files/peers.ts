/**
 * The files layer's view of the cluster: which nodes are live, how they rank for a chunk, and
 * the node's caller (cluster/node-caller.ts) to reach any of them, this one included.
 */
import { placeChunk, type NodeCallOptions, type NodeCalls, type WeightedNode } from '../cluster/index.js';
import { HolderBoard } from './holder-board.js';

export interface FilesNet {
  readonly selfId: string;
  /** Nodes believed up (alive or suspect), this one included, with their capacity in bytes. */
  live(): { nodeId: string; capacity: number; zone?: string }[];
  /** Every known member with its state, dead and left ones included (repair waits out their grace period). */
  members?(): { nodeId: string; state: string; capacity: number }[];
  /** The node's caller: errors a peer answers with come back as TesseraErrors with the peer's code. */
  readonly caller: NodeCalls;
}

const GIB = 2 ** 30;

export class Peers {
  /** What reads have measured of each holder: shared by every get on this node, replicated or striped. */
  readonly board = new HolderBoard();
  readonly #net: FilesNet;
  #nodes: WeightedNode[] = [];
  #signature = '';

  constructor(net: FilesNet) {
    this.#net = net;
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
      .map((m) => ({ nodeId: m.nodeId, weight: Math.max(1, Math.round(m.capacity / GIB)), zone: m.zone ?? '' }))
      .sort((a, b) => (a.nodeId < b.nodeId ? -1 : 1));
    const sig = list.map((n) => `${n.nodeId}:${n.weight}:${n.zone}`).join(',');
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
    return this.#net.caller.isHeldDown(nodeId);
  }

  async call(nodeId: string, method: string, body: unknown, payload: Buffer | undefined, opts: NodeCallOptions): Promise<{ body: unknown; payload: Buffer }> {
    return this.#net.caller.call(nodeId, method, body, payload, opts);
  }
}
