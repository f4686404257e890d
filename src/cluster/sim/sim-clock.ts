/**
 * A simulated clock: timers are events in a priority queue ordered by (time, insertion order), and
 * time only moves when the simulation runs them. Between two events every pending promise callback
 * is allowed to settle, so async code behaves as on the real event loop, deterministically.
 */
import { TesseraError } from '../../errors.js';
import type { Clock } from '../clock.js';

interface Timer {
  at: number;
  seq: number;
  fn: () => void;
  cancelled: boolean;
}

/** Events one run may execute before it is considered runaway. */
export const DEFAULT_MAX_EVENTS = 5_000_000;

const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

export class SimClock implements Clock {
  private t = 0;
  private seq = 0;
  private readonly heap: Timer[] = [];
  private live = 0;
  /** Events executed so far. */
  executed = 0;

  now(): number {
    return this.t;
  }

  setTimeout(fn: () => void, ms: number): unknown {
    const timer: Timer = { at: this.t + Math.max(0, Number.isFinite(ms) ? ms : 0), seq: this.seq++, fn, cancelled: false };
    this.push(timer);
    this.live++;
    return timer;
  }

  clearTimeout(handle: unknown): void {
    const t = handle as Timer | undefined;
    if (t !== undefined && !t.cancelled) {
      t.cancelled = true;
      this.live--;
    }
  }

  /** Timers scheduled and not yet run or cancelled. */
  get pending(): number {
    return this.live;
  }

  /** Run every event due up to `until` (absolute simulated ms), then set the time to `until`. */
  async runUntil(until: number, maxEvents = DEFAULT_MAX_EVENTS): Promise<void> {
    await settle();
    let n = 0;
    for (;;) {
      const top = this.heap[0];
      if (top === undefined || top.at > until) break;
      this.pop();
      if (top.cancelled) continue;
      this.live--;
      if (++n > maxEvents) {
        throw new TesseraError('INTERNAL', `simulation ran more than ${maxEvents} events before ${until} ms; a timer loop is probably spinning`);
      }
      this.t = top.at;
      this.executed++;
      top.fn();
      await settle();
    }
    this.t = Math.max(this.t, until);
  }

  runFor(ms: number, maxEvents = DEFAULT_MAX_EVENTS): Promise<void> {
    return this.runUntil(this.t + ms, maxEvents);
  }

  /** Run until `pred` holds (checked after each simulated `stepMs`), at most `limitMs`; true if it held. */
  async runUntilTrue(pred: () => boolean, limitMs: number, stepMs = 50): Promise<boolean> {
    const end = this.t + limitMs;
    while (this.t < end) {
      if (pred()) return true;
      await this.runUntil(Math.min(end, this.t + stepMs));
    }
    return pred();
  }

  private less(a: Timer, b: Timer): boolean {
    return a.at < b.at || (a.at === b.at && a.seq < b.seq);
  }

  private push(x: Timer): void {
    const h = this.heap;
    h.push(x);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.less(h[i]!, h[p]!)) break;
      [h[i], h[p]] = [h[p]!, h[i]!];
      i = p;
    }
  }

  private pop(): void {
    const h = this.heap;
    const last = h.pop();
    if (last === undefined || h.length === 0) return;
    h[0] = last;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < h.length && this.less(h[l]!, h[m]!)) m = l;
      if (r < h.length && this.less(h[r]!, h[m]!)) m = r;
      if (m === i) break;
      [h[i], h[m]] = [h[m]!, h[i]!];
      i = m;
    }
  }
}
