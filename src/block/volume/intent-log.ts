/**
 * Write intent log: the set of stripes whose data and parity may disagree because a write to them
 * was in flight. A stripe is made durable in the log before its first member write starts; it
 * leaves the log lazily, with the next save or after a quiet period, so a busy stripe costs one
 * fsync, not one per write. After a crash, the stripes found in the log get their parity (or
 * mirrors) recomputed.
 */
import { badInput, corrupt, tooLarge } from '../../errors.js';
import { CoalescingSaver, MAX_U48, U48_BYTES, type BlobStorage } from './storage.js';

/** In-flight stripes are bounded by in-flight requests; this is far above any real queue depth. */
export const MAX_INTENT_STRIPES = 65_536;
/** Finished stripes linger this long before a save drops them. */
export const DEFAULT_INTENT_CLEAR_DELAY_MS = 1_000;

const MAGIC = Buffer.from('TIL1');
const HEADER_BYTES = MAGIC.length + 4;

export function encodeIntents(stripes: Iterable<number>): Buffer {
  const list = [...stripes];
  if (list.length > MAX_INTENT_STRIPES) throw tooLarge(`intent log of ${list.length} stripes exceeds ${MAX_INTENT_STRIPES}`);
  const buf = Buffer.alloc(HEADER_BYTES + list.length * U48_BYTES);
  MAGIC.copy(buf, 0);
  buf.writeUInt32LE(list.length, MAGIC.length);
  list.forEach((s, i) => {
    if (!Number.isInteger(s) || s < 0 || s > MAX_U48) throw badInput(`stripe ${s} cannot be logged`);
    buf.writeUIntLE(s, HEADER_BYTES + i * U48_BYTES, U48_BYTES);
  });
  return buf;
}

export function decodeIntents(buf: Buffer): number[] {
  if (buf.length < HEADER_BYTES || !buf.subarray(0, MAGIC.length).equals(MAGIC)) throw corrupt('intent log has no valid header');
  const count = buf.readUInt32LE(MAGIC.length);
  if (count > MAX_INTENT_STRIPES) throw tooLarge(`intent log claims ${count} stripes, over ${MAX_INTENT_STRIPES}`);
  if (buf.length !== HEADER_BYTES + count * U48_BYTES) throw corrupt(`intent log length ${buf.length} does not match its ${count} stripes`);
  const out: number[] = [];
  for (let i = 0; i < count; i++) out.push(buf.readUIntLE(HEADER_BYTES + i * U48_BYTES, U48_BYTES));
  return out;
}

export class IntentLog {
  /** Stripes with writes under way, with how many. */
  private readonly active = new Map<number, number>();
  /** Stripes known to be in the durable log right now. */
  private durable = new Set<number>();
  private readonly saver: CoalescingSaver;
  private clearTimer: NodeJS.Timeout | null = null;
  private closed = false;

  private constructor(private readonly storage: BlobStorage, readonly pending: readonly number[], private readonly clearDelayMs: number) {
    this.durable = new Set(pending);
    this.saver = new CoalescingSaver(storage, () => {
      const snap = new Set(this.active.keys());
      // While the save runs, only stripes in both the old and the new log are surely durable.
      this.durable = new Set([...this.durable].filter((s) => snap.has(s)));
      return { bytes: encodeIntents(snap), done: () => { this.durable = snap; } };
    });
  }

  /** Loads the log; `pending` holds the stripes that were in flight when the last master stopped. */
  static async open(storage: BlobStorage, opts: { clearDelayMs?: number } = {}): Promise<IntentLog> {
    const blob = await storage.load();
    const pending = blob === null ? [] : decodeIntents(blob);
    return new IntentLog(storage, pending, opts.clearDelayMs ?? DEFAULT_INTENT_CLEAR_DELAY_MS);
  }

  get inFlight(): number { return this.active.size; }

  /** Resolves once `stripe` is durably marked in flight. */
  async begin(stripe: number): Promise<void> {
    if (this.closed) throw badInput('intent log is closed');
    const n = this.active.get(stripe) ?? 0;
    if (n === 0 && this.active.size >= MAX_INTENT_STRIPES) throw tooLarge(`more than ${MAX_INTENT_STRIPES} stripes in flight`);
    this.active.set(stripe, n + 1);
    if (this.durable.has(stripe)) return;
    try {
      await this.saver.save();
    } catch (e) {
      this.end(stripe);
      throw e;
    }
  }

  /** The stripe's data and parity agree again; it leaves the log with a later save. */
  end(stripe: number): void {
    const n = this.active.get(stripe) ?? 0;
    if (n <= 1) this.active.delete(stripe);
    else this.active.set(stripe, n - 1);
    if (this.active.size === 0 && this.durable.size > 0 && this.clearTimer === null && !this.closed) {
      this.clearTimer = setTimeout(() => {
        this.clearTimer = null;
        if (this.durable.size > 0) this.saver.save().catch(() => {});
      }, this.clearDelayMs);
      this.clearTimer.unref();
    }
  }

  /** Rewrites the log with only the stripes in flight now (after a recovery, or at close). */
  async clear(): Promise<void> {
    await this.saver.save();
  }

  async close(): Promise<void> {
    if (this.clearTimer !== null) clearTimeout(this.clearTimer);
    this.clearTimer = null;
    await this.saver.idle();
    if (this.active.size === 0 && this.durable.size > 0) await this.saver.save();
    this.closed = true;
  }
}
