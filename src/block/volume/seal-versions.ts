/**
 * Per-sector versions of a sealed volume, kept by the master so that a member returning an older,
 * validly sealed record of a sector (a rollback, or a replay of bytes it kept) fails like an
 * altered one. Every sealed sector takes a fresh version from the volume's counter (the version is
 * in the record's nonce, see seal.ts); the master remembers, for each member sector:
 *
 * - `current`: the version it last sealed there in this run of the master. A read must find
 *   exactly that version. NaN until the sector is written or read in this run.
 * - `durable`: the version of the last write to that sector that a member flush (or a durable
 *   write) made stable. Saved with every flush; after a restart a sector's record must be at least
 *   this new, and the first one seen becomes `current`.
 *
 * So a member can never get an older record accepted than the last flushed write of a sector,
 * which is as far as a crash may take a disk back anyway (unflushed writes may be lost); and
 * while the master runs, it cannot roll a sector back at all.
 *
 * Versions are handed out in reserved ranges: the state saved at open holds the end of the range
 * this run may use, so versions only grow across restarts and never repeat (nonce uniqueness).
 *
 * On storage: 'TSV1', ceiling (f64 LE), member count (u8), then per member: count (u32 LE) and
 * count × (sector u48 LE, version f64 LE), sectors ascending, only sectors ever written.
 */
import { badInput, corrupt, tooLarge } from '../../errors.js';
import { MAX_MEMBERS } from './layout.js';
import { MAX_SEAL_VERSION } from './seal.js';
import { CoalescingSaver, MAX_STATE_BLOB_BYTES, MAX_U48, U48_BYTES, type BlobStorage } from './storage.js';

/** Versions one run of the master may hand out before it saves a new ceiling. */
export const VERSION_RESERVE = 2 ** 32;
const MAGIC = Buffer.from('TSV1');
const HEADER_BYTES = MAGIC.length + 8 + 1;
const ENTRY_BYTES = U48_BYTES + 8;
/**
 * Member sectors a volume's versions are kept for (about 4.8 million, 18 GiB of member space;
 * 8 bytes each in memory twice, 14 bytes each saved once written): the saved state must fit a
 * state blob.
 */
export const MAX_VERSIONED_SECTORS = Math.floor((MAX_STATE_BLOB_BYTES - HEADER_BYTES - MAX_MEMBERS * 4) / ENTRY_BYTES);

export interface VersionsSnapshot {
  ceiling: number;
  /** Per member, [sector, version] pairs with version > 0. */
  members: Array<Array<[number, number]>>;
}

