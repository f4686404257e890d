/**
 * Weighted rendezvous (highest random weight) placement: a pure function of (id, nodes, count).
 *
 * Each (id, node) pair gets a 53-bit uniform draw u in (0,1) from two mixed 32-bit lanes (64 bits of
 * hash state, of which a double can carry 53), and the score -weight / ln(u). The node with the
 * highest score wins; this is the logarithmic method, which makes a node's win probability exactly
 * proportional to its weight, and a join or leave moves only the ids the changed node wins or lost.
 *
 * Runs once per chunk, so the per-node hash state (two 32-bit seeds from SHA-256 of the node id) is
 * computed once and the scoring loop allocates only the returned array.
 */
import { createHash } from 'node:crypto';
import { TesseraError } from '../errors.js';

export interface WeightedNode {
  nodeId: string;
  weight: number;
}

/** Node seeds kept across calls; cleared when exceeded so a churning id space cannot grow memory. */
export const MAX_CACHED_NODE_SEEDS = 1 << 16;
/** Most nodes one placement may rank; far above any cluster we run, it bounds the scratch arrays. */
export const MAX_PLACEMENT_NODES = 1 << 16;
/** Up to this many results are kept by insertion; beyond it a full sort is cheaper. */
const INSERTION_LIMIT = 16;

const TWO_POW_21 = 2097152;
const TWO_POW_53 = 9007199254740992;

const seedCache = new Map<string, readonly [number, number]>();

function nodeSeeds(nodeId: string): readonly [number, number] {
  let s = seedCache.get(nodeId);
  if (s === undefined) {
    const d = createHash('sha256').update(nodeId, 'utf8').digest();
    s = [d.readUInt32LE(0), d.readUInt32LE(4)] as const;
    if (seedCache.size >= MAX_CACHED_NODE_SEEDS) seedCache.clear();
    seedCache.set(nodeId, s);
  }
  return s;
}

function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

function rotl(x: number, r: number): number {
  return (x << r) | (x >>> (32 - r));
}

// Two murmur3-style lanes over the id; module-level results avoid allocating a tuple per call.
let laneA = 0;
let laneB = 0;

function hashId(id: Uint8Array): void {
  const len = id.length;
  let h1 = 0x9747b28c ^ len;
  let h2 = 0x2545f491 ^ Math.imul(len, 0x9e3779b9);
  const words = len >>> 2;
  for (let w = 0; w < words; w++) {
    const i = w << 2;
    const k = (id[i]! | (id[i + 1]! << 8) | (id[i + 2]! << 16) | (id[i + 3]! << 24)) >>> 0;
    let k1 = Math.imul(rotl(Math.imul(k, 0xcc9e2d51), 15), 0x1b873593);
    h1 ^= k1;
    h1 = (Math.imul(rotl(h1, 13), 5) + 0xe6546b64) | 0;
    k1 = Math.imul(rotl(Math.imul(k, 0x85ebca77), 17), 0xc2b2ae3d);
    h2 ^= k1;
    h2 = (Math.imul(rotl(h2, 11), 5) + 0x561ccd1b) | 0;
  }
  let tail = 0;
  for (let i = words << 2, sh = 0; i < len; i++, sh += 8) tail |= id[i]! << sh;
  h1 ^= Math.imul(rotl(Math.imul(tail, 0xcc9e2d51), 15), 0x1b873593);
  h2 ^= Math.imul(rotl(Math.imul(tail, 0x85ebca77), 17), 0xc2b2ae3d);
  h1 = fmix32(h1 ^ rotl(h2, 7));
  h2 = fmix32(h2 ^ Math.imul(h1, 0x9e3779b9));
  laneA = h1;
  laneB = h2;
}

/** Score of one node for the id last hashed; depends only on (id, nodeId, weight). */
function score(s1: number, s2: number, weight: number): number {
  const x = fmix32(laneA ^ s1);
  const y = fmix32((laneB ^ s2) + Math.imul(x, 0x9e3779b9));
  const hi = fmix32(x ^ rotl(y, 16));
  const u = (hi * TWO_POW_21 + (y >>> 11) + 0.5) / TWO_POW_53;
  return -weight / Math.log(u);
}

/** Higher score first; exact ties (practically never) broken by node id so the order is total. */
function better(scores: Float64Array, ids: string[], a: number, b: number): boolean {
  const sa = scores[a]!;
  const sb = scores[b]!;
  return sa > sb || (sa === sb && ids[a]! < ids[b]!);
}

