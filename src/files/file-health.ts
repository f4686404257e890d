/**
 * How healthy a stored file is, chunk by chunk, as `stat` reports it: for a replicated chunk, how
 * many live nodes hold a copy; for an erasure-coded chunk, how many distinct shards of its stripe
 * live nodes hold. A stripe's descriptor sits beside every shard, so counting descriptor holders
 * would call a stripe healthy while the shards themselves are gone.
 */
import { type WeightedNode, zoneLossTolerance } from '../cluster/index.js';
import type { ChunkHealthView } from './views.js';
import { MAX_IDS_PER_REQUEST } from './limits.js';
import type { Stripe } from './erasure-stripe.js';
import type { RedundancyPolicy } from '../content/index.js';

export interface HealthTally {
  fullRedundancy: number;
  degraded: number;
  lost: number;
}

export interface ChunkRef {
  index: number;
  id: Buffer;
  size: number;
}

/** Which of `ids` each node says it holds (an empty list when it did not answer). */
export type AskHolders = (ids: Buffer[]) => Promise<{ node: string; have: boolean[] }[]>;

export interface FileHealthOptions {
  policy: RedundancyPolicy;
  nodes: WeightedNode[];
  rank: (id: Uint8Array, nodes: WeightedNode[]) => string[];
  ask: AskHolders;
  /** Reads a stripe descriptor (erasure-coded files only). */
  stripe: (d: Buffer) => Promise<Stripe>;
  /** Chunks listed in detail; every chunk is counted. */
  maxDetail: number;
}

/** Stripes whose descriptors are read at once while a batch is tallied. */
const STRIPE_READS_AT_ONCE = 8;

export class FileHealth {
  readonly health: HealthTally = { fullRedundancy: 0, degraded: 0, lost: 0 };
  readonly detail: ChunkHealthView[] = [];
  /** Fewest zones whose loss some chunk survives; -1 once a chunk is unreadable, null before any chunk. */
  zoneLossesSurvived: number | null = null;
  readonly #o: FileHealthOptions;
  readonly #zoneOf: Map<string, string>;

  constructor(o: FileHealthOptions) {
    this.#o = o;
    this.#zoneOf = new Map(o.nodes.map((n) => [n.nodeId, n.zone ?? '']));
  }

  /** A node placement does not know counts as a zone of its own: nothing says it shares a fate. */
  #zone(node: string): string {
    return this.#zoneOf.get(node) ?? `node:${node}`;
  }

  #tolerate(pieces: string[][], needed: number): void {
    const t = zoneLossTolerance(pieces, needed);
    this.zoneLossesSurvived = this.zoneLossesSurvived === null ? t : Math.min(this.zoneLossesSurvived, t);
  }

  /** How many chunk refs `add` takes at once: one has-query per node covers them all. */
  get batchSize(): number {
    const p = this.#o.policy;
    return p.kind === 'replicas' ? MAX_IDS_PER_REQUEST : Math.max(1, Math.floor(MAX_IDS_PER_REQUEST / (p.k + p.m)));
  }

  async add(batch: ChunkRef[]): Promise<void> {
    if (batch.length === 0) return;
    const p = this.#o.policy;
    if (p.kind === 'replicas') await this.#replicated(batch, p.r);
    else await this.#striped(batch, p.k, p.m);
  }

  #count(present: number, full: number, readable: number): void {
    if (present >= full) this.health.fullRedundancy++;
    else if (present >= readable) this.health.degraded++;
    else this.health.lost++;
  }

  #note(c: ChunkRef, holders: string[], want: number): void {
    if (this.detail.length < this.#o.maxDetail) {
      this.detail.push({ index: c.index, id: c.id.toString('hex'), size: c.size, holders: [...holders].sort(), expected: this.#o.rank(c.id, this.#o.nodes).slice(0, want) });
    }
  }

  async #replicated(batch: ChunkRef[], r: number): Promise<void> {
    const answers = await this.#o.ask(batch.map((c) => c.id));
    batch.forEach((c, i) => {
      const holders = answers.filter((a) => a.have[i] === true).map((a) => a.node);
      this.#count(holders.length, r, 1);
      this.#note(c, holders, r);
      this.#tolerate(holders.map((h) => [this.#zone(h)]), 1);
    });
  }

  async #striped(batch: ChunkRef[], k: number, m: number): Promise<void> {
    const stripes: (Stripe | undefined)[] = new Array(batch.length);
    let next = 0;
    const reader = async () => {
      while (next < batch.length) {
        const i = next++;
        stripes[i] = await this.#o.stripe(batch[i]!.id).catch(() => undefined);
      }
    };
    await Promise.all(Array.from({ length: Math.min(STRIPE_READS_AT_ONCE, batch.length) }, reader));
    const ids: Buffer[] = [];
    const first: number[] = [];
    for (const st of stripes) {
      first.push(ids.length);
      if (st) ids.push(...st.s);
    }
    const answers = ids.length > 0 ? await this.#o.ask(ids) : [];
    batch.forEach((c, i) => {
      const st = stripes[i];
      if (!st) {
        // No descriptor anywhere: nothing says where the shards are, so nothing can be read.
        this.#count(0, k + m, k);
        this.#note(c, [], k + m);
        this.#tolerate([], k);
        return;
      }
      const holders = new Set<string>();
      const shardZones: string[][] = [];
      for (let j = 0; j < st.s.length; j++) {
        const at = first[i]! + j;
        const zones: string[] = [];
        for (const a of answers) {
          if (a.have[at] === true) {
            holders.add(a.node);
            zones.push(this.#zone(a.node));
          }
        }
        shardZones.push(zones);
      }
      const present = shardZones.filter((z) => z.length > 0).length;
      this.#count(present, st.k + st.m, st.k);
      this.#tolerate(shardZones, st.k);
      this.#note(c, [...holders], st.k + st.m);
    });
  }
}