export function encodeVersions(s: VersionsSnapshot): Buffer {
  if (s.members.length > MAX_MEMBERS) throw tooLarge(`${s.members.length} members exceeds ${MAX_MEMBERS}`);
  const total = s.members.reduce((n, m) => n + m.length, 0);
  if (total > MAX_VERSIONED_SECTORS) throw tooLarge(`${total} versioned sectors exceed ${MAX_VERSIONED_SECTORS}`);
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
  const fail = (why: string) => corrupt(`sealed volume versions are damaged: ${why}; move the file 'versions' out of the volume's state folder to open the volume without rollback checks until its next flush`);
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

export class SealVersions {
  private readonly current: Float64Array[];
  private readonly durable: Float64Array[];
  /** Per member, sectors written (and completed) since that member's last flush began, with their versions. */
  private readonly unflushed: Array<Map<number, number>>;
  private next: number;
  private ceiling: number;
  private extending: Promise<void> | null = null;
  private readonly saver: CoalescingSaver;

  private constructor(storage: BlobStorage, private readonly members: number, private readonly sectorsPerMember: number, snap: VersionsSnapshot, readonly tracking: boolean) {
    // Untracked, the tables are empty: versions are still handed out (nonces), never checked.
    const room = tracking ? sectorsPerMember : 0;
    this.current = Array.from({ length: members }, () => new Float64Array(room).fill(Number.NaN));
    this.durable = Array.from({ length: members }, () => new Float64Array(room));
    this.unflushed = Array.from({ length: members }, () => new Map());
    snap.members.forEach((list, j) => { for (const [s, v] of list) (this.durable[j] as Float64Array)[s] = v; });
    this.next = snap.ceiling + 1;
    this.ceiling = snap.ceiling;
    this.saver = new CoalescingSaver(storage, () => ({ bytes: encodeVersions(this.snapshot()), done: () => {} }));
  }

  /** Whether a volume of this shape gets rollback checks (its versions fit in memory and a state blob). */
  static fits(members: number, sectorsPerMember: number): boolean {
    return members * sectorsPerMember <= MAX_VERSIONED_SECTORS;
  }

  /**
   * Loads the saved versions and durably reserves this run's range before any sector is sealed.
   * A volume too large to keep versions for (fits() is false) still gets versions handed out, so
   * nonces stay unique, but reads are not checked for freshness.
   */
  static async open(storage: BlobStorage, members: number, sectorsPerMember: number): Promise<SealVersions> {
    if (!Number.isInteger(members) || members < 1 || members > MAX_MEMBERS) throw badInput(`a volume has 1..${MAX_MEMBERS} members, got ${members}`);
    if (!Number.isSafeInteger(sectorsPerMember) || sectorsPerMember < 1) throw badInput(`sectors per member must be a positive integer, got ${sectorsPerMember}`);
    const tracking = SealVersions.fits(members, sectorsPerMember);
    const blob = await storage.load();
    const snap = blob === null ? { ceiling: 0, members: [] } : decodeVersions(blob, members, sectorsPerMember);
    const v = new SealVersions(storage, members, sectorsPerMember, tracking ? snap : { ceiling: snap.ceiling, members: [] }, tracking);
    await v.extend();
    return v;
  }

  private snapshot(): VersionsSnapshot {
    return {
      ceiling: this.ceiling,
      members: this.durable.slice(0, this.tracking ? this.members : 0).map((d) => {
        const list: Array<[number, number]> = [];
        for (let s = 0; s < d.length; s++) if ((d[s] as number) > 0) list.push([s, d[s] as number]);
        return list;
      }),
    };
  }

  /** Moves the ceiling up by a reserve and saves it; versions past the old ceiling wait for this. */
  private extend(): Promise<void> {
    this.extending ??= (async () => {
      const ceiling = Math.min(MAX_SEAL_VERSION, this.ceiling + VERSION_RESERVE);
      if (ceiling <= this.ceiling) throw tooLarge('this volume has used every seal version; copy its data to a new volume');
      this.ceiling = ceiling;
      await this.saver.save();
    })().finally(() => { this.extending = null; });
    return this.extending;
  }

  /** Whether `n` more versions can be taken now without passing the saved ceiling. */
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
    const u = this.unflushed[member] as Map<number, number>;
    for (let i = 0; i < n; i++) u.set(first + i, version + i);
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
  beginFlush(member: number): Map<number, number> {
    const u = this.unflushed[member] as Map<number, number>;
    this.unflushed[member] = new Map();
    return u;
  }

  /** Makes the versions of a finished member flush durable and saves them. */
  async flushed(member: number, landed: Map<number, number>): Promise<void> {
    const d = this.durable[member] as Float64Array;
    for (const [s, v] of landed) if (v > (d[s] as number)) d[s] = v;
    if (landed.size > 0) await this.saver.save();
  }

  /** A flush of `member` failed: what it would have made durable waits for the next one. */
  flushFailed(member: number, landed: Map<number, number>): void {
    const u = this.unflushed[member] as Map<number, number>;
    for (const [s, v] of landed) if (!((u.get(s) ?? 0) > v)) u.set(s, v);
  }

  /** Waits for saves under way. */
  idle(): Promise<void> { return this.saver.idle(); }
}
