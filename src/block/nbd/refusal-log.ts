/**
 * Warnings about refused clients, at most a few per interval: a client that reconnects in a loop
 * (or many of them) must not turn the node's log into the cost of refusing them. What was held
 * back is counted and reported with the next warning that gets through.
 */
import type { Logger } from '../../log.js';

/** Refusal warnings logged per interval; the rest are counted. */
export const DEFAULT_REFUSAL_LOGS_PER_INTERVAL = 10;
export const DEFAULT_REFUSAL_LOG_INTERVAL_MS = 60_000;

export class RefusalLog {
  private windowStart = -Infinity;
  private logged = 0;
  private suppressed = 0;

  constructor(
    private readonly logger: Logger,
    private readonly perInterval = DEFAULT_REFUSAL_LOGS_PER_INTERVAL,
    private readonly intervalMs = DEFAULT_REFUSAL_LOG_INTERVAL_MS,
    private readonly now: () => number = Date.now,
  ) {}

  /** Logs at warn unless this interval's quota is spent; returns whether it logged. */
  warn(fields: Record<string, unknown>, msg: string): boolean {
    const t = this.now();
    if (t - this.windowStart >= this.intervalMs) {
      this.windowStart = t;
      this.logged = 0;
    }
    if (this.logged >= this.perInterval) {
      this.suppressed++;
      return false;
    }
    this.logged++;
    const held = this.suppressed;
    this.suppressed = 0;
    this.logger.warn(held > 0 ? { ...fields, suppressedSinceLast: held } : fields, msg);
    return true;
  }
}
