/**
 * Per-sector versions of a sealed volume, kept by the master so that a member returning an older,
 * validly sealed record of a sector (a rollback, or a replay of bytes it kept) fails like an
 * altered one. Every sealed sector takes a fresh version from the volume's counter (the version is
 * in the record's nonce, see seal.ts); the master remembers, for each member sector:
 *
 * - `current`: the version it last sealed there in this run of the master. A read must find
 *   exactly that version. NaN until the sector is written or read in this run.
 * - `durable`: the version of the last write to that sector that a member flush (or a durable
 *   write) made stable. Recorded in the version log (version-log.ts) before the flush is
 *   acknowledged; after a restart a sector's record must be at least this new, and the first
 *   one seen becomes `current`.
 *
 * So a member can never get an older record accepted than the last flushed write of a sector,
 * which is as far as a crash may take a disk back anyway (unflushed writes may be lost); and
 * while the master runs, it cannot roll a sector back at all.
 *
 * Versions are handed out in reserved ranges: the log holds the end of the range this run may
 * use, recorded before any version in it is handed out, so versions only grow across restarts
 * and never repeat (nonce uniqueness).
 *
 * On storage: the version log ('versions.log', appended at each flush) and the version table
 * ('versions.table', the durable versions as of the last checkpoint, version-table.ts). Opening
 * replays the log over the table, checkpoints the result and compacts the log. A volume made
 * before the log existed kept its versions in one blob ('versions', TSV1, decodeVersions); it is
 * read once and carried over.
 */
import { badInput, corrupt, tooLarge } from '../../errors.js';
import { MAX_MEMBERS } from './layout.js';
import { MAX_SEAL_VERSION } from './seal.js';
import { MAX_U48, U48_BYTES, type BlobStorage, type LogStorage } from './storage.js';
import { decodeVersionLog, replayRuns, runsOf, VersionLog, type VersionRun } from './version-log.js';
import { TABLE_PAGE_SECTORS, type VersionTableStorage } from './version-table.js';

/** Versions one run of the master may hand out before it records a new ceiling. */
export const VERSION_RESERVE = 2 ** 32;
/**
 * Member sectors a volume's versions are kept for: 2^25 (128 GiB of member space), at 16 bytes
 * each in memory (512 MiB) and 8 in the version table. The log made the size of a save
 * independent of the volume's; what remains is the master's memory. A larger volume still gets
 * versions (nonces) but no rollback checks, with a warning.
 */
export const MAX_VERSIONED_SECTORS = 2 ** 25;
/** Runs of writes a member may have landed and not flushed before they are merged per sector. */
export const MAX_UNFLUSHED_RUNS = 65_536;
const MAGIC = Buffer.from('TSV1');
const HEADER_BYTES = MAGIC.length + 8 + 1;
const ENTRY_BYTES = U48_BYTES + 8;
/** The earlier whole-table blob held at most this many sectors (it had to fit a 64 MiB state blob). */
const MAX_LEGACY_SECTORS = Math.floor(((64 << 20) - HEADER_BYTES - MAX_MEMBERS * 4) / ENTRY_BYTES);

/** Where a volume's versions are kept. */
export interface VersionStorage {
  log: LogStorage;
  table: VersionTableStorage;
  /** The blob a volume made before the log kept its versions in, read once when the log is new. */
  legacy?: BlobStorage;
}

export interface VersionsSnapshot {
  ceiling: number;
  /** Per member, [sector, version] pairs with version > 0. */
  members: Array<Array<[number, number]>>;
}

export function encodeVersions(s: VersionsSnapshot): Buffer {
  if (s.members.length > MAX_MEMBERS) throw tooLarge(`${s.members.length} members exceeds ${MAX_MEMBERS}`);
  const total = s.members.reduce((n, m) => n + m.length, 0);
  if (total > MAX_LEGACY_SECTORS) throw tooLarge(`${total} versioned sectors exceed ${MAX_LEGACY_SECTORS}`);
  const buf = Buffer.alloc(HEADER_BYTES + s.members.length * 4 + total * ENTRY_BYTES);
  let o = MAGIC.copy(buf, 0);
  o = buf.writeDoubleLE(s.ceiling, o);
  o = buf.writeUInt8(s.members.length, o);
  for (const m of s.members) {
    o = buf.writeUInt32LE(m.length, o);
    for (const [sector, v] of m) {
      if (!Number.isSafeInteger(sector) || sector < 0 || sector > MAX_U48) throw badInput(`sector ${sector} cannot be recorded`);
      o = buf.writeUIntLE(sector, o, U48_BYTES);
      o = buf.writeDoubleLE(v, o);
    }
  }
  return buf;
}

