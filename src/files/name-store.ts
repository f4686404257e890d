/**
 * One node's replica of the name records: sealed boxes under lookup keys, merged last writer
 * wins. The node needs no keys to keep them, so storage-only nodes hold names too.
 */
import { type Hlc, type HybridClock, checkSealedNameRecord, newerNameRecord, type SealedNameRecord } from '../content/index.js';
import type { Metadata } from '../store/index.js';
import { MAX_LIST_PAGE_BYTES } from './limits.js';

const TABLE = 'names';
// Keys are stored as hex text: LMDB's ordered-binary key encoding does not give byte keys back as written.

interface Stored {
  hlc: Hlc;
  box: Uint8Array;
}

export class NameStore {
  constructor(
    private readonly meta: Metadata,
    private readonly clock: HybridClock,
  ) {
    meta.table(TABLE);
  }

  get(key: Buffer): SealedNameRecord | undefined {
    const v = this.meta.get<Stored>(TABLE, key.toString('hex'));
    return v === undefined ? undefined : { key: Buffer.from(key), hlc: v.hlc, box: Buffer.from(v.box) };
  }

  /** Keeps the newer of the stored and offered record; true when the offered one won. */
  async merge(offered: SealedNameRecord): Promise<boolean> {
    const rec = checkSealedNameRecord(offered);
    // Folding remote timestamps in keeps this node's next write later than any it has seen.
    this.clock.receive(rec.hlc);
    const cur = this.get(rec.key);
    if (cur !== undefined && newerNameRecord(cur, rec) === cur) return false;
    await this.meta.put(TABLE, rec.key.toString('hex'), { hlc: rec.hlc, box: rec.box });
    return true;
  }

  /** One page of records in key order after `after`, bounded in count and bytes. */
  list(after: Buffer | undefined, limit: number): { records: SealedNameRecord[]; more: boolean } {
    const records: SealedNameRecord[] = [];
    let bytes = 0;
    let more = false;
    const from = after?.toString('hex');
    for (const { key, value } of this.meta.range<Stored>(TABLE, from !== undefined ? { start: from } : {})) {
      if (key === from) continue;
      const k = Buffer.from(String(key), 'hex');
      if (records.length >= limit || bytes + value.box.length + 96 > MAX_LIST_PAGE_BYTES) {
        more = true;
        break;
      }
      bytes += value.box.length + 96;
      records.push({ key: k, hlc: value.hlc, box: Buffer.from(value.box) });
    }
    return { records, more };
  }
}
