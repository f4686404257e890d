/**
 * What a holder must know about each local chunk to heal it without reading any manifest (a
 * storage-only node has no key): how many copies it should have, whether it is the descriptor
 * of an erasure-coded stripe, and for a shard which stripe(s) it belongs to. Recorded when the
 * chunk arrives; chunks stored before this existed count as 3 replicas, the default policy.
 */
import type { Metadata } from '../store/index.js';

const T = {
  copies: 'heal-copies', // chunk → copies wanted (replicas, or k+m for a descriptor)
  stripes: 'heal-stripes', // descriptor chunk → 1
  shardOf: 'heal-shard-of', // `${shard}/${descriptor}` → index (equal shards of two stripes share one copy)
} as const;

export const LEGACY_REPLICAS = 3;

export class RepairMeta {
  constructor(private readonly meta: Metadata) {
    for (const t of Object.values(T)) meta.table(t);
  }

  /** Copies wanted; the largest any file asked for wins, since a shared chunk serves all of them. */
  async setCopies(hex: string, r: number): Promise<void> {
    const prev = this.meta.get<number>(T.copies, hex);
    if (prev === undefined || prev < r) await this.meta.put(T.copies, hex, r);
  }

  copies(hex: string): number {
    return this.meta.get<number>(T.copies, hex) ?? LEGACY_REPLICAS;
  }

  async markStripe(hex: string): Promise<void> {
    if (!this.meta.has(T.stripes, hex)) await this.meta.put(T.stripes, hex, 1);
  }

  isStripe(hex: string): boolean {
    return this.meta.has(T.stripes, hex);
  }

  async addShard(hex: string, descriptor: string, index: number): Promise<void> {
    const key = `${hex}/${descriptor}`;
    if (this.meta.get<number>(T.shardOf, key) !== index) await this.meta.put(T.shardOf, key, index);
  }

  /** Stripes this chunk is a shard of (usually one). */
  shardOf(hex: string): { d: string; i: number }[] {
    return [...this.meta.range<number>(T.shardOf, { prefix: `${hex}/` })].map((e) => ({ d: String(e.key).slice(hex.length + 1), i: e.value }));
  }

  isShard(hex: string): boolean {
    for (const _ of this.meta.range(T.shardOf, { prefix: `${hex}/`, limit: 1 })) return true;
    return false;
  }

  /** Forgets a chunk this node no longer holds. */
  async forget(hex: string): Promise<void> {
    const writes: Promise<unknown>[] = [this.meta.remove(T.copies, hex), this.meta.remove(T.stripes, hex)];
    for (const s of this.shardOf(hex)) writes.push(this.meta.remove(T.shardOf, `${hex}/${s.d}`));
    await Promise.all(writes);
  }
}