export function decodeVersions(buf: Buffer, members: number, sectorsPerMember: number): VersionsSnapshot {
  const fail = (why: string) => corrupt(`sealed volume versions are damaged: ${why}; move the file 'versions' out of the volume's state folder to open the volume with rollback checks starting afresh`);
  if (buf.length < HEADER_BYTES || !buf.subarray(0, MAGIC.length).equals(MAGIC)) throw fail('bad header');
  let o = MAGIC.length;
  const ceiling = buf.readDoubleLE(o); o += 8;
  if (!Number.isSafeInteger(ceiling) || ceiling < 0 || ceiling > MAX_SEAL_VERSION) throw fail(`ceiling ${ceiling}`);
  const count = buf.readUInt8(o); o += 1;
  if (count !== members) throw fail(`${count} members recorded, the volume has ${members}`);
  const out: VersionsSnapshot = { ceiling, members: [] };
  for (let j = 0; j < count; j++) {
    if (o + 4 > buf.length) throw fail('truncated');
    const n = buf.readUInt32LE(o); o += 4;
    if (n > sectorsPerMember || o + n * ENTRY_BYTES > buf.length) throw fail(`member ${j} claims ${n} sectors`);
    const list: Array<[number, number]> = [];
    for (let i = 0; i < n; i++, o += ENTRY_BYTES) {
      const sector = buf.readUIntLE(o, U48_BYTES);
      const v = buf.readDoubleLE(o + U48_BYTES);
      if (sector >= sectorsPerMember || !Number.isSafeInteger(v) || v <= 0 || v > ceiling) throw fail(`member ${j} sector ${sector} version ${v}`);
      list.push([sector, v]);
    }
    out.members.push(list);
  }
  if (o !== buf.length) throw fail('trailing bytes');
  return out;
}

type Run = [first: number, count: number, version: number];

/** Runs a list starts with room for; it doubles as it fills (up to MAX_UNFLUSHED_RUNS, then merges). */
const RUN_LIST_START = 64;

/**
 * Runs of landed writes, three numbers each in one growable Float64Array. A member that is not
 * flushed for a while (fio's random writes never are) holds tens of thousands: as one small array
 * per write they all lived into the old generation, and every full collection traced them.
 */
export class RunList {
  private buf = new Float64Array(3 * RUN_LIST_START);
  length = 0;

  push(first: number, count: number, version: number): void {
    let b = this.buf;
    if (3 * (this.length + 1) > b.length) {
      const grown = new Float64Array(b.length * 2);
      grown.set(b);
      this.buf = b = grown;
    }
    const at = 3 * this.length++;
    b[at] = first;
    b[at + 1] = count;
    b[at + 2] = version;
  }

  /** Calls `fn` for each run, oldest first. */
  forEach(fn: (first: number, count: number, version: number) => void): void {
    const b = this.buf;
    for (let i = 0; i < 3 * this.length; i += 3) fn(b[i] as number, b[i + 1] as number, b[i + 2] as number);
  }

  /** The runs of `this` followed by those of `later`, in a new list. */
  concat(later: RunList): RunList {
    const l = new RunList();
    this.forEach((f, c, v) => l.push(f, c, v));
    later.forEach((f, c, v) => l.push(f, c, v));
    return l;
  }
}

export class SealVersions {
  private readonly current: Float64Array[];
  private readonly durable: Float64Array[];
  /** Per member, runs written (and completed) since that member's last flush began, oldest first. */
  private unflushed: RunList[];
  /** Pages of the version table (member * pages per member + page) changed since the last checkpoint. */
  private readonly dirty = new Set<number>();
  private readonly pagesPerMember: number;
  private next: number;
  /** Versions up to here are recorded in the log and may be handed out. */
  private ceiling: number;
  private extending: Promise<void> | null = null;
  private readonly log: VersionLog;

  private constructor(
    private readonly storage: VersionStorage,
    private readonly members: number,
    private readonly sectorsPerMember: number,
    durable: Float64Array[],
    ceiling: number,
    readonly tracking: boolean,
  ) {
    // Untracked, the tables are empty: versions are still handed out (nonces), never checked.
    const room = tracking ? sectorsPerMember : 0;
    this.current = Array.from({ length: members }, () => new Float64Array(room).fill(Number.NaN));
    this.durable = durable;
    this.unflushed = Array.from({ length: members }, () => new RunList());
    this.pagesPerMember = Math.ceil(sectorsPerMember / TABLE_PAGE_SECTORS);
    this.next = ceiling + 1;
    this.ceiling = ceiling;
    // Opening always ends in a compaction: appends then start from a log of known length.
    this.log = new VersionLog(storage.log, { lastSeq: -1, bytes: 0, records: 0 }, () => this.checkpoint(), () => this.ceiling);
  }

