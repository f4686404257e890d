/**
 * Weighted rendezvous (highest random weight) placement across failure domains: a pure function of
 * (id, nodes with their zones, count).
 *
 * Each (id, node) pair gets a 53-bit uniform draw u in (0,1) from two mixed 32-bit lanes (64 bits of
 * hash state, of which a double can carry 53), and the score -weight / ln(u). The node with the
 * highest score wins; this is the logarithmic method, which makes a node's win probability exactly
 * proportional to its weight, and a join or leave moves only the ids the changed node wins or lost.
 *
 * Zones are ranked first, the same way (a zone's weight is the sum of its nodes'), then nodes within
 * the zones an id needs: the k results are dealt round-robin over the ranked zones, so R copies land
 * in R distinct zones when there are at least R, and no zone gets more than ceil(k / zones) while
 * every zone has nodes to spare. A lookup hashes every zone and the nodes of the zones it uses, not
 * every node. With one zone the ranking is exactly the zone-less one.
 *
 * Runs once per chunk, so the per-node and per-zone hash state (two 32-bit seeds from SHA-256 of the
 * name) is computed once and the scoring loops allocate only the returned array.
 */
import { createHash } from 'node:crypto';
import { TesseraError } from '../errors.js';

export interface WeightedNode {
  nodeId: string;
  weight: number;
  /** Failure domain (rack, room, site); nodes without one share the unnamed zone. */
  zone?: string;
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

/** MurmurHash3's 32-bit finaliser: every input bit reaches every output bit. */
export function fmix32(h: number): number {
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

/** Higher score first; exact ties (practically never) broken by name so the order is total. */
function better(scores: Float64Array, names: readonly string[], a: number, b: number): boolean {
  const sa = scores[a]!;
  const sb = scores[b]!;
  return sa > sb || (sa === sb && names[a]! < names[b]!);
}

/**
 * Writes the `k` best of `candidates` (indices into `scores`) to out[at..at+k), best first. Up to
 * INSERTION_LIMIT results by insertion (one pass, no allocation); beyond it a sort of `sortScratch`.
 */
function selectTop(
  candidates: Int32Array,
  k: number,
  scores: Float64Array,
  names: readonly string[],
  out: Int32Array,
  at: number,
  sortScratch: Int32Array,
): void {
  const n = candidates.length;
  if (k <= INSERTION_LIMIT) {
    let filled = 0;
    for (let c = 0; c < n; c++) {
      const i = candidates[c]!;
      if (filled === k && !better(scores, names, i, out[at + k - 1]!)) continue;
      let j = filled < k ? filled++ : k - 1;
      while (j > 0 && better(scores, names, i, out[at + j - 1]!)) {
        out[at + j] = out[at + j - 1]!;
        j--;
      }
      out[at + j] = i;
    }
    return;
  }
  const sorted = sortScratch.subarray(0, n);
  sorted.set(candidates);
  sorted.sort((a, b) => (better(scores, names, a, b) ? -1 : better(scores, names, b, a) ? 1 : 0));
  out.set(sorted.subarray(0, k), at);
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

/** Zone seeds are kept apart from node seeds: node ids never hold a NUL. */
const zoneSeedName = (zone: string): string => `zone\0${zone}`;

/** Placement over a fixed node list; build one per membership change and reuse it per chunk. */
export class Placer {
  private readonly ids: string[];
  private readonly zoneOf: string[];
  private readonly s1: Uint32Array;
  private readonly s2: Uint32Array;
  private readonly weights: Float64Array;
  private readonly scores: Float64Array;
  private readonly sortScratch: Int32Array;
  /** Node indices chosen per zone, laid out at zoneStart[z]. */
  private readonly picked: Int32Array;
  // Zones, in first-seen order: names, member node indices, summed weights, seeds.
  private readonly zones: string[];
  private readonly zoneMembers: Int32Array[];
  private readonly zs1: Uint32Array;
  private readonly zs2: Uint32Array;
  private readonly zoneWeights: Float64Array;
  private readonly zoneScores: Float64Array;
  private readonly zoneOrder: Int32Array;
  private readonly allZones: Int32Array;
  private readonly quota: Int32Array;
  private readonly zoneStart: Int32Array;
  private readonly active: Int32Array;

  constructor(nodes: ReadonlyArray<WeightedNode>) {
    checkNodes(nodes);
    const n = nodes.length;
    this.ids = nodes.map((x) => x.nodeId);
    this.zoneOf = nodes.map((x) => x.zone ?? '');
    this.s1 = new Uint32Array(n);
    this.s2 = new Uint32Array(n);
    this.weights = new Float64Array(n);
    this.scores = new Float64Array(n);
    this.sortScratch = new Int32Array(n);
    this.picked = new Int32Array(n);
    const byZone = new Map<string, number[]>();
    nodes.forEach((x, i) => {
      const s = nodeSeeds(x.nodeId);
      this.s1[i] = s[0];
      this.s2[i] = s[1];
      this.weights[i] = x.weight;
      const z = this.zoneOf[i]!;
      const members = byZone.get(z);
      if (members === undefined) byZone.set(z, [i]);
      else members.push(i);
    });
    this.zones = [...byZone.keys()];
    this.zoneMembers = [...byZone.values()].map((m) => Int32Array.from(m));
    const zn = this.zones.length;
    this.zs1 = new Uint32Array(zn);
    this.zs2 = new Uint32Array(zn);
    this.zoneWeights = new Float64Array(zn);
    this.zoneScores = new Float64Array(zn);
    this.zoneOrder = new Int32Array(zn);
    this.allZones = Int32Array.from(this.zones.keys());
    this.quota = new Int32Array(zn);
    this.zoneStart = new Int32Array(zn);
    this.active = new Int32Array(zn);
    this.zones.forEach((z, i) => {
      const s = nodeSeeds(zoneSeedName(z));
      this.zs1[i] = s[0];
      this.zs2[i] = s[1];
      let w = 0;
      for (const m of this.zoneMembers[i]!) w += this.weights[m]!;
      this.zoneWeights[i] = w;
    });
  }

  get size(): number {
    return this.ids.length;
  }

  /** How many distinct zones the nodes are in. */
  get zoneCount(): number {
    return this.zones.length;
  }

  /** The zone a node of this placer is in, or undefined for a node it does not know. */
  zoneOfNode(nodeId: string): string | undefined {
    const i = this.ids.indexOf(nodeId);
    return i < 0 ? undefined : this.zoneOf[i];
  }

  /** True when this placer was built from exactly these nodes, weights and zones, in this order. */
  matches(nodes: ReadonlyArray<WeightedNode>): boolean {
    if (nodes.length !== this.ids.length) return false;
    for (let i = 0; i < nodes.length; i++) {
      const x = nodes[i]!;
      if (x.nodeId !== this.ids[i] || x.weight !== this.weights[i] || (x.zone ?? '') !== this.zoneOf[i]) return false;
    }
    return true;
  }

  /**
   * The `count` best nodes for `id`, best first; all nodes when count exceeds their number. Any
   * prefix of the result is the result for that smaller count.
   */
  place(id: Uint8Array, count: number): string[] {
    if (!Number.isInteger(count) || count < 0) {
      throw new TesseraError('BAD_INPUT', `placement count must be a non-negative integer, got ${count}`);
    }
    const k = Math.min(count, this.ids.length);
    if (k === 0) return [];
    hashId(id);
    const zn = this.zones.length;
    const { zoneScores, zoneOrder, quota, zoneStart, picked, zoneMembers } = this;
    for (let z = 0; z < zn; z++) zoneScores[z] = score(this.zs1[z]!, this.zs2[z]!, this.zoneWeights[z]!);
    // The first round gives one node to each of the best min(k, zones) zones, so only they are ranked
    // unless k exceeds the zone count.
    const used = Math.min(k, zn);
    selectTop(this.allZones, used, zoneScores, this.zones, zoneOrder, 0, this.sortScratch);
    this.dealRounds(used, k);
    let offset = 0;
    for (let r = 0; r < used; r++) {
      const z = zoneOrder[r]!;
      zoneStart[z] = offset;
      if (quota[z]! === 0) continue;
      const members = zoneMembers[z]!;
      for (const i of members) this.scores[i] = score(this.s1[i]!, this.s2[i]!, this.weights[i]!);
      selectTop(members, quota[z]!, this.scores, this.ids, picked, offset, this.sortScratch);
      offset += quota[z]!;
    }
    // Emit in the order the rounds dealt: round r takes each zone's r-th best node, zones in rank order.
    const { active } = this;
    active.set(zoneOrder.subarray(0, used));
    const out = new Array<string>(k);
    let open = used;
    for (let round = 0, o = 0; o < k; round++) {
      let next = 0;
      for (let r = 0; r < open && o < k; r++) {
        const z = active[r]!;
        out[o++] = this.ids[picked[zoneStart[z]! + round]!]!;
        if (round + 1 < quota[z]!) active[next++] = z;
      }
      open = next;
    }
    return out;
  }

  /** Deals k results round-robin over the first `used` ranked zones; a zone with no node left drops out. */
  private dealRounds(used: number, k: number): void {
    const { quota, zoneOrder, zoneMembers, active } = this;
    for (let r = 0; r < used; r++) {
      quota[zoneOrder[r]!] = 0;
      active[r] = zoneOrder[r]!;
    }
    let open = used;
    for (let left = k; left > 0; ) {
      let next = 0;
      for (let r = 0; r < open && left > 0; r++) {
        const z = active[r]!;
        quota[z]!++;
        left--;
        if (quota[z]! < zoneMembers[z]!.length) active[next++] = z;
      }
      open = next;
    }
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
