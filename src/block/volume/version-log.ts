/**
 * The append-only log of a sealed volume's seal-version changes (seal-versions.ts): each member
 * flush (or FUA write) appends the durable versions it established, as runs, and each new
 * reserved range appends its ceiling. The log is synced before the flush is acknowledged. Once
 * it holds LOG_COMPACT_BYTES or LOG_COMPACT_RECORDS, the changes are checkpointed into the
 * version table (version-table.ts: written in place and synced) and the log is replaced by one
 * holding only the ceiling. Replaying takes the larger version per sector, so a log replayed
 * over a table that already holds some of its changes gives the same table.
 *
 * On storage: header 'TVL1' ‖ zero (u32), then batches appended in order. A batch is
 *   magic (u16 LE 0x7e51) ‖ sequence (u32 LE) ‖ count (u32 LE) ‖ count × entry ‖ first 4 bytes of the SHA-256 of all before
 * and an entry is 20 bytes:
 *   kind (u8: 1 ceiling, 2 run) ‖ member (u8) ‖ first sector (u48 LE) ‖ sectors (u32 LE) ‖ version (f64 LE)
 * A run says that `sectors` sectors of `member` from `first sector` became durable at versions
 * `version`, `version + 1`, …; a ceiling says versions up to `version` may be in use. The batch
 * after a compaction has sequence 0 and holds the ceiling; every append takes the next sequence.
 *
 * Damage: the log appends one batch at a time and starts the next only after the previous one's
 * sync returned, so an intact batch further on proves that a damaged one before it had been
 * stable: that is a corrupt log, refused. A damaged batch with nothing intact after it is the
 * torn tail of an append a crash cut short, and is ignored (its flush was never acknowledged).
 */
import { createHash } from 'node:crypto';
import { badInput, corrupt, tooLarge } from '../../errors.js';
import { MAX_SEAL_VERSION } from './seal.js';
import { MAX_U48, U48_BYTES, type LogStorage } from './storage.js';

/** Bytes appended after which the next batch compacts the log instead. */
export const LOG_COMPACT_BYTES = 1 << 20;
/**
 * Entries appended after which the next batch compacts the log instead. Each run dirties at
 * least one page of the version table, so this also bounds what a checkpoint writes.
 */
export const LOG_COMPACT_RECORDS = 16_384;
/** Entries one batch may hold; a batch that would hold more compacts the log instead. */
export const MAX_LOG_BATCH_ENTRIES = LOG_COMPACT_RECORDS;

const MAGIC = Buffer.from('TVL1');
export const LOG_HEADER_BYTES = MAGIC.length + 4;
const BATCH_MAGIC = 0x7e51;
const BATCH_HEAD_BYTES = 2 + 4 + 4;
export const LOG_ENTRY_BYTES = 20;
const SUM_BYTES = 4;
const KIND_CEILING = 1;
const KIND_RUN = 2;

/** Sectors [first, first + count) of `member` are durable at versions version, version + 1, …. */
export interface VersionRun {
  member: number;
  first: number;
  count: number;
  version: number;
}

export type LogEntry = { ceiling: number } | VersionRun;

export interface VersionLogContents {
  /** The largest ceiling recorded (0 when none). */
  ceiling: number;
  runs: VersionRun[];
  /** Sequence of the last intact batch (-1: none). */
  lastSeq: number;
  /** A torn last batch was ignored. */
  torn: boolean;
}

export interface LogGeometry {
  members: number;
  sectorsPerMember: number;
}

function checksum(buf: Buffer): Buffer {
  return createHash('sha256').update(buf).digest().subarray(0, SUM_BYTES);
}

