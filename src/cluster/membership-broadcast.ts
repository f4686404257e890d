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

/** Fewer sends first; among equals the newer update first. */
function before(a: Entry, b: Entry): boolean {
  return a.sent < b.sent || (a.sent === b.sent && a.seq > b.seq);
}

export class BroadcastQueue {
  private readonly entries = new Map<string, Entry>();
  private seq = 0;

  get size(): number {
    return this.entries.size;
  }

  /** Takes ownership of `rec`: callers pass a fresh record, and it goes out unchanged in many messages. */
  enqueue(rec: WireRecord): void {
    this.entries.set(rec.nodeId, { rec, sent: 0, seq: this.seq++ });
  }

  /**
   * Up to `max` records to piggyback on one message, skipping `exclude` (already in the message).
   * Each returned record counts as one transmission; a record sent `limit` times is dropped.
   */
  take(max: number, limit: number, exclude?: string): WireRecord[] {
    if (max <= 0 || this.entries.size === 0) return [];
    // Keep only the best `max` while scanning: O(queue) per message instead of a full sort.
    const picked: Entry[] = [];
    for (const e of this.entries.values()) {
      if (e.rec.nodeId === exclude) continue;
      if (picked.length === max && !before(e, picked[max - 1]!)) continue;
      let j = picked.length < max ? picked.length : max - 1;
      if (picked.length < max) picked.push(e);
      while (j > 0 && before(e, picked[j - 1]!)) {
        picked[j] = picked[j - 1]!;
        j--;
      }
      picked[j] = e;
    }
    const out: WireRecord[] = [];
    for (const e of picked) {
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
