/**
 * The volume engine: a BlockDevice whose bytes are spread over members by a Layout. Requests are
 * split per unit and run in parallel; parity stripes are updated under a per-stripe lock, guarded
 * by the intent log; members that fail or time out are marked down and the volume runs degraded,
 * remembering what each absent member missed so it can be caught up with only those units.
 */
import type { BlockDevice } from '../device.js';
import { badInput, isTesseraError, TesseraError, tooLarge, unavailable } from '../../errors.js';
import { silentLogger, type Logger } from '../../log.js';
import { MemberHealth, type MemberState } from './health.js';
import { IntentLog } from './intent-log.js';
import { Layout, type UnitExtent } from './layout.js';
import { withTimeout, type VolumeMember } from './member.js';
import { computeParity, reconstruct } from './parity.js';
import { MemoryBlobStorage, type BlobStorage, type LogStorage } from './storage.js';
import { SECTOR_BYTES } from './seal.js';
import { SealingFailed } from './seal-pool.js';
import { StripeLocks } from './stripe-lock.js';

/** NBD clients send at most 32 MiB per request; the volume refuses more. */
export const MAX_VOLUME_IO_BYTES = 32 << 20;
/**
 * Stripes marked in the intent log together: writes scattered over a region wait for one log
 * fdatasync instead of one per stripe (random 4 KiB writes on a fresh region otherwise paid one
 * each), and a crash recomputes at most this many stripes per region that was being written.
 */
export const DEFAULT_INTENT_REGION_STRIPES = 32;
/** A member that has not answered in this long is treated as gone. */
export const DEFAULT_MEMBER_TIMEOUT_MS = 5_000;
export const MAX_MEMBER_TIMEOUT_MS = 600_000;
/** Stripes written since the last flush that a crashed member may have lost; past this, assume all. */
export const MAX_UNFLUSHED_STRIPES = 65_536;
/** A check() lists this many mismatching stripes by location; the rest are only counted. */
export const MAX_REPORTED_MISMATCHES = 16;
/** writeZeroes sends zeroes in requests of this size. */
const ZERO_CHUNK_BYTES = 1 << 20;

/** [lo, hi) widened to whole sealed sectors, within a unit of `unitSize` bytes. */
function sectorAligned(lo: number, hi: number, unitSize: number): [number, number] {
  return [Math.floor(lo / SECTOR_BYTES) * SECTOR_BYTES, Math.min(unitSize, Math.ceil(hi / SECTOR_BYTES) * SECTOR_BYTES)];
}

export interface StripedVolumeOptions {
  layout: Layout;
  members: VolumeMember[];
  /** Member health and dirty units; defaults to memory (a restart then forgets them). */
  healthStorage?: BlobStorage;
  /** Write intent log; defaults to memory (a crash then leaves parity unverified). */
  intentStorage?: LogStorage;
  /** How long a stripe stays marked in the intent log after its last write. */
  intentClearDelayMs?: number;
  /** Stripes the intent log marks together (default DEFAULT_INTENT_REGION_STRIPES). */
  intentRegionStripes?: number;
  memberTimeoutMs?: number;
  /** Recompute parity of stripes left in flight by a previous master (default true). */
  recover?: boolean;
  logger?: Logger;
}

export interface MemberStatus {
  index: number;
  id: string;
  state: MemberState;
  /** Units this member must receive before it is current. */
  dirtyUnits: number;
  fullRebuild: boolean;
}

export interface VolumeStatus {
  layout: Layout['kind'];
  size: number;
  unitSize: number;
  members: MemberStatus[];
  /** Some member is not current, but every byte is still served. */
  degraded: boolean;
  /** More members are missing than the layout tolerates: I/O fails with UNAVAILABLE. */
  failed: boolean;
  dirtyUnits: number;
  epoch: number;
  stripesInFlight: number;
  /** Units rewritten from redundancy since open because a member's bytes failed authentication. */
  repairedUnits: number;
}

export interface CheckReport {
  stripesChecked: number;
  /** Stripes that could not be verified because a member was not current. */
  stripesSkipped: number;
  mismatches: number;
  /** The first MAX_REPORTED_MISMATCHES mismatching stripes and the members whose unit disagreed. */
  firstMismatches: Array<{ stripe: number; members: number[] }>;
  repaired: number;
}

export interface ResyncReport {
  member: number;
  unitsCopied: number;
}

export interface RecoverReport {
  stripes: number;
  repaired: number;
  /** Stripes left in flight while a member was down: their parity cannot be trusted (write hole). */
  unrecoverable: number[];
}

/** Thrown inside one attempt when a member failed and was marked down; the attempt is redone. */
class MemberFailed extends Error {
  constructor(readonly member: number, override readonly cause: unknown) { super(`member ${member} failed`); }
}

/**
 * A member answered a read with bytes that failed authentication (a sealed member's CORRUPT). The
 * member stays up: the bytes are served from the rest of the stripe and rewritten on it. On a
 * layout without redundancy this reaches the client as an I/O error.
 */
class MemberCorrupt extends TesseraError {
  constructor(readonly member: number, cause: TesseraError) {
    super('CORRUPT', `volume member ${member}: ${cause.message}`, { member, ...cause.details });
  }
}

type Piece = UnitExtent & { data: Buffer };

/** Parity stripe writes merged into one update (see writeParityGathered). */
interface StripeGroup {
  pieces: Piece[];
  durable: boolean;
  done: Promise<void>;
}