/** One batch of entries under sequence `seq`. */
export function encodeLogBatch(seq: number, entries: readonly LogEntry[]): Buffer {
  if (entries.length > MAX_LOG_BATCH_ENTRIES) throw tooLarge(`version log batch of ${entries.length} entries exceeds ${MAX_LOG_BATCH_ENTRIES}`);
  if (!Number.isInteger(seq) || seq < 0 || seq > 0xffff_ffff) throw badInput(`version log sequence ${seq} is out of range`);
  const body = BATCH_HEAD_BYTES + entries.length * LOG_ENTRY_BYTES;
  const buf = Buffer.alloc(body + SUM_BYTES);
  buf.writeUInt16LE(BATCH_MAGIC, 0);
  buf.writeUInt32LE(seq, 2);
  buf.writeUInt32LE(entries.length, 6);
  let o = BATCH_HEAD_BYTES;
  for (const e of entries) {
    if ('ceiling' in e) {
      if (!Number.isSafeInteger(e.ceiling) || e.ceiling < 0 || e.ceiling > MAX_SEAL_VERSION) throw badInput(`ceiling ${e.ceiling} cannot be logged`);
      buf.writeUInt8(KIND_CEILING, o);
      buf.writeDoubleLE(e.ceiling, o + 12);
    } else {
      const { member, first, count, version } = e;
      if (!Number.isInteger(member) || member < 0 || member > 0xff) throw badInput(`member ${member} cannot be logged`);
      if (!Number.isSafeInteger(first) || first < 0 || first > MAX_U48) throw badInput(`sector ${first} cannot be logged`);
      if (!Number.isInteger(count) || count < 1 || count > 0xffff_ffff) throw badInput(`run of ${count} sectors cannot be logged`);
      if (!Number.isSafeInteger(version) || version < 1 || version + count - 1 > MAX_SEAL_VERSION) throw badInput(`version ${version} cannot be logged`);
      buf.writeUInt8(KIND_RUN, o);
      buf.writeUInt8(member, o + 1);
      buf.writeUIntLE(first, o + 2, U48_BYTES);
      buf.writeUInt32LE(count, o + 8);
      buf.writeDoubleLE(version, o + 12);
    }
    o += LOG_ENTRY_BYTES;
  }
  checksum(buf.subarray(0, body)).copy(buf, body);
  return buf;
}

/** A whole compacted log: the header and batch 0 holding the ceiling. */
export function encodeCompactedLog(ceiling: number): Buffer {
  const head = Buffer.alloc(LOG_HEADER_BYTES);
  MAGIC.copy(head, 0);
  return Buffer.concat([head, encodeLogBatch(0, [{ ceiling }])]);
}

/** The batch at `o` if it is whole and intact: its sequence, entry count and length; else null. */
function intactBatchAt(buf: Buffer, o: number): { seq: number; count: number; bytes: number } | null {
  if (o + BATCH_HEAD_BYTES + SUM_BYTES > buf.length || buf.readUInt16LE(o) !== BATCH_MAGIC) return null;
  const count = buf.readUInt32LE(o + 6);
  if (count > MAX_LOG_BATCH_ENTRIES) return null;
  const body = BATCH_HEAD_BYTES + count * LOG_ENTRY_BYTES;
  if (o + body + SUM_BYTES > buf.length) return null;
  if (!checksum(buf.subarray(o, o + body)).equals(buf.subarray(o + body, o + body + SUM_BYTES))) return null;
  return { seq: buf.readUInt32LE(o + 2), count, bytes: body + SUM_BYTES };
}

function allZero(buf: Buffer, from: number): boolean {
  for (let i = from; i < buf.length; i++) if (buf[i] !== 0) return false;
  return true;
}

/**
 * Reads a log: the ceiling and the runs of its intact batches, in order. Ignores a torn last
 * batch; throws CORRUPT for a bad header, a damaged batch followed by an intact one, or an intact
 * batch whose entries do not fit the volume.
 */
