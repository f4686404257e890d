/**
 * Getting `need` distinct pieces from the holders that can serve them, fastest holders first,
 * without waiting on a slow one at the tail: each request has a deadline from the holder board,
 * and when it passes with no answer another holder is asked too (a hedged request, as Storj's
 * long-tail cancellation does). The first verified answer for a piece wins; the requests still
 * out for it are cancelled, and a copy that arrives anyway is discarded.
 *
 * A piece is a chunk (one key, served by any of its replicas: need 1) or a shard of an
 * erasure-coded chunk (key = shard index, one holder each: need k of k+m). The I/O is the
 * caller's `attempt`, which must throw unless it returns verified bytes; time and timers are
 * injected, so the logic runs under a test's clock.
 */
import { TesseraError } from '../errors.js';
import type { HolderBoard, Ticket } from './holder-board.js';

export interface Candidate {
  /** Which piece this holder would serve. */
  key: string;
  holder: string;
  /**
   * 0 (default) for where placement puts the piece; higher for nodes that only may hold it (after
   * failures or a rebalance). A higher tier is asked only once no lower one is left to ask, so
   * the board's preference for a fast node never sends a request where the piece is not.
   */
  tier?: number;
}

export interface Timers {
  /** Calls `fn` after `ms`; the returned function cancels it. */
  after(ms: number, fn: () => void): () => void;
}

export const realTimers: Timers = {
  after(ms, fn) {
    const t = setTimeout(fn, ms);
    return () => clearTimeout(t);
  },
};

export interface GatherOptions<T> {
  need: number;
  /** In preference order for ties (placement order; data shards before parity). */
  candidates: readonly Candidate[];
  board: HolderBoard;
  /** Expected size of one piece, for the board's estimates. */
  bytes: number;
  /** Fetches and verifies one piece; rejects on any failure. Must honour `signal`. */
  attempt(c: Candidate, signal: AbortSignal): Promise<T>;
  /** Size of a result, for the rate sample. */
  sizeOf(v: T): number;
  /** A failed attempt (not one this gather cancelled). */
  onError?(c: Candidate, e: unknown): void;
  signal?: AbortSignal;
  timers?: Timers;
}

export interface GatherResult<T> {
  /** Verified pieces by key; fewer than `need` when every candidate was tried. */
  got: Map<string, { value: T; holder: string }>;
  /** Kept up to date after the gather ends too: a cancelled request may still answer. */
  counts: {
    /** Requests sent because an earlier one passed its deadline. */
    hedges: number;
    /** Answers that came after their piece was already in: discarded. */
    discarded: number;
  };
}

interface Pending {
  c: Candidate;
  /** Sent because another request passed its deadline. */
  hedge: boolean;
  ticket: Ticket;
  ac: AbortController;
  cancelTimer: () => void;
}

/** Resolves once `need` pieces are in or no candidate is left; rejects only when `signal` aborts. */
export function gather<T>(o: GatherOptions<T>): Promise<GatherResult<T>> {
  const timers = o.timers ?? realTimers;
  const got = new Map<string, { value: T; holder: string }>();
  const pending = new Set<Pending>();
  const tried = new Set<Candidate>();
  const counts = { hedges: 0, discarded: 0 };
  let settled = false;

  return new Promise<GatherResult<T>>((resolve, reject) => {
    const finish = (err?: unknown) => {
      if (settled) return;
      settled = true;
      o.signal?.removeEventListener('abort', onAbort);
      for (const p of pending) stop(p);
      pending.clear();
      if (err !== undefined) reject(err);
      else resolve({ got, counts });
    };
    const onAbort = () => finish(o.signal!.reason ?? new TesseraError('CANCELLED', 'read cancelled'));
    if (o.signal?.aborted) return onAbort();
    o.signal?.addEventListener('abort', onAbort, { once: true });

    const keysOut = () => new Set([...pending].map((p) => p.c.key));
    /** The best untried candidate for a piece not yet in; with `fresh`, only for pieces nobody is fetching. */
    const choose = (fresh: boolean): Candidate | undefined => {
      const out = keysOut();
      let open = o.candidates.filter((c) => !tried.has(c) && !got.has(c.key) && (!fresh || !out.has(c.key)));
      const tier = Math.min(...open.map((c) => c.tier ?? 0));
      open = open.filter((c) => (c.tier ?? 0) === tier);
      const holder = o.board.pick(
        open.map((c) => c.holder),
        o.bytes,
      );
      return holder === undefined ? undefined : open.find((c) => c.holder === holder);
    };
    const stop = (p: Pending) => {
      p.cancelTimer();
      o.board.dropped(p.ticket);
      p.ac.abort(new TesseraError('CANCELLED', 'another holder answered first'));
    };
    const launch = (c: Candidate, hedge = false) => {
      tried.add(c);
      const ticket = o.board.start(c.holder, o.bytes);
      const ac = new AbortController();
      const p: Pending = { c, hedge, ticket, ac, cancelTimer: () => {} };
      pending.add(p);
      const check = () => {
        if (settled || !pending.has(p)) return;
        const more = o.board.recheck(ticket);
        if (more > 0) {
          p.cancelTimer = timers.after(more, check);
          return;
        }
        const extra = choose(true) ?? choose(false);
        if (extra !== undefined) {
          counts.hedges++;
          launch(extra, true);
        }
      };
      p.cancelTimer = timers.after(ticket.deadlineMs, check);
      o.attempt(c, ac.signal).then(
        (value) => {
          if (settled || !pending.has(p)) {
            counts.discarded++;
            return;
          }
          p.cancelTimer();
          pending.delete(p);
          o.board.answered(ticket, o.sizeOf(value));
          if (got.has(c.key)) {
            counts.discarded++;
            return;
          }
          got.set(c.key, { value, holder: c.holder });
          // The other requests for this piece are no longer needed.
          for (const q of [...pending]) {
            if (q.c.key === c.key) {
              pending.delete(q);
              stop(q);
            }
          }
          step();
        },
        (e: unknown) => {
          if (settled || !pending.has(p)) return;
          p.cancelTimer();
          pending.delete(p);
          o.board.dropped(ticket);
          o.onError?.(c, e);
          // A hedge that failed is replaced while the request it backs up is still silent.
          if (p.hedge && !got.has(c.key) && [...pending].some((q) => q.c.key === c.key)) {
            const again = choose(true) ?? choose(false);
            if (again !== undefined) launch(again, true);
          }
          step();
        },
      );
    };
    /** Keeps one request out for each piece still needed; ends when enough are in or nothing is left. */
    const step = () => {
      if (settled) return;
      if (got.size >= o.need) return finish();
      while (got.size + keysOut().size < o.need) {
        const c = choose(true);
        if (c === undefined) break;
        launch(c);
      }
      if (pending.size === 0) {
        // A piece whose requests all failed may still have untried holders.
        const c = choose(false);
        if (c === undefined) return finish();
        launch(c);
      }
    };
    step();
  });
}
