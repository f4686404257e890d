/**
 * Migration of a data directory written by the version before names became objects: each name
 * record this node kept (a sealed box in its LMDB) becomes an object of the default bucket, then
 * the records are dropped. Every node with the data key migrates its own records; nodes that held
 * the same names (the old directory wrote every name to every node) write the same objects, and
 * last writer wins by the record's time, so the order does not matter. A record is dropped only
 * after its object write reached a quorum, so a node stopped half-way starts again where it was.
 *
 * A storage-only node cannot open the records (it never held the keys) and leaves them alone: they
 * are opaque boxes, and every name they hold was also written to the nodes that migrate.
 */
import { deriveClusterKeys, HybridClock, openNameRecord } from '../content/index.js';
import type { Logger } from '../log.js';
import type { Metadata } from '../store/index.js';
import { errorMessage } from './errors.js';
import { MAX_LIST_PAGE_RECORDS } from './limits.js';
import { dropNameRecords, nameRecordCount, NameStore } from './name-store.js';
import type { ObjectService } from './object-service.js';

/** How long a migration that failed (too few table holders up) waits before it tries again. */
export const NAME_MIGRATION_RETRY_MS = 5_000;
/** Records migrated per page; each page is dropped in one transaction once migrated. */
export const NAME_MIGRATION_PAGE = 256;

export interface NameMigrationReport {
  written: number;
  removed: number;
  kept: number;
  /** Records that did not open under this cluster's keys (damaged or forged): dropped unread. */
  unreadable: number;
}

export interface NameMigrationOptions {
  meta: Metadata;
  dataKey: Buffer;
  selfId: string;
  objects: ObjectService;
  log: Logger;
}

/** Migrates every name record this node holds; throws (leaving the rest for a retry) on the first failed write. */
export async function migrateNameRecords(o: NameMigrationOptions): Promise<NameMigrationReport> {
  const report: NameMigrationReport = { written: 0, removed: 0, kept: 0, unreadable: 0 };
  if (nameRecordCount(o.meta) === 0) return report;
  const store = new NameStore(o.meta, new HybridClock(o.selfId));
  const keys = deriveClusterKeys(o.dataKey);
  const pageSize = Math.min(NAME_MIGRATION_PAGE, MAX_LIST_PAGE_RECORDS);
  // Each migrated page is dropped, so the next page starts at the front again; the bound is the record count.
  for (let guard = nameRecordCount(o.meta); guard >= 0; guard -= pageSize) {
    const { records } = store.list(undefined, pageSize);
    if (records.length === 0) break;
    for (const sealed of records) {
      let rec;
      try {
        rec = openNameRecord(keys, sealed);
      } catch (err) {
        report.unreadable++;
        o.log.warn({ key: sealed.key.toString('hex').slice(0, 16), err: errorMessage(err) }, 'a name record that does not open with this cluster\'s keys was dropped unread');
        continue;
      }
      report[await o.objects.adoptName(rec.name, { fileId: rec.fileId, size: rec.size, ...(rec.deleted ? { deleted: true } : {}) }, sealed.hlc.wall)]++;
    }
    await dropNameRecords(o.meta, records.map((r) => r.key));
  }
  return report;
}

/** Runs the migration in the background until it completes or the node stops. */
export class NameMigration {
  #stopped = false;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  /** Set once every record was migrated (or there were none). */
  done: NameMigrationReport | undefined;

  constructor(private readonly o: NameMigrationOptions) {}

  start(): void {
    if (nameRecordCount(this.o.meta) === 0) {
      this.done = { written: 0, removed: 0, kept: 0, unreadable: 0 };
      return;
    }
    this.o.log.info({ records: nameRecordCount(this.o.meta) }, 'migrating the name records of an older version into the default bucket');
    // A moment for membership to find the other full nodes, so the first writes go to their real holders.
    this.#attempt(3_000);
  }

  #attempt(delayMs: number): void {
    this.#timer = setTimeout(() => {
      this.#running = migrateNameRecords(this.o).then(
        (r) => {
          this.done = r;
          this.o.log.info(r, 'name records migrated to objects of the default bucket');
        },
        (err: unknown) => {
          if (this.#stopped) return;
          this.o.log.warn({ err: errorMessage(err) }, `name migration paused; trying again in ${NAME_MIGRATION_RETRY_MS / 1000} s`);
          this.#attempt(NAME_MIGRATION_RETRY_MS);
        },
      );
    }, delayMs);
    this.#timer.unref();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
    await this.#running?.catch(() => undefined);
  }
}
