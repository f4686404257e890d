/**
 * The name records of the previous version's name directory, as one node kept them: sealed boxes
 * under lookup keys, merged last writer wins. Names are objects now (object-service.ts); this
 * store is read only to migrate a data directory written before (name-migration.ts), and `merge`
 * is how such a directory is written in tests.
 */
import { type Hlc, type HybridClock, checkSealedNameRecord, newerNameRecord, type SealedNameRecord } from '../content/index.js';
import type { Metadata } from '../store/index.js';
import { MAX_LIST_PAGE_BYTES } from './limits.js';

const TABLE = 'names';
// Keys are stored as hex text: LMDB's ordered-binary key encoding does not give byte keys back as written.

interface Stored {
  hlc: Hlc;
  box: Uint8Array;
  /** Authority proof (content/authority.ts); absent only on records stored by older versions. */
  proof?: Uint8Array;
}

/** A record as replicated: the sealed record and the proof that a data-key holder wrote it. */
export type ProvenSealedNameRecord = SealedNameRecord & { proof?: Buffer };
/** Bytes a listed record takes beside its box: key, timestamp, proof and framing. */
const RECORD_OVERHEAD_BYTES = 160;

export class NameStore {
  constructor(
    private readonly meta: Metadata,
    private readonly clock: HybridClock,
  ) {
    meta.table(TABLE);
  }

  get(key: Buffer): ProvenSealedNameRecord | undefined {
    const v = this.meta.get<Stored>(TABLE, key.toString('hex'));
    return v === undefined ? undefined : toRecord(key, v);
  }

  /**
   * Keeps the newer of the stored and offered record; true when the offered one won. The caller
   * has checked the offered record's proof (AuthorityGate) before calling.
   */
  async merge(offered: ProvenSealedNameRecord): Promise<boolean> {
    const rec = checkSealedNameRecord(offered);
    // Folding remote timestamps in keeps this node's next write later than any it has seen.
    this.clock.receive(rec.hlc);
    const cur = this.get(rec.key);
    if (cur !== undefined && newerNameRecord(cur, rec) === cur) return false;
    await this.meta.put(TABLE, rec.key.toString('hex'), { hlc: rec.hlc, box: rec.box, ...(offered.proof ? { proof: Buffer.from(offered.proof) } : {}) });
    return true;
  }

  /** One page of records in key order after `after`, bounded in count and bytes. */
  list(after: Buffer | undefined, limit: number): { records: ProvenSealedNameRecord[]; more: boolean } {
    const records: ProvenSealedNameRecord[] = [];
    let bytes = 0;
    let more = false;
    const from = after?.toString('hex');
    for (const { key, value } of this.meta.range<Stored>(TABLE, from !== undefined ? { start: from } : {})) {
      if (key === from) continue;
      const k = Buffer.from(String(key), 'hex');
      if (records.length >= limit || bytes + value.box.length + RECORD_OVERHEAD_BYTES > MAX_LIST_PAGE_BYTES) {
        more = true;
        break;
      }
      bytes += value.box.length + RECORD_OVERHEAD_BYTES;
      records.push(toRecord(k, value));
    }
    return { records, more };
  }
}

export function nameRecordCount(meta: Metadata): number {
  return meta.count(TABLE);
}

/** Forgets migrated records, all in one durable transaction. */
export async function dropNameRecords(meta: Metadata, keys: readonly Buffer[]): Promise<void> {
  await meta.transaction((tx) => {
    for (const k of keys) tx.remove(TABLE, k.toString('hex'));
  });
}

function toRecord(key: Buffer, v: Stored): ProvenSealedNameRecord {
  return { key: Buffer.from(key), hlc: v.hlc, box: Buffer.from(v.box), ...(v.proof ? { proof: Buffer.from(v.proof) } : {}) };
}
