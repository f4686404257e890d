/**
 * Write intent log: the set of stripes whose data and parity may disagree because a write to them
 * may be in flight. A stripe is durably marked before its first member write starts. Marks are
 * group-committed: every stripe that needs marking while one append is being synced goes into
 * the next append, and all its writers wait on that one fdatasync. A stripe stays marked while it
 * is hot and is cleared only after it has been idle for a while (as Linux md's write-intent
 * bitmap does), so rewriting the same stripes logs nothing. With a region size above 1, marking
 * a stripe marks the other stripes of its region in the same append (md's bitmap chunk): a
 * stream of writes scattered over a region then waits for one fdatasync, not one per stripe,
 * at the price of recomputing the whole region after a crash. After a crash, the stripes found
 * marked get their parity (or mirrors) recomputed.
 *
 * On storage the log is a header, then batches appended in order; a compaction replaces it with
 * a header and one batch holding the marked set. A batch is [magic u16][count u32][count ×
 * (op u8, stripe u48)][first 4 bytes of its SHA-256]; the first batch that is not whole and
 * intact ends the log, since only an append whose sync never finished can be torn.
 */
import { createHash } from 'node:crypto';
import { badInput, corrupt, tooLarge } from '../../errors.js';
import { MAX_U48, U48_BYTES, type LogStorage } from './storage.js';

/** Marked stripes (active or idle); each costs a parity recomputation after a crash. */
export const MAX_INTENT_STRIPES = 65_536;
/** A marked stripe is cleared once it has seen no write for this long. */
export const DEFAULT_INTENT_CLEAR_DELAY_MS = 5_000;
/** Largest intent region: a crash recomputes every stripe of each marked region. */
export const MAX_REGION_STRIPES = 1024;
/** Bytes appended since the last compaction after which the log is compacted again. */
export const INTENT_COMPACT_BYTES = 512 << 10;

const MAGIC_V1 = Buffer.from('TIL1');
const MAGIC = Buffer.from('TIL2');
const HEADER_BYTES = MAGIC.length + 4;
const BATCH_MAGIC = 0xb17c;
const ENTRY_BYTES = 1 + U48_BYTES;
const SUM_BYTES = 4;
/** A batch holds at most one op per stripe: every marked stripe cleared plus as many marked. */
const MAX_BATCH_ENTRIES = 2 * MAX_INTENT_STRIPES;
const OP_CLEAR = 0;
const OP_MARK = 1;

function checksum(buf: Buffer): Buffer {
  return createHash('sha256').update(buf).digest().subarray(0, SUM_BYTES);
}

/** One batch of ops (true = mark, false = clear), in the order given. */
export function encodeBatch(ops: Iterable<[number, boolean]>): Buffer {
  const list = [...ops];
  if (list.length > MAX_BATCH_ENTRIES) throw tooLarge(`intent batch of ${list.length} entries exceeds ${MAX_BATCH_ENTRIES}`);
  const body = 6 + list.length * ENTRY_BYTES;
  const buf = Buffer.allocUnsafe(body + SUM_BYTES);
  buf.writeUInt16LE(BATCH_MAGIC, 0);
  buf.writeUInt32LE(list.length, 2);
  let o = 6;
  for (const [s, mark] of list) {
    if (!Number.isInteger(s) || s < 0 || s > MAX_U48) throw badInput(`stripe ${s} cannot be logged`);
    buf.writeUInt8(mark ? OP_MARK : OP_CLEAR, o);
    buf.writeUIntLE(s, o + 1, U48_BYTES);
    o += ENTRY_BYTES;
  }
  checksum(buf.subarray(0, body)).copy(buf, body);
  return buf;
}

/** A whole log holding exactly `stripes` marked. */
export function encodeIntents(stripes: Iterable<number>): Buffer {
  const list = [...stripes];
  if (list.length > MAX_INTENT_STRIPES) throw tooLarge(`intent log of ${list.length} stripes exceeds ${MAX_INTENT_STRIPES}`);
  const head = Buffer.alloc(HEADER_BYTES);
  MAGIC.copy(head, 0);
  return Buffer.concat([head, encodeBatch(list.map((s) => [s, true] as [number, boolean]))]);
}

function decodeV1(buf: Buffer): number[] {
  const count = buf.readUInt32LE(MAGIC_V1.length);
  if (count > MAX_INTENT_STRIPES) throw tooLarge(`intent log claims ${count} stripes, over ${MAX_INTENT_STRIPES}`);
  if (buf.length !== HEADER_BYTES + count * U48_BYTES) throw corrupt(`intent log length ${buf.length} does not match its ${count} stripes`);
  const out: number[] = [];
  for (let i = 0; i < count; i++) out.push(buf.readUIntLE(HEADER_BYTES + i * U48_BYTES, U48_BYTES));
  return out;
}

