/**
 * Coalesces concurrent writes to one partition into batches, as Garage and Cassandra do: entries
 * submitted for a partition in the same event-loop turn (and, while earlier batches of that
 * partition are still out, until they return) travel as one batch, so the holders see one merge
 * request each and commit it in one transaction, one fsync for all its writers (group commit).
 * A batch is bounded in entries and bytes; a full one leaves at once. Every writer of a batch
 * settles with the batch: all are acknowledged when its flush succeeds, all fail with its error.
 * Scheduling only, no I/O: the flush function does the sending.
 */
import { TesseraError } from '../errors.js';

/**
 * Batches of one partition out at once: one being committed while the next fills (double
 * buffering). Past this, further writes wait for one to return and go together in the next, so
 * under load batches grow instead of the number of requests and transactions.
 */
export const MAX_BATCHES_IN_FLIGHT = 2;

export interface BatcherOptions<E, R> {
  /** Sends one batch; its outcome is every writer's. May return a value per entry (same order). */
  readonly flush: (partition: number, entries: readonly E[]) => Promise<readonly R[]>;
  /** Bytes an entry counts for against maxBytes. */
  readonly sizeOf: (entry: E) => number;
  /** Entries one batch carries at most. */
  readonly maxEntries: number;
  /** Bytes one batch carries at most (a single larger entry still goes, alone). */
  readonly maxBytes: number;
  /** A second budget beside bytes (what the batch's reply may carry): an entry's share of it, 0 by default. */
  readonly costOf?: (entry: E) => number;
  /** The most cost one batch carries (a single costlier entry still goes, alone). */
  readonly maxCost?: number;
  readonly maxInFlight?: number;
}

interface Waiter<R> {
  resolve(r: R): void;
  reject(e: unknown): void;
}

interface Pending<E, R> {
  entries: E[];
  waiters: Waiter<R>[];
  bytes: number;
  cost: number;
  scheduled: boolean;
}

interface PartitionState<E, R> {
  pending: Pending<E, R> | undefined;
  inFlight: number;
}

export interface BatcherStats {
  batches: number;
  entries: number;
  /** Largest batch sent so far. */
  largest: number;
}

export class WriteBatcher<E, R = void> {
  readonly stats: BatcherStats = { batches: 0, entries: 0, largest: 0 };
  readonly #o: BatcherOptions<E, R>;
  readonly #maxEntries: number;
  readonly #maxBytes: number;
  readonly #maxInFlight: number;
  readonly #maxCost: number;
  readonly #parts = new Map<number, PartitionState<E, R>>();

  constructor(o: BatcherOptions<E, R>) {
    this.#o = o;
    this.#maxEntries = o.maxEntries;
    this.#maxBytes = o.maxBytes;
    this.#maxInFlight = o.maxInFlight ?? MAX_BATCHES_IN_FLIGHT;
    this.#maxCost = o.maxCost ?? Number.MAX_SAFE_INTEGER;
    for (const [name, v] of [['maxEntries', this.#maxEntries], ['maxBytes', this.#maxBytes], ['maxInFlight', this.#maxInFlight], ['maxCost', this.#maxCost]] as const) {
      if (!Number.isInteger(v) || v < 1) throw new TesseraError('BAD_INPUT', `write batcher ${name} must be a positive integer, got ${v}`);
    }
  }

  /** Queues one entry; settles when the batch that carries it does. */
  submit(partition: number, entry: E): Promise<R> {
    const state = this.#state(partition);
    const size = this.#o.sizeOf(entry);
    const cost = this.#o.costOf?.(entry) ?? 0;
    let p = state.pending;
    if (p !== undefined && (p.entries.length >= this.#maxEntries || p.bytes + size > this.#maxBytes || p.cost + cost > this.#maxCost)) {
      this.#send(partition, state);
      p = undefined;
    }
    if (p === undefined) {
      p = { entries: [], waiters: [], bytes: 0, cost: 0, scheduled: false };
      state.pending = p;
    }
    const done = new Promise<R>((resolve, reject) => p.waiters.push({ resolve, reject }));
    p.entries.push(entry);
    p.bytes += size;
    p.cost += cost;
    if (p.entries.length >= this.#maxEntries || p.bytes >= this.#maxBytes || p.cost >= this.#maxCost) this.#send(partition, state);
    else this.#schedule(partition, state);
    return done;
  }

  /** Writes waiting for a batch, across partitions (not counting those already sent). */
  get queued(): number {
    let n = 0;
    for (const s of this.#parts.values()) n += s.pending?.entries.length ?? 0;
    return n;
  }

  #state(partition: number): PartitionState<E, R> {
    let s = this.#parts.get(partition);
    if (s === undefined) {
      s = { pending: undefined, inFlight: 0 };
      this.#parts.set(partition, s);
    }
    return s;
  }

  /** Flushes at the end of this event-loop turn, unless the partition already has enough batches out. */
  #schedule(partition: number, state: PartitionState<E, R>): void {
    const p = state.pending;
    if (p === undefined || p.scheduled || state.inFlight >= this.#maxInFlight) return;
    p.scheduled = true;
    setImmediate(() => {
      if (state.pending === p) this.#send(partition, state);
    });
  }

  #send(partition: number, state: PartitionState<E, R>): void {
    const p = state.pending;
    if (p === undefined) return;
    state.pending = undefined;
    state.inFlight++;
    this.stats.batches++;
    this.stats.entries += p.entries.length;
    this.stats.largest = Math.max(this.stats.largest, p.entries.length);
    const settle = () => {
      state.inFlight--;
      if (state.pending !== undefined) this.#schedule(partition, state);
      else if (state.inFlight === 0) this.#parts.delete(partition);
    };
    let flushed: Promise<readonly R[]>;
    try {
      flushed = this.#o.flush(partition, p.entries);
    } catch (e) {
      flushed = Promise.reject(e);
    }
    flushed.then(
      (results) => {
        settle();
        p.waiters.forEach((w, i) => w.resolve(results[i] as R));
      },
      (err: unknown) => {
        settle();
        for (const w of p.waiters) w.reject(err);
      },
    );
  }
}
