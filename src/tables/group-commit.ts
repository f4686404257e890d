/**
 * Group commit on the receiving side: every write a table store is handed while its previous
 * commit is still on its way to disk (and those of the same event-loop turn) goes into the next
 * commit together, so the batches that several origins send one holder cost it one transaction
 * and one fsync, not one each. One commit is out at a time; a group is bounded in writes it
 * carries, and a call larger than the bound still goes, alone. Every writer of a group settles
 * with it: each gets its own result once the commit is durable, and all fail with its error.
 * Scheduling only, no I/O: the commit function does the writing.
 */
import { TesseraError } from '../errors.js';

/** Entries one group commit carries at most: bounds one transaction's work and memory. */
export const MAX_GROUP_ENTRIES = 4096;
/**
 * After a commit that carried more than one call, the next waits this long: writers are
 * concurrent, so more of them join it. An encrypted LMDB commit costs about 1.2 ms of CPU whatever
 * it carries. In `npm run bench -- meta` (32 single-record writes in flight) 2 ms cut the holders'
 * transactions by a quarter and their CPU per record by a tenth; 5 ms cut the transactions by a
 * further fifth and the nodes' CPU per record by about 15% (10 ms cut transactions further but
 * not the CPU). A lone caller (one call per commit) never waits.
 */
export const DEFAULT_GROUP_LINGER_MS = 5;

export interface GroupCommitOptions<J, R> {
  /** Commits all jobs in one transaction; returns each job's result, in order. */
  readonly commit: (jobs: readonly J[]) => Promise<readonly R[]>;
  /** Entries a job counts for against maxEntries. */
  readonly sizeOf: (job: J) => number;
  readonly maxEntries?: number;
  /** How long the next commit waits after one that carried several calls (0: not at all). */
  readonly lingerMs?: number;
}

interface Queued<J, R> {
  readonly job: J;
  readonly size: number;
  resolve(r: R): void;
  reject(e: unknown): void;
}

export interface GroupCommitStats {
  /** Commits made (successful or not). */
  commits: number;
  /** Jobs they carried. */
  jobs: number;
  /** Most jobs one commit carried. */
  largest: number;
}

export class GroupCommit<J, R> {
  readonly stats: GroupCommitStats = { commits: 0, jobs: 0, largest: 0 };
  readonly #o: GroupCommitOptions<J, R>;
  readonly #max: number;
  readonly #linger: number;
  #queue: Queued<J, R>[] = [];
  #running = false;
  #scheduled = false;
  #idle: Array<() => void> = [];

  constructor(o: GroupCommitOptions<J, R>) {
    this.#o = o;
    this.#max = o.maxEntries ?? MAX_GROUP_ENTRIES;
    this.#linger = o.lingerMs ?? DEFAULT_GROUP_LINGER_MS;
    if (!Number.isInteger(this.#max) || this.#max < 1) throw new TesseraError('BAD_INPUT', `group commit maxEntries must be a positive integer, got ${this.#max}`);
    if (!Number.isInteger(this.#linger) || this.#linger < 0 || this.#linger > 1000) throw new TesseraError('BAD_INPUT', `group commit lingerMs must be an integer 0..1000, got ${this.#linger}`);
  }

  /** Queues one job for the next commit; settles when that commit does. */
  submit(job: J): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.#queue.push({ job, size: this.#o.sizeOf(job), resolve, reject });
      this.#schedule();
    });
  }

  /** Jobs waiting for a commit (not counting the one being committed). */
  get queued(): number {
    return this.#queue.length;
  }

  /** Resolves once nothing is queued or being committed. */
  drained(): Promise<void> {
    if (!this.#running && this.#queue.length === 0) return Promise.resolve();
    return new Promise((r) => this.#idle.push(r));
  }

  /** Commits at the end of this event-loop turn, so writes handed over in the same turn go together. */
  #schedule(): void {
    if (this.#running || this.#scheduled || this.#queue.length === 0) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      this.#next();
    });
  }

  #next(): void {
    if (this.#running) return;
    if (this.#queue.length === 0) {
      for (const r of this.#idle.splice(0)) r();
      return;
    }
    let take = 0;
    let size = 0;
    while (take < this.#queue.length && (take === 0 || size + this.#queue[take]!.size <= this.#max)) size += this.#queue[take++]!.size;
    const group = this.#queue.splice(0, take);
    this.#running = true;
    this.stats.commits++;
    this.stats.jobs += group.length;
    this.stats.largest = Math.max(this.stats.largest, group.length);
    let done: Promise<readonly R[]>;
    try {
      done = this.#o.commit(group.map((q) => q.job));
    } catch (e) {
      done = Promise.reject(e);
    }
    done.then(
      (results) => {
        if (results.length !== group.length) {
          const err = new TesseraError('INTERNAL', `group commit returned ${results.length} results for ${group.length} jobs`);
          for (const q of group) q.reject(err);
        } else group.forEach((q, i) => q.resolve(results[i]!));
      },
      (err: unknown) => {
        for (const q of group) q.reject(err);
      },
    ).finally(() => {
      this.#running = false;
      if (group.length > 1 && this.#linger > 0) {
        this.#scheduled = true;
        setTimeout(() => {
          this.#scheduled = false;
          this.#next();
        }, this.#linger);
      } else {
        // What arrived while this commit was out leaves now: it has waited one commit already.
        this.#next();
      }
    });
  }
}