/** The byte ranges of data unit `index` that the pieces write, merged where they touch. */
function spans(pieces: Piece[], index: number): Array<[number, number]> {
  const mine = pieces.filter((p) => p.dataIndex === index).sort((a, b) => a.unitOffset - b.unitOffset);
  const out: Array<[number, number]> = [];
  for (const p of mine) {
    const last = out[out.length - 1];
    if (last !== undefined && p.unitOffset <= last[1]) last[1] = Math.max(last[1], p.unitOffset + p.length);
    else out.push([p.unitOffset, p.unitOffset + p.length]);
  }
  return out;
}

/** Whether the pieces of data unit `index` together cover bytes [lo, hi) of it. */
function covered(pieces: Piece[], index: number, lo: number, hi: number): boolean {
  const mine = pieces.filter((p) => p.dataIndex === index).sort((a, b) => a.unitOffset - b.unitOffset);
  let at = lo;
  for (const p of mine) {
    if (p.unitOffset > at) break;
    at = Math.max(at, p.unitOffset + p.length);
    if (at >= hi) return true;
  }
  return at >= hi;
}

/**
 * Pieces of one parity stripe grouped by the sealed sectors they touch (in any data unit): pieces
 * whose sector ranges overlap or touch share a group; groups touch no sector in common. Within a
 * group, pieces keep their order (a later piece wins where two overlap).
 */
export function sectorClusters<P extends { unitOffset: number; length: number }>(pieces: P[]): P[][] {
  const range = (p: P) => [Math.floor(p.unitOffset / SECTOR_BYTES), Math.ceil((p.unitOffset + p.length) / SECTOR_BYTES)] as const;
  const starts: number[] = [];
  let end = -1;
  for (const p of [...pieces].sort((a, b) => a.unitOffset - b.unitOffset)) {
    const [lo, hi] = range(p);
    if (starts.length === 0 || lo > end) starts.push(lo);
    end = Math.max(end, hi);
  }
  const out: P[][] = starts.map(() => []);
  for (const p of pieces) {
    const lo = range(p)[0];
    let i = starts.length - 1;
    while ((starts[i] as number) > lo) i--;
    (out[i] as P[]).push(p);
  }
  return out;
}

export class StripedVolume implements BlockDevice {
  readonly size: number;
  readonly minBlockSize = 512;
  readonly preferredBlockSize: number;
  readonly multiConn = true;
  readonly layout: Layout;

  private readonly members: VolumeMember[];
  private readonly locks = new StripeLocks();
  private readonly gathering = new Map<number, StripeGroup>();
  private readonly timeoutMs: number;
  private readonly log: Logger;
  private readonly unflushed = new Map<number, number>();
  private unflushedOverflow = -1;
  private writeSeq = 0;
  private readRobin = 0;
  /** Units rewritten because their bytes failed authentication. */
  private repairs = 0;
  private closed = false;

  private constructor(opts: StripedVolumeOptions, private readonly health: MemberHealth, private readonly intents: IntentLog) {
    this.layout = opts.layout;
    this.members = [...opts.members];
    this.size = this.layout.size;
    const sw = this.layout.stripeDataBytes;
    this.preferredBlockSize = (sw & (sw - 1)) === 0 ? sw : this.layout.unitSize;
    this.timeoutMs = opts.memberTimeoutMs ?? DEFAULT_MEMBER_TIMEOUT_MS;
    this.log = opts.logger ?? silentLogger;
  }

  static async open(opts: StripedVolumeOptions): Promise<StripedVolume> {
    const { layout, members } = opts;
    if (members.length !== layout.members) throw badInput(`layout ${layout.kind} expects ${layout.members} members, got ${members.length}`);
    for (const m of members) {
      if (m.size < layout.memberSize) throw badInput(`member ${m.id} holds ${m.size} bytes, the layout needs ${layout.memberSize}`);
    }
    const t = opts.memberTimeoutMs ?? DEFAULT_MEMBER_TIMEOUT_MS;
    if (!Number.isInteger(t) || t < 1 || t > MAX_MEMBER_TIMEOUT_MS) throw badInput(`member timeout must be 1..${MAX_MEMBER_TIMEOUT_MS} ms, got ${t}`);
    const health = await MemberHealth.open(opts.healthStorage ?? new MemoryBlobStorage(), layout.members);
    const intents = await IntentLog.open(opts.intentStorage ?? new MemoryBlobStorage(), {
      ...(opts.intentClearDelayMs !== undefined ? { clearDelayMs: opts.intentClearDelayMs } : {}),
      regionStripes: opts.intentRegionStripes ?? DEFAULT_INTENT_REGION_STRIPES,
      stripeCount: layout.stripeCount,
    });
    const v = new StripedVolume(opts, health, intents);
    if (opts.recover !== false && intents.pending.length > 0) {
      const r = await v.recover();
      v.log.info({ ...r, unrecoverable: r.unrecoverable.length }, 'volume: recovered stripes left in flight');
    }
    return v;
  }

  // ---- state -------------------------------------------------------------------------------

  status(): VolumeStatus {
    const members = this.members.map((m, index) => ({
      index,
      id: m.id,
      state: this.health.state(index),
      dirtyUnits: this.health.dirtyCount(index, this.layout.stripeCount),
      fullRebuild: this.health.fullRebuild(index),
    }));
    const notUp = members.filter((m) => m.state !== 'up').length;
    const gone = members.filter((m) => m.state === 'down').length;
    return {
      layout: this.layout.kind,
      size: this.size,
      unitSize: this.layout.unitSize,
      members,
      degraded: notUp > 0,
      failed: gone > this.layout.tolerance,
      dirtyUnits: members.reduce((a, m) => a + m.dirtyUnits, 0),
      epoch: this.health.epoch,
      stripesInFlight: this.intents.inFlight,
      repairedUnits: this.repairs,
    };
  }

  member(index: number): VolumeMember {
    const m = this.members[index];
    if (m === undefined) throw badInput(`volume has no member ${index}`);
    return m;
  }