export function decodeVersionLog(buf: Buffer, g: LogGeometry): VersionLogContents {
  const fail = (why: string) => corrupt(
    `sealed volume version log is damaged: ${why}. Without it a member replaying older sectors would go unnoticed; ` +
    `restore the volume state folder from a backup, or move 'versions.log' and 'versions.table' out of it to open the volume with rollback checks starting afresh`,
  );
  if (buf.length < LOG_HEADER_BYTES || !buf.subarray(0, MAGIC.length).equals(MAGIC)) throw fail('bad header');
  const out: VersionLogContents = { ceiling: 0, runs: [], lastSeq: -1, torn: false };
  let o = LOG_HEADER_BYTES;
  while (o < buf.length) {
    const b = intactBatchAt(buf, o);
    if (b === null || b.seq !== out.lastSeq + 1) {
      if (allZero(buf, o)) break;
      // Anything intact with a later sequence beyond this point was appended after this batch synced.
      for (let p = o + 1; p + BATCH_HEAD_BYTES + SUM_BYTES <= buf.length; p++) {
        const later = intactBatchAt(buf, p);
        if (later !== null && later.seq > out.lastSeq + 1) throw fail(`batch ${out.lastSeq + 1} at byte ${o} is damaged but batch ${later.seq} after it is intact`);
      }
      out.torn = true;
      break;
    }
    for (let e = o + BATCH_HEAD_BYTES; e < o + b.bytes - SUM_BYTES; e += LOG_ENTRY_BYTES) {
      const kind = buf.readUInt8(e);
      const version = buf.readDoubleLE(e + 12);
      if (kind === KIND_CEILING) {
        if (!Number.isSafeInteger(version) || version < out.ceiling || version > MAX_SEAL_VERSION) throw fail(`batch ${b.seq} sets ceiling ${version} after ${out.ceiling}`);
        out.ceiling = version;
        continue;
      }
      if (kind !== KIND_RUN) throw fail(`batch ${b.seq} holds an entry of unknown kind ${kind}`);
      const member = buf.readUInt8(e + 1);
      const first = buf.readUIntLE(e + 2, U48_BYTES);
      const count = buf.readUInt32LE(e + 8);
      if (member >= g.members || count < 1 || first + count > g.sectorsPerMember) throw fail(`batch ${b.seq} names sectors ${first}+${count} of member ${member}, outside the volume`);
      if (!Number.isSafeInteger(version) || version < 1 || version + count - 1 > out.ceiling) throw fail(`batch ${b.seq} records version ${version} beyond the ceiling ${out.ceiling}`);
      out.runs.push({ member, first, count, version });
    }
    out.lastSeq = b.seq;
    o += b.bytes;
  }
  return out;
}

/**
 * The runs of one member's sector → version map: sectors ascending, one run per stretch of
 * consecutive sectors holding consecutive versions (one per sealed write piece, usually).
 */
export function runsOf(member: number, versions: ReadonlyMap<number, number>): VersionRun[] {
  const sectors = [...versions.keys()].sort((a, b) => a - b);
  const out: VersionRun[] = [];
  let run: VersionRun | null = null;
  for (const s of sectors) {
    const v = versions.get(s) as number;
    if (run !== null && s === run.first + run.count && v === run.version + run.count) { run.count++; continue; }
    run = { member, first: s, count: 1, version: v };
    out.push(run);
  }
  return out;
}

/**
 * Applies runs to per-member tables, keeping the larger version per sector; calls `changed` for
 * each stretch of sectors it raised. Pure apart from the tables it is given.
 */
export function replayRuns(tables: Float64Array[], runs: Iterable<VersionRun>, changed?: (member: number, first: number, count: number) => void): void {
  for (const r of runs) {
    const t = tables[r.member];
    if (t === undefined || r.first + r.count > t.length) throw badInput(`run ${r.first}+${r.count} of member ${r.member} is outside the table`);
    let from = -1;
    for (let i = 0; i < r.count; i++) {
      const s = r.first + i;
      const v = r.version + i;
      if (v > (t[s] as number)) {
        t[s] = v;
        if (from < 0) from = s;
      } else if (from >= 0) {
        changed?.(r.member, from, s - from);
        from = -1;
      }
    }
    if (from >= 0) changed?.(r.member, from, r.first + r.count - from);
  }
}