function checkNodes(nodes: ReadonlyArray<WeightedNode>): void {
  if (nodes.length > MAX_PLACEMENT_NODES) {
    throw new TesseraError('TOO_LARGE', `placement over ${nodes.length} nodes exceeds MAX_PLACEMENT_NODES (${MAX_PLACEMENT_NODES})`);
  }
  const seen = new Set<string>();
  for (const n of nodes) {
    if (!(Number.isFinite(n.weight) && n.weight > 0)) {
      throw new TesseraError('BAD_INPUT', `placement weight of node ${n.nodeId} must be a finite number > 0, got ${n.weight}; leave full nodes out instead`);
    }
    if (seen.has(n.nodeId)) throw new TesseraError('BAD_INPUT', `node ${n.nodeId} appears twice in the placement node list`);
    seen.add(n.nodeId);
  }
}

/** Placement over a fixed node list; build one per membership change and reuse it per chunk. */
export class Placer {
  private readonly ids: string[];
  private readonly s1: Uint32Array;
  private readonly s2: Uint32Array;
  private readonly weights: Float64Array;
  private readonly scores: Float64Array;
  private readonly order: Int32Array;

  constructor(nodes: ReadonlyArray<WeightedNode>) {
    checkNodes(nodes);
    const n = nodes.length;
    this.ids = nodes.map((x) => x.nodeId);
    this.s1 = new Uint32Array(n);
    this.s2 = new Uint32Array(n);
    this.weights = new Float64Array(n);
    this.scores = new Float64Array(n);
    this.order = new Int32Array(n);
    nodes.forEach((x, i) => {
      const s = nodeSeeds(x.nodeId);
      this.s1[i] = s[0];
      this.s2[i] = s[1];
      this.weights[i] = x.weight;
    });
  }

  get size(): number {
    return this.ids.length;
  }

  /** True when this placer was built from exactly these nodes and weights, in this order. */
  matches(nodes: ReadonlyArray<WeightedNode>): boolean {
    if (nodes.length !== this.ids.length) return false;
    for (let i = 0; i < nodes.length; i++) {
      const x = nodes[i]!;
      if (x.nodeId !== this.ids[i] || x.weight !== this.weights[i]) return false;
    }
    return true;
  }

  /** The `count` best nodes for `id`, best first; all nodes when count exceeds their number. */
  place(id: Uint8Array, count: number): string[] {
    if (!Number.isInteger(count) || count < 0) {
      throw new TesseraError('BAD_INPUT', `placement count must be a non-negative integer, got ${count}`);
    }
    const n = this.ids.length;
    const k = Math.min(count, n);
    if (k === 0) return [];
    hashId(id);
    const { scores, order, s1, s2, weights, ids } = this;
    for (let i = 0; i < n; i++) scores[i] = score(s1[i]!, s2[i]!, weights[i]!);
    if (k <= INSERTION_LIMIT) {
      let filled = 0;
      for (let i = 0; i < n; i++) {
        if (filled === k && !better(scores, ids, i, order[k - 1]!)) continue;
        let j = filled < k ? filled++ : k - 1;
        while (j > 0 && better(scores, ids, i, order[j - 1]!)) {
          order[j] = order[j - 1]!;
          j--;
        }
        order[j] = i;
      }
    } else {
      for (let i = 0; i < n; i++) order[i] = i;
      order.sort((a, b) => (better(scores, ids, a, b) ? -1 : better(scores, ids, b, a) ? 1 : 0));
    }
    const out = new Array<string>(k);
    for (let i = 0; i < k; i++) out[i] = ids[order[i]!]!;
    return out;
  }
}

const placerCache = new WeakMap<ReadonlyArray<WeightedNode>, Placer>();

/**
 * The top `count` node ids for chunk `id` by weighted rendezvous hashing, best first. Passing the
 * same array again reuses its precomputed state (checked against the array's current contents).
 */
export function placeChunk(id: Uint8Array, nodes: ReadonlyArray<WeightedNode>, count: number): string[] {
  let p = placerCache.get(nodes);
  if (p === undefined || !p.matches(nodes)) {
    p = new Placer(nodes);
    placerCache.set(nodes, p);
  }
  return p.place(id, count);
}