/** The stripes a log leaves marked (also reads the earlier whole-file format, TIL1). */
export function decodeIntents(buf: Buffer): number[] {
  if (buf.length < HEADER_BYTES) throw corrupt('intent log has no valid header');
  const head = buf.subarray(0, MAGIC.length);
  if (head.equals(MAGIC_V1)) return decodeV1(buf);
  if (!head.equals(MAGIC)) throw corrupt('intent log has no valid header');
  const marked = new Set<number>();
  let o = HEADER_BYTES;
  while (o + 6 + SUM_BYTES <= buf.length && buf.readUInt16LE(o) === BATCH_MAGIC) {
    const count = buf.readUInt32LE(o + 2);
    if (count > MAX_BATCH_ENTRIES) break;
    const body = 6 + count * ENTRY_BYTES;
    if (o + body + SUM_BYTES > buf.length) break;
    if (!checksum(buf.subarray(o, o + body)).equals(buf.subarray(o + body, o + body + SUM_BYTES))) break;
    for (let e = o + 6; e < o + body; e += ENTRY_BYTES) {
      const s = buf.readUIntLE(e + 1, U48_BYTES);
      if (buf.readUInt8(e) === OP_MARK) marked.add(s);
      else marked.delete(s);
    }
    o += body + SUM_BYTES;
  }
  if (marked.size > MAX_INTENT_STRIPES) throw tooLarge(`intent log marks ${marked.size} stripes, over ${MAX_INTENT_STRIPES}`);
  return [...marked];
}

interface Batch {
  /** Stripe → mark (true) or clear (false); the last op queued for a stripe wins. */
  ops: Map<number, boolean>;
  /** Replace the whole log instead of appending. */
  compact: boolean;
  done: Promise<void>;
  resolve: () => void;
  reject: (e: unknown) => void;
}

function newBatch(): Batch {
  let resolve!: () => void;
  let reject!: (e: unknown) => void;
  const done = new Promise<void>((res, rej) => { resolve = res; reject = rej; });
  // Nobody may be waiting on a batch that only clears; its failure must not go unhandled.
  done.catch(() => {});
  return { ops: new Map(), compact: false, done, resolve, reject };
}

export class IntentLog {
  /** Stripes with writes under way, with how many. */
  private readonly active = new Map<number, number>();
  /** Stripes marked in the durable log. */
  private readonly durable: Set<number>;
  /** Marked stripes without writes, by when their last write ended (oldest first). */
  private readonly idleSince = new Map<number, number>();
  /** The batch being written, and the one collecting ops meanwhile. */
  private current: Batch | null = null;
  private next: Batch | null = null;
  private writing = false;
  private appendedBytes = 0;
  private sweepTimer: NodeJS.Timeout | null = null;
  private closed = false;

  private readonly regionStripes: number;
  private readonly stripeCount: number;

  private constructor(
    private readonly storage: LogStorage,
    readonly pending: readonly number[],
    private readonly clearDelayMs: number,
    opts: { regionStripes?: number; stripeCount?: number },
  ) {
    const r = opts.regionStripes ?? 1;
    if (!Number.isSafeInteger(r) || r < 1 || r > MAX_REGION_STRIPES) throw badInput(`intent region of ${r} stripes must be 1..${MAX_REGION_STRIPES}`);
    this.regionStripes = r;
    this.stripeCount = opts.stripeCount ?? Number.MAX_SAFE_INTEGER;
    this.durable = new Set(pending);
    const now = Date.now();
    for (const s of pending) this.idleSince.set(s, now);
  }

  /**
   * Loads the log; `pending` holds the stripes that were marked when the last master stopped.
   * `regionStripes` (default 1) stripes are marked together; `stripeCount` bounds the last region.
   */
  static async open(storage: LogStorage, opts: { clearDelayMs?: number; regionStripes?: number; stripeCount?: number } = {}): Promise<IntentLog> {
    const blob = await storage.load();
    const pending = blob === null ? [] : decodeIntents(blob);
    // A fresh compaction drops any torn tail and gives appends a known place to start.
    await storage.save(encodeIntents(pending));
    return new IntentLog(storage, pending, opts.clearDelayMs ?? DEFAULT_INTENT_CLEAR_DELAY_MS, opts);
  }

  /** Stripes with writes under way. */
  get inFlight(): number { return this.active.size; }

  /** Stripes marked in the log (in flight or recently written). */
  get marked(): number { return this.durable.size; }

  /** Resolves once `stripe` is durably marked. */
  async begin(stripe: number): Promise<void> {
    if (this.closed) throw badInput('intent log is closed');
    const n = this.active.get(stripe) ?? 0;
    if (n === 0 && this.active.size >= MAX_INTENT_STRIPES) throw tooLarge(`more than ${MAX_INTENT_STRIPES} stripes in flight`);
    this.active.set(stripe, n + 1);
    this.idleSince.delete(stripe);
    if (this.durable.has(stripe)) return;
    let b: Batch;
    // Joining the append under way is enough unless a clear of this stripe is queued behind it:
    // then the mark must go again, after the clear, or the log would lose it mid-write.
    if (this.current?.ops.get(stripe) === true && !this.clearQueued(stripe)) {
      b = this.current;
    } else {
      if (this.durable.size + (this.next?.ops.size ?? 0) >= MAX_INTENT_STRIPES) this.evict();
      b = this.batch();
      b.ops.set(stripe, true);
      if (this.regionStripes > 1) this.markRegion(stripe, b);
    }
    try {
      await b.done;
    } catch (e) {
      this.end(stripe);
      throw e;
    }
  }