  // ---- member calls ------------------------------------------------------------------------

  private live(): void {
    if (this.closed) throw new TesseraError('UNAVAILABLE', 'volume is closed');
  }

  /** Runs one call on member j; any failure that is the member's fault marks it down. */
  private async call<T>(j: number, what: string, fn: (m: VolumeMember) => Promise<T>): Promise<T> {
    const m = this.members[j] as VolumeMember;
    try {
      return await withTimeout(fn(m), this.timeoutMs, `member ${m.id} ${what}`);
    } catch (e) {
      // A write that failed authentication re-read part of a sector: the member is taken down and
      // the units it misses are rebuilt by resync, like any other write it could not take.
      if (isTesseraError(e, 'CORRUPT') && what !== 'write') throw new MemberCorrupt(j, e);
      // The master's own sealing worker died with the request: the member is not at fault.
      if (e instanceof SealingFailed) throw e;
      // Our own bad arguments and a newer master's fence are not the member's fault.
      if (isTesseraError(e, 'BAD_INPUT') || isTesseraError(e, 'TOO_LARGE') || isTesseraError(e, 'CONFLICT')) throw e;
      await this.fail(j, e);
      throw new MemberFailed(j, e);
    }
  }

  private async fail(j: number, cause: unknown): Promise<void> {
    const suspect = this.layout.kind === 'raid0' ? [] : this.unflushedOverflow >= 0 ? 'all' as const : [...this.unflushed.keys()];
    if (await this.health.markDown(j, suspect)) {
      this.log.warn({ member: j, id: this.members[j]?.id, err: cause instanceof Error ? cause.message : String(cause) }, 'volume: member marked down');
    }
  }

  /** Waits for every call of an attempt, so a redo never races the calls of the one before. */
  private async settle<T>(ps: Array<Promise<T>>): Promise<T[]> {
    const rs = await Promise.allSettled(ps);
    let failed: MemberFailed | null = null;
    const out: T[] = [];
    for (const r of rs) {
      if (r.status === 'fulfilled') { out.push(r.value); continue; }
      if (r.reason instanceof MemberFailed) { failed ??= r.reason; continue; }
      throw r.reason;
    }
    if (failed !== null) throw failed;
    return out;
  }

  /** Redoes `attempt` after member failures; each redo has one member fewer, so this ends. */
  private async retrying<T>(what: string, attempt: () => Promise<T>): Promise<T> {
    let last: unknown;
    for (let i = 0; i <= this.layout.members; i++) {
      try {
        return await attempt();
      } catch (e) {
        if (!(e instanceof MemberFailed)) throw e;
        last = e.cause;
      }
    }
    throw unavailable(`${what}: members kept failing`, { cause: last instanceof Error ? last.message : String(last) });
  }

  private unreadable(stripe: number): number[] {
    const out: number[] = [];
    for (let j = 0; j < this.layout.members; j++) if (!this.health.readable(j, stripe)) out.push(j);
    return out;
  }

  private requireTolerated(stripe: number, what: string): number[] {
    const bad = this.unreadable(stripe);
    if (bad.length > this.layout.tolerance) {
      throw unavailable(
        `${what}: stripe ${stripe} has ${bad.length} members not current (${bad.join(', ')}), layout ${this.layout.kind} tolerates ${this.layout.tolerance}; bring members back or replace them`,
        { stripe, members: bad },
      );
    }
    return bad;
  }

