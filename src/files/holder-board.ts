/**
 * What a node has measured of each holder it reads from: how fast each one delivers, and how many
 * requests it has outstanding there. Reads ask it which holder to send the next chunk to (the one
 * expected to finish it first) and how long to wait before asking another (the hedge deadline).
 *
 * A holder's rate is measured at the receiving end as bytes per millisecond between departures:
 * requests to one peer share one connection, so while a holder is busy each reply follows the
 * last by (size ÷ its link's rate) whatever the number queued behind it. Sending the next chunk
 * where (in flight + 1) × size ÷ rate is smallest then gives each holder requests in proportion
 * to its rate: one four times slower carries about a quarter of what a fast one does.
 *
 * Pure: time comes from `now`, and nothing here does I/O.
 */

/** A reply's share of a holder's new rate estimate (exponentially weighted moving average). */
export const RATE_EWMA_WEIGHT = 0.25;
/** A rate not refreshed for this long is forgotten, so a holder that was slow or stalled is tried again. */
export const RATE_STALE_MS = 5_000;
/**
 * A request is checked on at this many times its expected time (queue included), and a holder
 * counts as silent after this many times one chunk's time without a reply; both clamped below.
 */
export const HEDGE_FACTOR = 3;
/** Below this a scheduling hiccup or a GC pause would set off needless duplicate requests. */
export const HEDGE_MIN_MS = 200;
/** The longest a read waits on a silent holder before asking another; also the wait when nothing is known of it. */
export const HEDGE_MAX_MS = 2_000;
/** Holders tracked at most; idle ones beyond this are forgotten, oldest first. */
export const MAX_TRACKED_HOLDERS = 4_096;

interface HolderState {
  /** Bytes per millisecond; undefined until a first reply. */
  rate: number | undefined;
  /** When `rate` was last set (a reply or a missed deadline). */
  ratedAt: number;
  inflight: number;
  /** Start of the current departure interval: the last reply, or when the holder last became busy. */
  mark: number;
  /** Last time the holder was asked or answered (for eviction). */
  touched: number;
  /** When a request to it last went unanswered past its deadline, if it has not answered since. */
  silentSince: number | undefined;
}

/** One request in flight at one holder, as handed out by `start`. */
export interface Ticket {
  readonly holder: string;
  readonly bytes: number;
  readonly startedAt: number;
  /** When another holder should be asked if this one has not answered. */
  readonly deadlineMs: number;
  ended: boolean;
}

const clamp = (v: number, lo: number, hi: number) => Math.min(hi, Math.max(lo, Math.ceil(v)));

export interface HolderView {
  rate: number | undefined;
  inflight: number;
}

export class HolderBoard {
  readonly #holders = new Map<string, HolderState>();
  readonly #now: () => number;

  constructor(now: () => number = Date.now) {
    this.#now = now;
  }

  get now(): number {
    return this.#now();
  }