  /**
   * Adds the rest of the stripe's region to the batch, as idle marks: they are cleared after the
   * clear delay like any stripe whose writes ended, unless written meanwhile.
   */
  private markRegion(stripe: number, b: Batch): void {
    const first = stripe - (stripe % this.regionStripes);
    const end = Math.min(first + this.regionStripes, this.stripeCount);
    const now = Date.now();
    let added = false;
    for (let s = first; s < end; s++) {
      if (s === stripe || this.durable.has(s) || this.active.has(s) || b.ops.get(s) === true || this.current?.ops.get(s) === true) continue;
      if (this.durable.size + b.ops.size >= MAX_INTENT_STRIPES) break;
      b.ops.set(s, true);
      this.idleSince.delete(s);
      this.idleSince.set(s, now);
      added = true;
    }
    if (added) this.armSweep(this.clearDelayMs);
  }

  private armSweep(ms: number): void {
    if (this.sweepTimer !== null || this.closed) return;
    this.sweepTimer = setTimeout(() => { this.sweepTimer = null; this.sweep(); }, ms);
    this.sweepTimer.unref();
  }

  /** The stripe's data and parity agree again; it stays marked until it has been idle a while. */
  end(stripe: number): void {
    const n = this.active.get(stripe) ?? 0;
    if (n > 1) { this.active.set(stripe, n - 1); return; }
    this.active.delete(stripe);
    this.idleSince.set(stripe, Date.now());
    if (this.sweepTimer === null && !this.closed) {
      this.sweepTimer = setTimeout(() => { this.sweepTimer = null; this.sweep(); }, this.clearDelayMs);
      this.sweepTimer.unref();
    }
  }

  /** Queues clears for stripes idle for the clear delay, and re-arms while others wait. */
  private sweep(): void {
    if (this.closed) return;
    const cutoff = Date.now() - this.clearDelayMs;
    let oldestLeft: number | undefined;
    for (const [s, t] of this.idleSince) {
      if (t > cutoff) { oldestLeft = t; break; }
      this.queueClear(s);
    }
    if (oldestLeft !== undefined) {
      this.sweepTimer = setTimeout(() => { this.sweepTimer = null; this.sweep(); }, Math.max(1, oldestLeft - cutoff));
      this.sweepTimer.unref();
    }
  }

  /** Makes room for new marks by clearing the longest-idle stripes now. */
  private evict(): void {
    const want = Math.max(1, MAX_INTENT_STRIPES >>> 4);
    let n = 0;
    for (const s of this.idleSince.keys()) {
      if (n++ >= want) break;
      this.queueClear(s);
    }
  }

  private queueClear(s: number): void {
    // Off the durable set first: a write that begins now must wait for a fresh mark after the clear.
    this.idleSince.delete(s);
    this.durable.delete(s);
    this.batch().ops.set(s, false);
  }

  /** Whether the next append will clear `stripe`. */
  private clearQueued(stripe: number): boolean {
    return this.next?.ops.get(stripe) === false;
  }

  private batch(): Batch {
    if (this.next === null) {
      this.next = newBatch();
      // One turn of the event loop lets every request of a burst join the same append.
      if (!this.writing) setImmediate(() => void this.run());
      this.writing = true;
    }
    return this.next;
  }

  private async run(): Promise<void> {
    while (this.next !== null) {
      const b = this.next;
      this.next = null;
      this.current = b;
      try {
        if (b.compact || this.appendedBytes >= INTENT_COMPACT_BYTES) {
          const keep = new Set(this.durable);
          for (const [s, mark] of b.ops) if (mark) keep.add(s); else keep.delete(s);
          await this.storage.save(encodeIntents(keep));
          this.appendedBytes = 0;
        } else {
          const bytes = encodeBatch(b.ops);
          this.appendedBytes += bytes.length;
          await this.storage.append(bytes);
        }
        // A mark whose clear was queued while it was being written is not durable for long:
        // remembering it would make later writes skip marking a stripe the log is about to drop.
        for (const [s, mark] of b.ops) if (mark && !this.clearQueued(s)) this.durable.add(s);
        b.resolve();
      } catch (e) {
        // A failed append may have left a torn record mid-log: rewrite the whole log next time.
        this.appendedBytes = INTENT_COMPACT_BYTES;
        b.reject(e);
      }
      this.current = null;
    }
    this.writing = false;
  }

  /** Rewrites the log with only the stripes in flight now (after a recovery, or at close). */
  async clear(): Promise<void> {
    for (const s of [...this.idleSince.keys()]) this.queueClear(s);
    for (const s of [...this.durable]) if (!this.active.has(s)) this.queueClear(s);
    const b = this.batch();
    b.compact = true;
    await b.done;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    if (this.sweepTimer !== null) clearTimeout(this.sweepTimer);
    this.sweepTimer = null;
    if (this.active.size === 0) await this.clear().catch(() => {});
    while (this.writing) await (this.next ?? this.current)?.done.catch(() => {});
    this.closed = true;
    await this.storage.close?.();
  }
}
