/** Per-address exponential backoff (with jitter, capped) between failed dials. */

export const DEFAULT_BACKOFF_BASE_MS = 100;
export const DEFAULT_BACKOFF_MAX_MS = 10_000;
/** Addresses remembered; the oldest entries are forgotten first so a churn of peers cannot grow it. */
const MAX_TRACKED_ADDRS = 4096;

interface State {
  failures: number;
  nextAt: number;
  lastError: string;
}

export class Backoff {
  private readonly state = new Map<string, State>();

  constructor(
    private readonly baseMs: number,
    private readonly maxMs: number,
    private readonly now: () => number = Date.now,
    private readonly random: () => number = Math.random,
  ) {}

  /** Milliseconds to wait before the next attempt at `addr` (0: go ahead). */
  delay(addr: string): number {
    const s = this.state.get(addr);
    return s === undefined ? 0 : Math.max(0, s.nextAt - this.now());
  }

  lastError(addr: string): string {
    return this.state.get(addr)?.lastError ?? 'no failure recorded';
  }

  failed(addr: string, error: string): void {
    const s = this.state.get(addr) ?? { failures: 0, nextAt: 0, lastError: '' };
    s.failures++;
    const exp = Math.min(this.maxMs, this.baseMs * 2 ** Math.min(s.failures - 1, 30));
    // Half fixed, half random: spreads retries from many nodes after a shared outage.
    s.nextAt = this.now() + Math.round(exp / 2 + (this.random() * exp) / 2);
    s.lastError = error;
    this.state.delete(addr);
    this.state.set(addr, s);
    if (this.state.size > MAX_TRACKED_ADDRS) {
      const oldest = this.state.keys().next().value;
      if (oldest !== undefined) this.state.delete(oldest);
    }
  }

  succeeded(addr: string): void {
    this.state.delete(addr);
  }
}