  view(holder: string): HolderView {
    const s = this.#holders.get(holder);
    return { rate: s === undefined ? undefined : this.#fresh(s), inflight: s?.inflight ?? 0 };
  }

  /**
   * Milliseconds until a new request of `bytes` to `holder` would be answered, or undefined when
   * nothing is known of it (its rate never measured, or stale).
   */
  expectedMs(holder: string, bytes: number): number | undefined {
    const s = this.#holders.get(holder);
    const rate = s === undefined ? undefined : this.#fresh(s);
    if (rate === undefined) return undefined;
    return ((s!.inflight + 1) * bytes) / rate;
  }

  /**
   * The candidate expected to answer a request of `bytes` first; ties (and holders not measured
   * yet, which count as fast as the fastest measured one, so they get tried) go to the earlier
   * in `candidates` (placement order). A holder silent past a deadline comes last. Undefined
   * when there are none.
   */
  pick(candidates: readonly string[], bytes: number): string | undefined {
    const now = this.#now();
    let best = 0;
    for (const h of this.#holders.values()) {
      const r = this.#fresh(h, now);
      if (r !== undefined && r > best) best = r;
    }
    let chosen: string | undefined;
    let score = Infinity;
    let fallback: string | undefined;
    for (const c of candidates) {
      const s = this.#holders.get(c);
      // A holder that went silent is asked again only when nobody else can serve, or once it has had time to recover.
      if (s?.silentSince !== undefined && now - s.silentSince <= RATE_STALE_MS) {
        fallback ??= c;
        continue;
      }
      const rate = (s === undefined ? undefined : this.#fresh(s, now)) ?? (best > 0 ? best : 1);
      const t = (((s?.inflight ?? 0) + 1) * bytes) / rate;
      if (t < score) {
        score = t;
        chosen = c;
      }
    }
    return chosen ?? fallback;
  }

  /** Records a request sent to `holder`, with when to first check on it. */
  start(holder: string, bytes: number): Ticket {
    const now = this.#now();
    const expected = this.expectedMs(holder, bytes);
    const s = this.#state(holder, now);
    if (s.inflight === 0) s.mark = now;
    s.inflight++;
    s.touched = now;
    const deadlineMs = expected === undefined ? HEDGE_MAX_MS : clamp(HEDGE_FACTOR * expected, HEDGE_MIN_MS, HEDGE_MAX_MS);
    return { holder, bytes, startedAt: now, deadlineMs, ended: false };
  }

  /**
   * A request's deadline came with no answer. A holder that still delivers (its last reply came
   * within the silence allowed for one chunk) is only busy with the queue ahead of this request:
   * returns how much longer to wait. One that has gone silent for that long is stalled or far
   * slower than measured: records the miss and returns 0, meaning ask another holder now.
   */
  recheck(t: Ticket): number {
    const s = this.#holders.get(t.holder);
    if (t.ended || s === undefined) return 0;
    const now = this.#now();
    const rate = this.#fresh(s, now);
    const allowed = rate === undefined ? HEDGE_MAX_MS : clamp((HEDGE_FACTOR * t.bytes) / rate, HEDGE_MIN_MS, HEDGE_MAX_MS);
    const silent = now - Math.max(s.mark, t.startedAt);
    if (silent < allowed) return Math.max(1, allowed - silent);
    this.#missed(s, t, now);
    return 0;
  }

  /** The holder answered with `bytes`: a departure, and a rate sample. */
  answered(t: Ticket, bytes: number): void {
    const s = this.#end(t);
    if (s === undefined) return;
    const now = this.#now();
    const sample = Math.max(bytes, 1) / Math.max(1, now - s.mark);
    s.rate = s.rate === undefined || now - s.ratedAt > RATE_STALE_MS ? sample : s.rate + RATE_EWMA_WEIGHT * (sample - s.rate);
    s.ratedAt = now;
    s.mark = now;
    s.silentSince = undefined;
  }

  /** The request failed or was cancelled: no rate sample (failures are failover's business). */
  dropped(t: Ticket): void {
    this.#end(t);
  }

  /**
   * Whatever a silent holder does, it has delivered nothing since its last departure, so its rate
   * is at most one request's bytes over that time; and it is most likely stalled (a hung process,
   * a dead link), so new requests go elsewhere until it answers, or until RATE_STALE_MS has
   * passed and it is tried again.
   */
  #missed(s: HolderState, t: Ticket, now: number): void {
    const bound = Math.max(t.bytes, 1) / Math.max(1, now - Math.max(s.mark, t.startedAt));
    s.rate = s.rate === undefined ? bound : Math.min(s.rate, bound);
    s.ratedAt = now;
    s.silentSince ??= now;
  }

  #end(t: Ticket): HolderState | undefined {
    if (t.ended) return undefined;
    t.ended = true;
    const s = this.#holders.get(t.holder);
    if (s === undefined) return undefined;
    s.inflight = Math.max(0, s.inflight - 1);
    s.touched = this.#now();
    return s;
  }

  #fresh(s: HolderState, now = this.#now()): number | undefined {
    return s.rate !== undefined && now - s.ratedAt <= RATE_STALE_MS ? s.rate : undefined;
  }

  #state(holder: string, now: number): HolderState {
    let s = this.#holders.get(holder);
    if (s === undefined) {
      if (this.#holders.size >= MAX_TRACKED_HOLDERS) this.#evict();
      s = { rate: undefined, ratedAt: now, inflight: 0, mark: now, touched: now, silentSince: undefined };
      this.#holders.set(holder, s);
    }
    return s;
  }

  /** Forgets the idle holder touched longest ago (a map keeps insertion order, not recency). */
  #evict(): void {
    let oldest: string | undefined;
    let at = Infinity;
    for (const [k, s] of this.#holders) {
      if (s.inflight === 0 && s.touched < at) {
        at = s.touched;
        oldest = k;
      }
    }
    if (oldest !== undefined) this.#holders.delete(oldest);
  }
}