  /** Whether a volume of this shape gets rollback checks (its versions fit the memory allowed). */
  static fits(members: number, sectorsPerMember: number): boolean {
    return members * sectorsPerMember <= MAX_VERSIONED_SECTORS;
  }

  /**
   * Loads the table, replays the log over it, checkpoints and compacts, and durably reserves
   * this run's range before any sector is sealed. A volume too large to keep versions for (fits()
   * is false) still gets versions handed out, so nonces stay unique, but reads are not checked
   * for freshness.
   */
  static async open(storage: VersionStorage, members: number, sectorsPerMember: number): Promise<SealVersions> {
    if (!Number.isInteger(members) || members < 1 || members > MAX_MEMBERS) throw badInput(`a volume has 1..${MAX_MEMBERS} members, got ${members}`);
    if (!Number.isSafeInteger(sectorsPerMember) || sectorsPerMember < 1 || sectorsPerMember > MAX_U48) throw badInput(`sectors per member must be 1..${MAX_U48}, got ${sectorsPerMember}`);
    const tracking = SealVersions.fits(members, sectorsPerMember);
    const geometry = { members, sectorsPerMember };
    const blob = await storage.log.load();
    let ceiling = 0;
    let runs: VersionRun[] = [];
    if (blob !== null) {
      ({ ceiling, runs } = decodeVersionLog(blob, geometry));
    } else {
      const old = await storage.legacy?.load() ?? null;
      if (old !== null) {
        const snap = decodeVersions(old, members, sectorsPerMember);
        ceiling = snap.ceiling;
        runs = snap.members.flatMap((list, j) => runsOf(j, new Map(list)));
      }
    }
    const durable = tracking ? await storage.table.load(members, sectorsPerMember) : [];
    for (const [j, t] of durable.entries()) {
      for (let s = 0; s < t.length; s++) {
        const v = t[s] as number;
        if (v !== 0 && !(Number.isSafeInteger(v) && v > 0 && v <= ceiling)) {
          throw corrupt(`sealed volume version table holds version ${v} for member ${j} sector ${s}, beyond the logged ceiling ${ceiling}; move 'versions.log' and 'versions.table' out of the volume's state folder to open it with rollback checks starting afresh`);
        }
      }
    }
    const v = new SealVersions(storage, members, sectorsPerMember, durable, ceiling, tracking);
    if (tracking) replayRuns(durable, runs, (j, first, count) => v.markDirty(j, first, count));
    await v.extend(true);
    return v;
  }

  private markDirty(member: number, first: number, count: number): void {
    const base = member * this.pagesPerMember;
    for (let p = Math.floor(first / TABLE_PAGE_SECTORS); p <= Math.floor((first + count - 1) / TABLE_PAGE_SECTORS); p++) this.dirty.add(base + p);
  }

  /** Writes the table pages changed since the last checkpoint and syncs them (before the log forgets those changes). */
  private async checkpoint(): Promise<void> {
    if (this.dirty.size === 0) return;
    const pages = [...this.dirty].sort((a, b) => a - b);
    this.dirty.clear();
    try {
      for (let i = 0; i < pages.length;) {
        // Adjacent pages of one member go out as one write.
        let j = i + 1;
        const member = Math.floor((pages[i] as number) / this.pagesPerMember);
        while (j < pages.length && pages[j] === (pages[j - 1] as number) + 1 && Math.floor((pages[j] as number) / this.pagesPerMember) === member) j++;
        const first = ((pages[i] as number) - member * this.pagesPerMember) * TABLE_PAGE_SECTORS;
        const end = Math.min(this.sectorsPerMember, ((pages[j - 1] as number) - member * this.pagesPerMember + 1) * TABLE_PAGE_SECTORS);
        await this.storage.table.write(member, first, (this.durable[member] as Float64Array).subarray(first, end));
        i = j;
      }
      await this.storage.table.sync();
    } catch (e) {
      for (const p of pages) this.dirty.add(p);
      throw e;
    }
  }

  /**
   * Moves the ceiling up by a reserve and records it; versions past the old ceiling wait for
   * this. With `compact`, the record is a compaction (at open: the log then has a known end).
   */
  private extend(compact = false): Promise<void> {
    this.extending ??= (async () => {
      const ceiling = Math.min(MAX_SEAL_VERSION, this.ceiling + VERSION_RESERVE);
      if (ceiling <= this.ceiling) throw tooLarge('this volume has used every seal version; copy its data to a new volume');
      if (compact) {
        const was = this.ceiling;
        this.ceiling = ceiling;
        try { await this.log.compact(); } catch (e) { this.ceiling = was; throw e; }
      } else {
        await this.log.record([{ ceiling }]);
        // Only now: a version handed out before the ceiling is stable could be handed out again after a crash.
        this.ceiling = ceiling;
      }
    })().finally(() => { this.extending = null; });
    return this.extending;
  }