interface Batch {
  entries: LogEntry[];
  /** The largest ceiling among the entries: a batch that turns into a compaction still records it. */
  ceiling: number;
  compact: boolean;
  done: Promise<void>;
  resolve: () => void;
  reject: (e: unknown) => void;
}

function newBatch(): Batch {
  let resolve!: () => void;
  let reject!: (e: unknown) => void;
  const done = new Promise<void>((res, rej) => { resolve = res; reject = rej; });
  return { entries: [], ceiling: 0, compact: false, done, resolve, reject };
}

/**
 * The log writer. Entries recorded while an append is being synced share the next append (one
 * fdatasync for all the flushes that wait on it). A compaction first runs `checkpoint`, which
 * must make every change recorded so far stable in the version table, then replaces the log.
 */
export class VersionLog {
  private next: Batch | null = null;
  private writing = false;
  private seq: number;
  private appendedBytes: number;
  private records: number;
  /** A failed append may have left a torn batch mid-log: the next batch rewrites the whole log. */
  private mustCompact = false;

  constructor(
    private readonly storage: LogStorage,
    opened: { lastSeq: number; bytes: number; records: number },
    private readonly checkpoint: () => Promise<void>,
    private readonly ceiling: () => number,
  ) {
    this.seq = opened.lastSeq;
    this.appendedBytes = opened.bytes;
    this.records = opened.records;
    // A log read back from storage may end in a torn batch: appending after it would make it a damaged middle.
    this.mustCompact = opened.lastSeq < 0;
  }

  /** Resolves once the entries are on stable storage (appended, or compacted into the table). */
  record(entries: readonly LogEntry[]): Promise<void> {
    const b = this.batch();
    for (const e of entries) if ('ceiling' in e && e.ceiling > b.ceiling) b.ceiling = e.ceiling;
    // Past the bound the batch becomes a compaction, which needs no entries: the table gets them.
    if (b.entries.length + entries.length > MAX_LOG_BATCH_ENTRIES) b.compact = true;
    if (!b.compact) b.entries.push(...entries);
    return b.done;
  }

  /** Checkpoints the table and replaces the log by one holding only the ceiling. */
  compact(): Promise<void> {
    const b = this.batch();
    b.compact = true;
    return b.done;
  }

  private batch(): Batch {
    if (this.next === null) {
      this.next = newBatch();
      // One turn of the event loop lets the flushes of a burst join the same append.
      if (!this.writing) setImmediate(() => void this.run());
      this.writing = true;
    }
    return this.next;
  }

  private async run(): Promise<void> {
    while (this.next !== null) {
      const b = this.next;
      this.next = null;
      try {
        let bytes: Buffer | null = null;
        if (!b.compact && !this.mustCompact && this.records + b.entries.length <= LOG_COMPACT_RECORDS) {
          bytes = encodeLogBatch(this.seq + 1, b.entries);
          if (this.appendedBytes + bytes.length > LOG_COMPACT_BYTES) bytes = null;
        }
        if (bytes === null) {
          await this.checkpoint();
          await this.storage.save(encodeCompactedLog(Math.max(this.ceiling(), b.ceiling)));
          this.seq = 0;
          this.appendedBytes = 0;
          this.records = 0;
          this.mustCompact = false;
        } else {
          this.seq++;
          this.appendedBytes += bytes.length;
          this.records += b.entries.length;
          await this.storage.append(bytes);
        }
        b.resolve();
      } catch (e) {
        this.mustCompact = true;
        b.reject(e);
      }
    }
    this.writing = false;
  }

  /** Waits for the appends under way. */
  async idle(): Promise<void> {
    while (this.writing) await new Promise((r) => setImmediate(r));
  }
}