  private checkRange(offset: number, length: number): void {
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) throw badInput(`bad range ${offset}+${length}`);
    if (offset + length > this.size) throw badInput(`range ${offset}+${length} is past the end of the volume (${this.size} bytes)`);
  }

  // ---- read --------------------------------------------------------------------------------

  async read(offset: number, length: number): Promise<Buffer> {
    this.live();
    this.checkRange(offset, length);
    if (length > MAX_VOLUME_IO_BYTES) throw tooLarge(`read of ${length} bytes exceeds ${MAX_VOLUME_IO_BYTES}`);
    const extents = this.layout.mapRange(offset, length);
    // Members answer with buffers of their own: a read inside one unit needs no gathering copy.
    if (extents.length === 1) {
      const e = extents[0] as UnitExtent;
      return this.retrying(`read of stripe ${e.stripe}`, () => this.readExtent(e));
    }
    const out = Buffer.allocUnsafe(length);
    await Promise.all(extents.map(async (e) => {
      const b = await this.retrying(`read of stripe ${e.stripe}`, () => this.readExtent(e));
      b.copy(out, e.volumeOffset - offset);
    }));
    return out;
  }

  private async readExtent(e: UnitExtent): Promise<Buffer> {
    const L = this.layout;
    this.requireTolerated(e.stripe, 'read');
    if (L.kind === 'raid1') {
      const current: number[] = [];
      for (let j = 0; j < L.members; j++) if (this.health.readable(j, e.stripe)) current.push(j);
      const j = current[this.readRobin++ % current.length] as number;
      return this.call(j, 'read', (m) => m.read(e.memberOffset, e.length)).catch((err: unknown) => {
        if (!(err instanceof MemberCorrupt)) throw err;
        return this.locks.with(e.stripe, async () => await this.rereadLocked(e, j)
          ?? this.readMirrors(e.stripe, e.unitOffset, e.length, new Set([j])));
      });
    }
    if (!this.health.readable(e.member, e.stripe)) return this.locks.with(e.stripe, () => this.degradedRead(e));
    return this.call(e.member, 'read', (m) => m.read(e.memberOffset, e.length)).catch((err: unknown) => {
      if (!(err instanceof MemberCorrupt)) throw err;
      return this.locks.with(e.stripe, async () => {
        const again = await this.rereadLocked(e, e.member);
        if (again !== null) return again;
        if (L.kind === 'raid0') {
          this.log.warn({ member: e.member, stripe: e.stripe, err: err.message }, 'volume: raid0 member bytes failed authentication; the read fails');
          throw err;
        }
        return this.readAroundCorrupt(e);
      });
    });
  }

  /**
   * Reads a piece again under its stripe lock. Reads do not take the lock, so one that ran beside
   * a write of the same sectors may have seen a record half written; with every write of the
   * stripe finished, bytes that still fail authentication are really bad. Null when they are.
   */
  private async rereadLocked(e: UnitExtent, j: number): Promise<Buffer | null> {
    try {
      return await this.call(j, 'read', (m) => m.read(e.memberOffset, e.length));
    } catch (err) {
      if (err instanceof MemberCorrupt) return null;
      throw err;
    }
  }

  /** Rebuilds a piece whose member bytes failed authentication, and rewrites them. Caller holds the stripe lock. */
  private async readAroundCorrupt(e: UnitExtent): Promise<Buffer> {
    const [alo, ahi] = sectorAligned(e.unitOffset, e.unitOffset + e.length, this.layout.unitSize);
    const [lo, len] = this.window(alo, ahi);
    const units = await this.readWindow(e.stripe, lo, len, new Set([e.member]));
    const unit = units[e.dataIndex] as Buffer;
    await this.repairUnits(e.stripe, lo, [[e.member, unit]]);
    return unit.subarray(e.unitOffset - lo, e.unitOffset - lo + e.length);
  }

  /**
   * Reads bytes [lo, lo+len) of a raid1 stripe's unit from a mirror that is current and not in
   * `bad`; mirrors whose bytes fail authentication join `bad`, and every one in `bad` is rewritten
   * from the good copy (whole sectors). Caller holds the stripe lock.
   */
  private async readMirrors(stripe: number, lo: number, len: number, bad: Set<number>): Promise<Buffer> {
    const L = this.layout;
    const [alo, ahi] = sectorAligned(lo, lo + len, L.unitSize);
    const off = stripe * L.unitSize;
    for (let j = 0; j < L.members; j++) {
      if (bad.has(j) || !this.health.readable(j, stripe)) continue;
      let good: Buffer;
      try {
        good = await this.call(j, 'read', (m) => m.read(off + alo, ahi - alo));
      } catch (err) {
        if (!(err instanceof MemberCorrupt)) throw err;
        bad.add(j);
        continue;
      }
      await this.repairUnits(stripe, alo, [...bad].map((b) => [b, good] as const));
      return good.subarray(lo - alo, lo - alo + len);
    }
    throw new TesseraError('CORRUPT', `stripe ${stripe}: no mirror holds bytes that pass authentication (${bad.size} failed); the data at this range is lost`, { stripe, members: [...bad] });
  }

  /** Rewrites member units that failed authentication with their rebuilt bytes; a failure here only leaves them for the next read or check. */
  private async repairUnits(stripe: number, lo: number, fixes: ReadonlyArray<readonly [number, Buffer]>): Promise<void> {
    if (fixes.length === 0) return;
    const off = stripe * this.layout.unitSize + lo;
    await Promise.allSettled(fixes.map(([j, buf]) => this.health.writable(j)
      ? this.call(j, 'write', (m) => m.write(off, buf, { generation: this.health.epoch }))
      : Promise.resolve()));
    this.repairs += fixes.length;
    this.log.warn({ stripe, members: fixes.map(([j]) => j), offset: lo, bytes: fixes[0]?.[1].length }, 'volume: rewrote units that failed authentication from redundancy');
  }

  /** Rebuilds one piece of a data unit from the rest of its stripe. */
  private async degradedRead(e: UnitExtent): Promise<Buffer> {
    const [lo, len] = this.window(e.unitOffset, e.unitOffset + e.length);
    const units = await this.readWindow(e.stripe, lo, len, new Set([e.member]));
    const start = e.unitOffset - lo;
    return (units[e.dataIndex] as Buffer).subarray(start, start + e.length);
  }

  /** The byte window parity math may work on: any for XOR, whole units for Reed–Solomon. */
  private window(lo: number, hi: number): [number, number] {
    return this.layout.kind === 'raid6' ? [0, this.layout.unitSize] : [lo, hi - lo];
  }

  /**
   * Reads bytes [lo, lo+len) of every unit of a parity stripe from current members (skipping
   * `skip`), and reconstructs the rest. Returned in stripe order: data 0..k-1, P, Q.
   */
  private async readWindow(stripe: number, lo: number, len: number, skip: Set<number> = new Set()): Promise<Buffer[]> {
    try {
      return await this.readWindowOnce(stripe, lo, len, skip);
    } catch (err) {
      if (!(err instanceof MemberCorrupt)) throw err;
      // Redo over whole sectors without the members whose bytes failed, then rewrite theirs.
      const [alo, ahi] = sectorAligned(lo, lo + len, this.layout.unitSize);
      const bad = new Set([err.member]);
      for (;;) {
        try {
          const units = await this.readWindowOnce(stripe, alo, ahi - alo, new Set([...skip, ...bad]));
          const order = this.stripeOrder(stripe);
          await this.repairUnits(stripe, alo, [...bad].map((j) => [j, units[order.indexOf(j)] as Buffer] as const));
          return alo === lo && ahi === lo + len ? units : units.map((u) => u.subarray(lo - alo, lo - alo + len));
        } catch (again) {
          if (!(again instanceof MemberCorrupt) || bad.has(again.member)) throw again;
          bad.add(again.member);
        }
      }
    }
  }

  private async readWindowOnce(stripe: number, lo: number, len: number, skip: Set<number>): Promise<Buffer[]> {
    const L = this.layout;
    this.requireTolerated(stripe, 'read');
    const k = L.dataUnits;
    const order = this.stripeOrder(stripe);
    const units: Array<Buffer | null> = order.map(() => null);
    // k sources suffice; prefer data units so a healthy stripe needs no decoding.
    const sources: number[] = [];
    for (let i = 0; i < order.length && sources.length < k; i++) {
      const j = order[i] as number;
      if (!skip.has(j) && this.health.readable(j, stripe)) sources.push(i);
    }
    if (sources.length < k) throw unavailable(`stripe ${stripe}: only ${sources.length} of the ${k} units needed are current`);
    const off = stripe * L.unitSize + lo;
    const got = await this.settle(sources.map((i) => this.call(order[i] as number, 'read', (m) => m.read(off, len))));
    sources.forEach((i, n) => { units[i] = got[n] as Buffer; });
    await reconstruct(units, k, L.parityUnits as 1 | 2);
    return units as Buffer[];
  }

  /** Members of a parity stripe in stripe order: data 0..k-1, then P, then Q. */
  private stripeOrder(stripe: number): number[] {
    const L = this.layout;
    const out: number[] = [];
    for (let i = 0; i < L.dataUnits; i++) out.push(L.dataMember(stripe, i));
    out.push(...L.parityMembers(stripe));
    return out;
  }

  // ---- write -------------------------------------------------------------------------------

  async write(offset: number, data: Buffer, opts: { fua?: boolean } = {}): Promise<void> {
    this.live();
    this.checkRange(offset, data.length);
    if (data.length > MAX_VOLUME_IO_BYTES) throw tooLarge(`write of ${data.length} bytes exceeds ${MAX_VOLUME_IO_BYTES}`);
    const byStripe = new Map<number, Piece[]>();
    for (const e of this.layout.mapRange(offset, data.length)) {
      const rel = e.volumeOffset - offset;
      const piece: Piece = { ...e, data: data.subarray(rel, rel + e.length) };
      const list = byStripe.get(e.stripe);
      if (list === undefined) byStripe.set(e.stripe, [piece]);
      else list.push(piece);
    }
    const durable = opts.fua === true;
    await Promise.all([...byStripe].map(([stripe, pieces]) => this.writeStripe(stripe, pieces, durable)));
  }

  private noteUnflushed(stripe: number): void {
    if (this.unflushedOverflow >= 0) { this.unflushedOverflow = ++this.writeSeq; return; }
    if (!this.unflushed.has(stripe) && this.unflushed.size >= MAX_UNFLUSHED_STRIPES) {
      this.unflushed.clear();
      this.unflushedOverflow = ++this.writeSeq;
      return;
    }
    this.unflushed.set(stripe, ++this.writeSeq);
  }

  private async writeStripe(stripe: number, pieces: Piece[], durable: boolean): Promise<void> {
    const L = this.layout;
    if (L.kind === 'raid0') {
      // Under the stripe lock like every layout: a member re-seals whole sectors, so two writes
      // into one sector must not interleave their read-modify-writes, and a read that saw a
      // record half written re-reads under this lock.
      await this.locks.with(stripe, () => this.retrying(`write of stripe ${stripe}`, async () => {
        this.requireTolerated(stripe, 'write');
        this.noteUnflushed(stripe);
        await this.settle(pieces.map((p) => this.call(p.member, 'write', (m) =>
          m.write(p.memberOffset, p.data, { durable, generation: this.health.epoch }))));
      }));
      return;
    }
    if (L.kind === 'raid1') {
      await this.locks.with(stripe, () => this.writeStripeLocked(stripe, pieces, durable));
      return;
    }
    await this.writeParityGathered(stripe, pieces, durable);
  }

  /**
   * Parity stripe writes that arrive in the same turn of the event loop, or while the stripe is
   * locked, are applied as one update in arrival order: a sequential stream whose requests do not
   * line up with stripes then fills whole stripes (no reads, one parity write) instead of doing
   * a read-modify-write per request piece. A write that covers the whole stripe and finds no
   * group open goes straight to the lock.
   */
  private writeParityGathered(stripe: number, pieces: Piece[], durable: boolean): Promise<void> {
    const open = this.gathering.get(stripe);
    if (open !== undefined) {
      open.pieces.push(...pieces);
      open.durable ||= durable;
      return open.done;
    }
    if (this.coversStripe(pieces)) return this.locks.with(stripe, () => this.writeStripeLocked(stripe, pieces, durable));
    let resolve!: () => void;
    let reject!: (e: unknown) => void;
    const done = new Promise<void>((res, rej) => { resolve = res; reject = rej; });
    const g: StripeGroup = { pieces: [...pieces], durable, done };
    this.gathering.set(stripe, g);
    setImmediate(() => {
      void this.locks.acquire(stripe).then(async (release) => {
        // From here on, later writes wait for the lock and form the next group.
        if (this.gathering.get(stripe) === g) this.gathering.delete(stripe);
        try {
          await this.writeStripeLocked(stripe, g.pieces, g.durable);
          resolve();
        } catch (e) {
          reject(e);
        } finally {
          release();
        }
      });
    });
    return done;
  }

  private coversStripe(pieces: Piece[]): boolean {
    const L = this.layout;
    for (let i = 0; i < L.dataUnits; i++) if (!covered(pieces, i, 0, L.unitSize)) return false;
    return true;
  }

  /** One attempt loop of a raid1 or parity stripe write; the caller holds the stripe lock. */
  private writeStripeLocked(stripe: number, pieces: Piece[], durable: boolean): Promise<void> {
    const L = this.layout;
    return this.retrying(`write of stripe ${stripe}`, async () => {
      this.requireTolerated(stripe, 'write');
      const absent: number[] = [];
      for (let j = 0; j < L.members; j++) if (!this.health.writable(j)) absent.push(j);
      await Promise.all([this.intents.begin(stripe), this.health.missed(stripe, absent)]);
      try {
        this.noteUnflushed(stripe);
        if (L.kind === 'raid1') await this.writeMirrors(stripe, pieces, durable);
        else await this.writeParityStripe(stripe, pieces, durable);
      } finally {
        this.intents.end(stripe);
      }
    });
  }

  private async writeMirrors(stripe: number, pieces: Piece[], durable: boolean): Promise<void> {
    const calls: Array<Promise<void>> = [];
    for (let j = 0; j < this.layout.members; j++) {
      if (!this.health.writable(j)) continue;
      for (const p of pieces) calls.push(this.call(j, 'write', (m) => m.write(p.memberOffset, p.data, { durable, generation: this.health.epoch })));
    }
    await this.settle(calls);
  }

  /**
   * Reconstruct-write over the column window the pieces touch. With XOR, parity of bytes [lo, hi)
   * depends only on bytes [lo, hi) of the data units, so a raid5 4 KiB write moves 4 KiB per unit
   * however large the unit is; raid6 works on whole units (see parity.ts). A gathered group whose
   * pieces lie apart in the unit is done as one window per cluster of sectors they touch: one
   * window from the first piece to the last would read, open, recompute and re-seal every sector
   * between them on every member, which nobody wrote.
   */
  private async writeParityStripe(stripe: number, pieces: Piece[], durable: boolean): Promise<void> {
    const clusters = this.layout.kind === 'raid6' ? [pieces] : sectorClusters(pieces);
    if (clusters.length === 1) return this.writeParityWindow(stripe, pieces, durable);
    const calls = await Promise.allSettled(clusters.map((c) => this.writeParityWindow(stripe, c, durable)));
    const failed = calls.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed !== undefined) throw failed.reason;
  }

  private async writeParityWindow(stripe: number, pieces: Piece[], durable: boolean): Promise<void> {
    const L = this.layout;
    const k = L.dataUnits;
    const [lo, len] = this.window(Math.min(...pieces.map((p) => p.unitOffset)), Math.max(...pieces.map((p) => p.unitOffset + p.length)));
    const hi = lo + len;
    const covers = (i: number) => covered(pieces, i, lo, hi);
    const order = this.stripeOrder(stripe);
    const needOld: number[] = [];
    for (let i = 0; i < k; i++) if (!covers(i)) needOld.push(i);
    let data: Buffer[];
    let old: Buffer[] | null = null;
    if (needOld.every((i) => this.health.readable(order[i] as number, stripe))) {
      const base = stripe * L.unitSize + lo;
      old = await this.settle(needOld.map((i) => this.call(order[i] as number, 'read', (m) => m.read(base, len)))).catch((err: unknown) => {
        if (err instanceof MemberCorrupt) return null;
        throw err;
      });
    }
    if (old !== null) {
      data = [];
      for (let i = 0, n = 0; i < k; i++) data.push(covers(i) ? Buffer.alloc(len) : (old[n++] as Buffer));
    } else {
      data = (await this.readWindow(stripe, lo, len)).slice(0, k);
    }
    for (const p of pieces) p.data.copy(data[p.dataIndex] as Buffer, p.unitOffset - lo);
    const parity = await computeParity(data, L.parityUnits as 1 | 2);
    const gen = this.health.epoch;
    const calls: Array<Promise<void>> = [];
    // Each data unit's written ranges go out merged from the combined window: pieces of a gathered
    // group may overlap, and two overlapping member writes could land in either order.
    for (let i = 0; i < k; i++) {
      const j = order[i] as number;
      if (!this.health.writable(j)) continue;
      for (const [a, b] of spans(pieces, i)) {
        const buf = (data[i] as Buffer).subarray(a - lo, b - lo);
        calls.push(this.call(j, 'write', (m) => m.write(stripe * L.unitSize + a, buf, { durable, generation: gen })));
      }
    }
    parity.forEach((buf, n) => {
      const j = order[k + n] as number;
      if (this.health.writable(j)) calls.push(this.call(j, 'write', (m) => m.write(stripe * L.unitSize + lo, buf, { durable, generation: gen })));
    });
    await this.settle(calls);
  }

  async writeZeroes(offset: number, length: number, opts: { fua?: boolean } = {}): Promise<void> {
    this.live();
    this.checkRange(offset, length);
    const zero = Buffer.alloc(Math.min(ZERO_CHUNK_BYTES, length));
    for (let pos = offset; pos < offset + length; pos += zero.length) {
      const n = Math.min(zero.length, offset + length - pos);
      await this.write(pos, zero.subarray(0, n), opts);
    }
  }

  /** Advisory: members keep their bytes, so parity stays consistent without extra work. */
  async trim(offset: number, length: number): Promise<void> {
    this.live();
    this.checkRange(offset, length);
  }

  async flush(): Promise<void> {
    this.live();
    const seq = this.writeSeq;
    const targets: number[] = [];
    for (let j = 0; j < this.layout.members; j++) if (this.health.writable(j)) targets.push(j);
    await Promise.allSettled(targets.map((j) => this.call(j, 'flush', (m) => m.flush())));
    for (const [s, q] of this.unflushed) if (q <= seq) this.unflushed.delete(s);
    if (this.unflushedOverflow >= 0 && this.unflushedOverflow <= seq) this.unflushedOverflow = -1;
    const bad = this.unreadableCount();
    if (bad > this.layout.tolerance) throw unavailable(`flush: ${bad} members are down, layout ${this.layout.kind} tolerates ${this.layout.tolerance}`);
  }

  private unreadableCount(): number {
    let n = 0;
    for (let j = 0; j < this.layout.members; j++) if (this.health.state(j) === 'down') n++;
    return n;
  }

  // ---- repair ------------------------------------------------------------------------------

  /** Writes member j's unit of `stripe` from the other members. Caller holds the stripe lock. */
  private async rebuildUnit(j: number, stripe: number): Promise<void> {
    const L = this.layout;
    const off = stripe * L.unitSize;
    let unit: Buffer;
    if (L.kind === 'raid1') {
      let src = -1;
      for (let i = 0; i < L.members; i++) if (i !== j && this.health.readable(i, stripe)) { src = i; break; }
      if (src < 0) throw unavailable(`stripe ${stripe}: no current mirror to copy from`);
      unit = await this.readMirrors(stripe, 0, L.unitSize, new Set([j]));
    } else {
      const units = await this.readWindow(stripe, 0, L.unitSize, new Set([j]));
      unit = units[this.stripeOrder(stripe).indexOf(j)] as Buffer;
    }
    await this.call(j, 'write', (m) => m.write(off, unit, { generation: this.health.epoch }));
  }

  /**
   * Catches member `index` up after it was away: copies exactly the units it missed, then marks it
   * up. Pass `member` when the connection to it was re-established as a new object.
   */
  async resync(index: number, member?: VolumeMember): Promise<ResyncReport> {
    this.live();
    if (this.health.state(index) === 'up') return { member: index, unitsCopied: 0 };
    if (member !== undefined) this.swapMember(index, member);
    // Probe before trusting it with writes again.
    await this.call(index, 'probe', (m) => m.generations(0, Math.min(1, this.layout.stripeCount))).catch((e: unknown) => {
      throw unavailable(`member ${index} is still unreachable: ${e instanceof MemberFailed ? String((e.cause as Error)?.message ?? e.cause) : String(e)}`);
    });
    if (this.layout.kind === 'raid0') {
      // raid0 keeps no redundancy: there is nothing to copy from, only the member to take back.
      await this.health.markUp(index);
      return { member: index, unitsCopied: 0 };
    }
    await this.health.startResync(index, { full: false });
    return this.catchUp(index);
  }

  /** Rebuilds everything member `index` holds onto `member`, which takes its place. */
  async replace(index: number, member: VolumeMember): Promise<ResyncReport> {
    this.live();
    if (this.layout.kind === 'raid0') throw badInput('a raid0 volume has no redundancy to rebuild a replacement from');
    this.swapMember(index, member);
    await this.health.startResync(index, { full: true });
    return this.catchUp(index);
  }

  private swapMember(index: number, member: VolumeMember): void {
    if (index < 0 || index >= this.layout.members || !Number.isInteger(index)) throw badInput(`volume has no member ${index}`);
    if (member.size < this.layout.memberSize) throw badInput(`member ${member.id} holds ${member.size} bytes, the layout needs ${this.layout.memberSize}`);
    this.members[index] = member;
  }

  private async catchUp(j: number): Promise<ResyncReport> {
    let copied = 0;
    const copy = async (stripe: number) => {
      await this.locks.with(stripe, async () => {
        if (this.health.state(j) !== 'resyncing') throw unavailable(`member ${j} failed again during resync`);
        try {
          await this.rebuildUnit(j, stripe);
        } catch (e) {
          if (e instanceof MemberFailed) throw unavailable(`resync of member ${j} stopped at stripe ${stripe}: member ${e.member} failed`);
          throw e;
        }
        this.health.unitCopied(j, stripe);
        copied++;
      });
    };
    if (this.health.fullRebuild(j)) {
      for (let s = 0; s < this.layout.stripeCount; s++) {
        await copy(s);
        this.health.advanceCursor(j, s + 1);
      }
    }
    // Writes reach a resyncing member, so this set only shrinks while we walk it.
    for (const s of this.health.pendingUnits(j)) await copy(s);
    await this.call(j, 'flush', (m) => m.flush()).catch(() => {
      throw unavailable(`member ${j} failed its flush at the end of resync`);
    });
    await this.health.markUp(j);
    this.log.info({ member: j, unitsCopied: copied }, 'volume: member resynced');
    return { member: j, unitsCopied: copied };
  }

  /** Verifies mirrors or parity of stripes [first, first+count); with `repair`, rewrites bad parity/mirrors from data/the first mirror. */
  async check(opts: { firstStripe?: number; count?: number; repair?: boolean } = {}): Promise<CheckReport> {
    this.live();
    const L = this.layout;
    const first = opts.firstStripe ?? 0;
    const count = opts.count ?? L.stripeCount - first;
    if (!Number.isSafeInteger(first) || !Number.isSafeInteger(count) || first < 0 || count < 0 || first + count > L.stripeCount) {
      throw badInput(`check range ${first}+${count} is outside the volume's ${L.stripeCount} stripes`);
    }
    const report: CheckReport = { stripesChecked: 0, stripesSkipped: 0, mismatches: 0, firstMismatches: [], repaired: 0 };
    for (let s = first; s < first + count; s++) {
      await this.locks.with(s, async () => {
        if (this.unreadable(s).length > 0) { report.stripesSkipped++; return; }
        const bad = await this.retrying(`check of stripe ${s}`, () => this.checkStripe(s, opts.repair === true));
        report.stripesChecked++;
        if (bad.length === 0) return;
        report.mismatches++;
        // Units beyond what the layout can rebuild (and every raid0 unit) stay as they are.
        if (opts.repair && L.kind !== 'raid0' && bad.length <= L.tolerance) report.repaired++;
        if (report.firstMismatches.length < MAX_REPORTED_MISMATCHES) report.firstMismatches.push({ stripe: s, members: bad });
      });
    }
    return report;
  }

  /** Members of stripe s whose unit disagrees with the rest (raid1: with mirror 0; parity: parity units). */
  private async checkStripe(s: number, repair: boolean): Promise<number[]> {
    const L = this.layout;
    const off = s * L.unitSize;
    // Sealed members verify every sector on the way: a unit that fails authentication is bad
    // whatever its mirrors or parity say, and is rebuilt from the others.
    const reads = await Promise.allSettled(Array.from({ length: L.members }, (_, j) => this.call(j, 'read', (m) => m.read(off, L.unitSize))));
    const corrupt: number[] = [];
    for (const [j, r] of reads.entries()) {
      if (r.status === 'fulfilled') continue;
      if (r.reason instanceof MemberCorrupt) corrupt.push(j);
      else throw r.reason;
    }
    if (corrupt.length > 0) {
      // Beyond the tolerance there is nothing to rebuild from: reported, left for a rewrite.
      if (repair && corrupt.length <= L.tolerance) for (const j of corrupt) await this.rebuildUnit(j, s);
      return corrupt;
    }
    if (L.kind === 'raid0') return [];
    if (L.kind === 'raid1') {
      const all = await this.settle(Array.from({ length: L.members }, (_, j) => this.call(j, 'read', (m) => m.read(off, L.unitSize))));
      const ref = all[0] as Buffer;
      const bad: number[] = [];
      all.forEach((b, j) => { if (!b.equals(ref)) bad.push(j); });
      if (repair) await this.settle(bad.map((j) => this.call(j, 'write', (m) => m.write(off, ref, { generation: this.health.epoch }))));
      return bad;
    }
    const order = this.stripeOrder(s);
    const units = await this.settle(order.map((j) => this.call(j, 'read', (m) => m.read(off, L.unitSize))));
    const expect = await computeParity(units.slice(0, L.dataUnits), L.parityUnits as 1 | 2);
    const bad: number[] = [];
    expect.forEach((p, n) => { if (!p.equals(units[L.dataUnits + n] as Buffer)) bad.push(order[L.dataUnits + n] as number); });
    if (repair) {
      await this.settle(bad.map((j) => this.call(j, 'write', (m) =>
        m.write(off, expect[order.indexOf(j) - L.dataUnits] as Buffer, { generation: this.health.epoch }))));
    }
    return bad;
  }

  /**
   * Makes the stripes a previous master left in flight consistent again: data units are taken as
   * truth and parity recomputed (raid1: the first current mirror is copied to the others).
   */
  async recover(): Promise<RecoverReport> {
    this.live();
    const pending = [...new Set(this.intents.pending)].filter((s) => s < this.layout.stripeCount);
    const report: RecoverReport = { stripes: pending.length, repaired: 0, unrecoverable: [] };
    for (const s of pending) {
      await this.locks.with(s, async () => {
        const bad = this.unreadable(s);
        const dataMissing = this.layout.kind !== 'raid1' && bad.some((j) => this.layout.roleOf(s, j).kind === 'data');
        if (bad.length > this.layout.tolerance || dataMissing) { report.unrecoverable.push(s); return; }
        try {
          await this.retrying(`recovery of stripe ${s}`, () => this.recoverStripe(s));
          report.repaired++;
        } catch (e) {
          // CORRUPT: more units of the stripe were torn than the layout can rebuild.
          if (!isTesseraError(e, 'UNAVAILABLE') && !isTesseraError(e, 'CORRUPT')) throw e;
          report.unrecoverable.push(s);
        }
      });
    }
    await this.intents.clear();
    if (report.unrecoverable.length > 0) {
      this.log.error({ stripes: report.unrecoverable.slice(0, MAX_REPORTED_MISMATCHES) }, 'volume: stripes in flight while a member was down cannot be verified');
    }
    return report;
  }

  private async recoverStripe(s: number): Promise<void> {
    const L = this.layout;
    const off = s * L.unitSize;
    const gen = this.health.epoch;
    if (L.kind === 'raid1') {
      let src = -1;
      for (let j = 0; j < L.members && src < 0; j++) if (this.health.readable(j, s)) src = j;
      const ref = await this.readMirrors(s, 0, L.unitSize, new Set());
      const calls: Array<Promise<void>> = [];
      for (let j = 0; j < L.members; j++) if (j !== src && this.health.writable(j)) calls.push(this.call(j, 'write', (m) => m.write(off, ref, { generation: gen })));
      await this.settle(calls);
      return;
    }
    const order = this.stripeOrder(s);
    // A data unit torn by the crash fails authentication and is rebuilt from parity (old or new
    // bytes, either of which the unacknowledged write allows); parity is then recomputed.
    const data = await this.settle(order.slice(0, L.dataUnits).map((j) => this.call(j, 'read', (m) => m.read(off, L.unitSize))))
      .catch(async (err: unknown) => {
        if (!(err instanceof MemberCorrupt)) throw err;
        return (await this.readWindow(s, 0, L.unitSize)).slice(0, L.dataUnits);
      });
    const parity = await computeParity(data, L.parityUnits as 1 | 2);
    await this.settle(parity.map((p, n) => {
      const j = order[L.dataUnits + n] as number;
      return this.health.writable(j) ? this.call(j, 'write', (m) => m.write(off, p, { generation: gen })) : Promise.resolve();
    }));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    await this.flush().catch(() => {});
    this.closed = true;
    await this.intents.close().catch(() => {});
    await this.health.idle();
    await Promise.allSettled(this.members.map((m) => m.close()));
  }
}
