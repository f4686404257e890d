/**
 * The queue of membership updates waiting to be piggybacked. One entry per member (a newer record
 * replaces the older one), each sent a bounded number of times, least-sent first so fresh news
 * travels before news most peers already have.
 */
import type { WireRecord } from './membership-wire.js';

interface Entry {
  rec: WireRecord;
  sent: number;
  seq: number;
}

export class BroadcastQueue {
  private readonly entries = new Map<string, Entry>();
  private seq = 0;

  get size(): number {
    return this.entries.size;
  }

  enqueue(rec: WireRecord): void {
    this.entries.set(rec.nodeId, { rec: { ...rec }, sent: 0, seq: this.seq++ });
  }

  /**
   * Up to `max` records to piggyback on one message, skipping `exclude` (already in the message).
   * Each returned record counts as one transmission; a record sent `limit` times is dropped.
   */
  take(max: number, limit: number, exclude?: string): WireRecord[] {
    if (max <= 0 || this.entries.size === 0) return [];
    const picked: Entry[] = [];
    for (const e of this.entries.values()) {
      if (e.rec.nodeId === exclude) continue;
      picked.push(e);
    }
    picked.sort((a, b) => a.sent - b.sent || b.seq - a.seq);
    const out: WireRecord[] = [];
    for (const e of picked.slice(0, max)) {
      out.push(e.rec);
      e.sent++;
      if (e.sent >= limit) this.entries.delete(e.rec.nodeId);
    }
    return out;
  }

  clear(): void {
    this.entries.clear();
  }
}