  /** Whether `n` more versions can be taken now without passing the recorded ceiling. */
  canTake(n: number): boolean { return this.next + n - 1 <= this.ceiling; }

  /** Resolves once `n` more versions could be taken; check canTake() again in the turn that takes them. */
  async reserve(n: number): Promise<void> {
    while (!this.canTake(n)) await this.extend();
  }

  /** The first of `n` fresh versions; call reserve(n) first in the same turn. */
  take(n: number): number {
    if (!this.canTake(n)) throw badInput(`seal versions taken past the reserved ceiling ${this.ceiling}`);
    const v = this.next;
    this.next += n;
    return v;
  }

  private checkSector(member: number, sector: number): void {
    if (!Number.isInteger(member) || member < 0 || member >= this.current.length) throw badInput(`member index ${member} is not in this volume`);
    if (!Number.isSafeInteger(sector) || sector < 0 || sector >= this.sectorsPerMember) throw badInput(`member sector ${sector} is past ${this.sectorsPerMember}`);
  }

  /** Sectors `first..first+n-1` of `member` now hold versions `version..version+n-1` (the write is issued). */
  wrote(member: number, first: number, n: number, version: number): void {
    if (!this.tracking) return;
    this.checkSector(member, first + n - 1);
    const cur = this.current[member] as Float64Array;
    for (let i = 0; i < n; i++) cur[first + i] = version + i;
  }

  /** The write of those sectors completed: they become durable with the member's next flush. */
  landed(member: number, first: number, n: number, version: number): void {
    if (!this.tracking) return;
    this.checkSector(member, first + n - 1);
    let runs = this.unflushed[member] as RunList;
    if (runs.length >= MAX_UNFLUSHED_RUNS) {
      // A client that never flushes: keep one run per sector stretch, the newest version of each.
      runs = this.merged(member, runs);
      this.unflushed[member] = runs;
    }
    runs.push(first, n, version);
  }

  /** The runs' newest version per sector, as runs again (bounded by the member's sectors). */
  private merged(member: number, runs: RunList): RunList {
    const by = new Map<number, number>();
    runs.forEach((first, n, v) => { for (let i = 0; i < n; i++) if (!((by.get(first + i) ?? 0) > v + i)) by.set(first + i, v + i); });
    const out = new RunList();
    for (const r of runsOf(member, by)) out.push(r.first, r.count, r.version);
    return out;
  }

  /**
   * Whether a record of `version` (0: never written) is acceptable for the sector now. A sector
   * not written in this run accepts anything at least as new as its durable version, and from
   * then on exactly what it accepted.
   */
  accept(member: number, sector: number, version: number): boolean {
    if (!this.tracking) return true;
    this.checkSector(member, sector);
    const cur = this.current[member] as Float64Array;
    const want = cur[sector] as number;
    if (want === want) return version === want;
    if (version < ((this.durable[member] as Float64Array)[sector] as number)) return false;
    cur[sector] = version;
    return true;
  }

  /** Hands back what landed on `member` so far; pass it to flushed() once the member's flush succeeded. */
  beginFlush(member: number): RunList {
    const runs = this.unflushed[member] as RunList;
    this.unflushed[member] = new RunList();
    return runs;
  }

  /** Makes the versions of a finished member flush (or durable write) durable and records them in the log. */
  async flushed(member: number, landed: RunList | readonly Run[]): Promise<void> {
    if (!this.tracking || landed.length === 0) return;
    const runs: VersionRun[] = [];
    const add = (first: number, count: number, version: number) => runs.push({ member, first, count, version });
    if (landed instanceof RunList) landed.forEach(add);
    else for (const [first, count, version] of landed) add(first, count, version);
    const changed: VersionRun[] = [];
    replayRuns(this.durable, runs, (j, first, count) => {
      this.markDirty(j, first, count);
      const d = this.durable[j] as Float64Array;
      changed.push({ member: j, first, count, version: d[first] as number });
    });
    if (changed.length > 0) await this.log.record(changed);
  }

  /** A flush of `member` failed: what it would have made durable waits for the next one. */
  flushFailed(member: number, landed: RunList): void {
    if (landed.length === 0) return;
    this.unflushed[member] = landed.concat(this.unflushed[member] as RunList);
  }

  /** Waits for log writes under way. */
  idle(): Promise<void> { return this.log.idle(); }

  /** Closes the table file (the log's file closes with its storage). */
  async close(): Promise<void> {
    await this.idle();
    await this.storage.table.close();
    await this.storage.log.close?.();
  }
}
