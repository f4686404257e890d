/**
 * Rate-limited warnings keyed by source address. A flood of refused connections from one
 * address must not become a flood of log lines (disk, log shipping, and an operator's attention
 * are what an attacker would then exhaust): each source gets at most one line per interval, and
 * the line says how many refusals it stands for.
 */
import type { Logger } from '../log.js';

/** One line per source per this interval. */
export const DEFAULT_REFUSAL_LOG_INTERVAL_MS = 10_000;
/**
 * Sources remembered at once; beyond it the oldest is forgotten (and may log one line early).
 * Keeps a spray of spoofed or many distinct addresses from growing this table without bound.
 */
export const MAX_REFUSAL_LOG_SOURCES = 4096;

interface SourceState {
  /** When the last line for this source was written. */
  loggedAt: number;
  /** Refusals since that line. */
  suppressed: number;
}

export class RefusalLog {
  private readonly sources = new Map<string, SourceState>();

  constructor(
    private readonly log: Logger,
    private readonly intervalMs = DEFAULT_REFUSAL_LOG_INTERVAL_MS,
    private readonly now: () => number = Date.now,
  ) {}

  /** Logs `msg` for `source` unless a line for it went out within the interval. True when logged. */
  refused(source: string, fields: Record<string, unknown>, msg: string): boolean {
    const t = this.now();
    const s = this.sources.get(source);
    if (s !== undefined && t - s.loggedAt < this.intervalMs) {
      s.suppressed++;
      return false;
    }
    const suppressed = s?.suppressed ?? 0;
    // Re-inserted so the map's order is least recently logged first.
    this.sources.delete(source);
    if (this.sources.size >= MAX_REFUSAL_LOG_SOURCES) this.sources.delete(this.sources.keys().next().value as string);
    this.sources.set(source, { loggedAt: t, suppressed: 0 });
    this.log.warn({ source, ...fields, ...(suppressed > 0 ? { alsoRefusedSinceLastLine: suppressed } : {}) }, msg);
    return true;
  }

  /** Sources currently tracked (for tests of the bound). */
  get size(): number {
    return this.sources.size;
  }
}
