/**
 * Scrub: re-reads every local chunk at a bounded rate so bit rot is found before a read needs the
 * copy. The store verifies each chunk against its id and quarantines a mismatch; scrub then
 * restores a good copy from the other holders (or rebuilds a shard from its stripe) and only then
 * purges the quarantined bytes.
 */
import type { Logger } from '../log.js';
import type { ChunkStore } from '../store/index.js';
import { TesseraError } from '../errors.js';
import { DEFAULT_SCRUB_INTERVAL_MS, DEFAULT_SCRUB_RATE_BYTES, MAX_SCRUB_REPORT_IDS } from './repair-limits.js';
import { errorMessage } from './errors.js';
import type { RepairLoop } from './repair.js';

export interface ScrubReport {
  startedAt: string;
  durationMs: number;
  checked: number;
  bytes: number;
  /** Copies that failed verification (now or earlier, still quarantined). */
  bad: number;
  repaired: number;
  unrepaired: number;
  /** Up to MAX_SCRUB_REPORT_IDS of the bad chunk ids. */
  badIds: string[];
}

export interface ScrubStats {
  running: boolean;
  rateBytesPerSec: number;
  intervalMs: number;
  passes: number;
  last: ScrubReport | null;
  totals: { checked: number; bad: number; repaired: number };
}

export class Scrubber {
  readonly #timer: { t?: NodeJS.Timeout } = {};
  #running: Promise<ScrubReport> | undefined;
  #stopped = false;
  #passes = 0;
  #last: ScrubReport | null = null;
  readonly #totals = { checked: 0, bad: 0, repaired: 0 };
  #next = 0;

  constructor(
    private readonly store: ChunkStore,
    private readonly repairLoop: RepairLoop,
    private readonly log: Logger,
    readonly rateBytes = DEFAULT_SCRUB_RATE_BYTES,
    readonly intervalMs = DEFAULT_SCRUB_INTERVAL_MS,
  ) {}

  start(): void {
    this.#timer.t = setInterval(() => void this.run().catch(() => undefined), this.intervalMs);
    this.#timer.t.unref();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer.t) clearInterval(this.#timer.t);
    await this.#running?.catch(() => undefined);
  }

  stats(): ScrubStats {
    return { running: this.#running !== undefined, rateBytesPerSec: this.rateBytes, intervalMs: this.intervalMs, passes: this.#passes, last: this.#last, totals: { ...this.#totals } };
  }

  /** One full pass; a call during a pass shares it. */
  run(): Promise<ScrubReport> {
    this.#running ??= this.#pass().finally(() => {
      this.#running = undefined;
    });
    return this.#running;
  }

  async #pace(bytes: number): Promise<void> {
    const now = Date.now();
    this.#next = Math.max(this.#next, now - 1000) + (bytes / this.rateBytes) * 1000;
    let wait = this.#next - now;
    while (wait > 0 && !this.#stopped) {
      await new Promise((r) => setTimeout(r, Math.min(wait, 250)));
      wait = this.#next - Date.now();
    }
  }

  async #pass(): Promise<ScrubReport> {
    const began = Date.now();
    let checked = 0;
    let bytes = 0;
    const bad = new Map<string, Buffer>();
    for await (const id of this.store.list()) {
      if (this.#stopped) break;
      try {
        const data = await this.store.get(id);
        checked++;
        bytes += data.length;
        await this.#pace(data.length);
      } catch (e) {
        if (e instanceof TesseraError && e.code === 'CORRUPT') {
          checked++;
          bad.set(id.toString('hex'), id);
          this.log.warn({ chunk: id.toString('hex') }, 'scrub found a bad copy; quarantined');
        } else if (!(e instanceof TesseraError && e.code === 'NOT_FOUND')) {
          this.log.warn({ chunk: id.toString('hex'), err: errorMessage(e) }, 'scrub could not read a chunk');
        }
      }
    }
    // Copies a read quarantined earlier and that no repair has replaced yet are restored too.
    for await (const id of this.store.listQuarantined()) {
      if (bad.size >= 1_000_000) break;
      const hex = id.toString('hex');
      if (!bad.has(hex) && !(await this.store.has(id))) bad.set(hex, id);
    }
    let repaired = 0;
    for (const id of bad.values()) {
      if (this.#stopped) break;
      const ok = (await this.store.has(id)) || (await this.repairLoop.restoreLocal(id));
      if (ok) {
        repaired++;
        await this.store.purgeQuarantined(id).catch(() => false);
      }
    }
    const report: ScrubReport = {
      startedAt: new Date(began).toISOString(),
      durationMs: Date.now() - began,
      checked,
      bytes,
      bad: bad.size,
      repaired,
      unrepaired: bad.size - repaired,
      badIds: [...bad.keys()].slice(0, MAX_SCRUB_REPORT_IDS),
    };
    this.#passes++;
    this.#last = report;
    this.#totals.checked += checked;
    this.#totals.bad += bad.size;
    this.#totals.repaired += repaired;
    if (bad.size > 0) this.log.info({ checked, bad: bad.size, repaired }, 'scrub pass done');
    return report;
  }
}
