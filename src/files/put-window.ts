/**
 * The bookkeeping every put pipeline shares: an upload id and the nodes it touched, one abort
 * signal that follows the caller's, a window of chunk slots that holds back the source, and the
 * jobs in flight whose first failure aborts all the others.
 */
import { randomBytes } from 'node:crypto';
import { TesseraError } from '../errors.js';
import { Semaphore } from '../net/index.js';

export class PutWindow {
  readonly upload = randomBytes(16).toString('hex');
  readonly touched: Set<string>;
  readonly #ac = new AbortController();
  readonly #slots: Semaphore;
  readonly #inflight = new Set<Promise<void>>();
  readonly #outer: AbortSignal | undefined;
  readonly #onOuterAbort = () => this.#ac.abort(this.#outer?.reason ?? new TesseraError('CANCELLED', 'put cancelled'));
  /** The first error of any job, or of the put itself once it has failed. */
  failure: unknown;

  constructor(selfId: string, windowChunks: number, outer?: AbortSignal) {
    this.touched = new Set([selfId]);
    this.#slots = new Semaphore(windowChunks);
    this.#outer = outer;
    outer?.addEventListener('abort', this.#onOuterAbort, { once: true });
  }

  get signal(): AbortSignal {
    return this.#ac.signal;
  }

  /** Waits for a free slot: the source is not read further until a chunk leaves the window. */
  acquire(): Promise<void> {
    return this.#slots.acquire(this.#ac.signal);
  }

  /** Runs a job holding `slots` acquired slots, released when it ends; its failure aborts the put. */
  launch(job: () => Promise<void>, slots = 1): void {
    const p = job()
      .catch((e: unknown) => {
        this.failure ??= e;
        this.#ac.abort(e);
      })
      .finally(() => {
        this.#inflight.delete(p);
        for (let i = 0; i < slots; i++) this.#slots.release();
      });
    this.#inflight.add(p);
  }

  /** Waits for every job in flight; throws the first failure, if any. */
  async drain(): Promise<void> {
    while (this.#inflight.size > 0) await Promise.race(this.#inflight);
    if (this.failure !== undefined) throw this.failure;
  }

  /** Aborts what is in flight and waits for it to stop; returns the error the put fails with. */
  async fail(e: unknown): Promise<unknown> {
    const err = this.failure ?? e;
    this.failure = err;
    this.#ac.abort(err);
    while (this.#inflight.size > 0) await Promise.race(this.#inflight);
    return err;
  }

  /** Stops following the caller's signal. */
  close(): void {
    this.#outer?.removeEventListener('abort', this.#onOuterAbort);
  }
}
