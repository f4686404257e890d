/**
 * Member health as the master must remember it across restarts: which members are down or being
 * resynced, which units each missed while away (its dirty set), and the volume's epoch, the
 * generation every member write carries so late or foreign writes can be fenced off.
 */
import { badInput, corrupt, tooLarge } from '../../errors.js';
import { MAX_MEMBERS } from './layout.js';
import { MAX_GENERATION } from './member.js';
import { CoalescingSaver, MAX_U48, U48_BYTES, type BlobStorage } from './storage.js';

/**
 * Past this many missed units (4 GiB at 64 KiB units) a member is simply rebuilt whole: the set
 * stays small enough to rewrite on every change.
 */
export const MAX_DIRTY_UNITS_PER_MEMBER = 65_536;

export type MemberState = 'up' | 'down' | 'resyncing';

interface Dirty {
  /** Every unit is suspect (too many missed, or a replacement): rebuild from `cursor` up. */
  all: boolean;
  units: Set<number>;
  /** With `all`, units below this are already rebuilt. */
  cursor: number;
}

const MAGIC = Buffer.from('TVH1');
const FLAG_DOWN = 1;
const FLAG_ALL = 2;

export interface HealthSnapshot {
  epoch: number;
  members: Array<{ state: MemberState; all: boolean; units: number[] }>;
}

export function encodeHealth(h: HealthSnapshot): Buffer {
  if (h.members.length > MAX_MEMBERS) throw tooLarge(`${h.members.length} members exceeds ${MAX_MEMBERS}`);
  let size = MAGIC.length + 4 + 1;
  for (const m of h.members) size += 1 + 4 + m.units.length * U48_BYTES;
  const buf = Buffer.alloc(size);
  let o = MAGIC.copy(buf, 0);
  o = buf.writeUInt32LE(h.epoch, o);
  o = buf.writeUInt8(h.members.length, o);
  for (const m of h.members) {
    if (m.units.length > MAX_DIRTY_UNITS_PER_MEMBER) throw tooLarge(`dirty set of ${m.units.length} units exceeds ${MAX_DIRTY_UNITS_PER_MEMBER}`);
    // A member mid-resync after a restart is still missing some units: it comes back as down.
    o = buf.writeUInt8((m.state === 'up' ? 0 : FLAG_DOWN) | (m.all ? FLAG_ALL : 0), o);
    o = buf.writeUInt32LE(m.units.length, o);
    for (const u of m.units) {
      if (!Number.isInteger(u) || u < 0 || u > MAX_U48) throw badInput(`unit ${u} cannot be recorded`);
      o = buf.writeUIntLE(u, o, U48_BYTES);
    }
  }
  return buf;
}

export function decodeHealth(buf: Buffer): HealthSnapshot {
  const fail = (why: string) => corrupt(`volume health record is damaged: ${why}`);
  if (buf.length < MAGIC.length + 5 || !buf.subarray(0, MAGIC.length).equals(MAGIC)) throw fail('bad header');
  let o = MAGIC.length;
  const epoch = buf.readUInt32LE(o); o += 4;
  const n = buf.readUInt8(o); o += 1;
  if (n > MAX_MEMBERS) throw fail(`${n} members`);
  const members: HealthSnapshot['members'] = [];
  for (let i = 0; i < n; i++) {
    if (o + 5 > buf.length) throw fail('truncated');
    const flags = buf.readUInt8(o); o += 1;
    const count = buf.readUInt32LE(o); o += 4;
    if (count > MAX_DIRTY_UNITS_PER_MEMBER) throw fail(`${count} dirty units`);
    if (o + count * U48_BYTES > buf.length) throw fail('truncated dirty set');
    const units: number[] = [];
    for (let j = 0; j < count; j++) { units.push(buf.readUIntLE(o, U48_BYTES)); o += U48_BYTES; }
    members.push({ state: flags & FLAG_DOWN ? 'down' : 'up', all: (flags & FLAG_ALL) !== 0, units });
  }
  if (o !== buf.length) throw fail('trailing bytes');
  return { epoch, members };
}

export class MemberHealth {
  private readonly states: MemberState[];
  private readonly dirty: Dirty[];
  private _epoch: number;
  private readonly saver: CoalescingSaver;

  private constructor(storage: BlobStorage, snap: HealthSnapshot) {
    this._epoch = snap.epoch;
    this.states = snap.members.map((m) => m.state);
    this.dirty = snap.members.map((m) => ({ all: m.all, units: new Set(m.units), cursor: 0 }));
    this.saver = new CoalescingSaver(storage, () => ({ bytes: encodeHealth(this.snapshot()), done: () => {} }));
  }

  /**
   * Loads the record (or starts one with every member up) and moves to a new epoch, so writes of
   * any earlier master are older than ours.
   */
  static async open(storage: BlobStorage, members: number): Promise<MemberHealth> {
    if (!Number.isInteger(members) || members < 1 || members > MAX_MEMBERS) throw badInput(`bad member count ${members}`);
    const blob = await storage.load();
    let snap: HealthSnapshot = { epoch: 0, members: Array.from({ length: members }, () => ({ state: 'up' as const, all: false, units: [] })) };
    if (blob !== null) {
      snap = decodeHealth(blob);
      if (snap.members.length !== members) {
        throw badInput(`volume health record lists ${snap.members.length} members but the volume has ${members}`);
      }
    }
    const h = new MemberHealth(storage, snap);
    await h.bumpEpoch();
    return h;
  }

  get epoch(): number { return this._epoch; }
  get members(): number { return this.states.length; }

  state(j: number): MemberState { return this.states[j] ?? 'down'; }

  snapshot(): HealthSnapshot {
    return {
      epoch: this._epoch,
      members: this.states.map((state, j) => {
        const d = this.dirty[j] as Dirty;
        return { state, all: d.all, units: [...d.units] };
      }),
    };
  }

  dirtyCount(j: number, stripeCount: number): number {
    const d = this.dirty[j];
    if (d === undefined) return 0;
    return d.all ? Math.max(0, stripeCount - d.cursor) + d.units.size : d.units.size;
  }

  fullRebuild(j: number): boolean { return this.dirty[j]?.all ?? false; }

  /** Holds the current content of its unit in `stripe`. */
  readable(j: number, stripe: number): boolean {
    const s = this.states[j];
    if (s === 'up') return true;
    if (s !== 'resyncing') return false;
    const d = this.dirty[j] as Dirty;
    if (d.units.has(stripe)) return false;
    return !d.all || stripe < d.cursor;
  }

  /** Receives writes (up, or catching up). */
  writable(j: number): boolean {
    const s = this.states[j];
    return s === 'up' || s === 'resyncing';
  }

  async bumpEpoch(): Promise<void> {
    if (this._epoch >= MAX_GENERATION) throw tooLarge(`volume epoch reached its limit of ${MAX_GENERATION}`);
    this._epoch++;
    await this.saver.save();
  }

  private addUnits(j: number, units: Iterable<number> | 'all'): boolean {
    const d = this.dirty[j] as Dirty;
    if (d.all && d.cursor === 0) return false;
    if (units === 'all') {
      d.all = true;
      d.cursor = 0;
      d.units.clear();
      return true;
    }
    let changed = false;
    for (const u of units) {
      if (d.all && u >= d.cursor) continue;
      if (d.units.has(u)) continue;
      if (d.units.size >= MAX_DIRTY_UNITS_PER_MEMBER) return this.addUnits(j, 'all') || true;
      d.units.add(u);
      changed = true;
    }
    return changed;
  }

  /** Marks a member down; `suspect` are units it may have lost (written but not yet flushed). */
  async markDown(j: number, suspect: Iterable<number> | 'all'): Promise<boolean> {
    if (this.states[j] === 'down') return false;
    this.states[j] = 'down';
    this.addUnits(j, suspect);
    await this.bumpEpoch();
    return true;
  }

  /** Records that the members not receiving this write miss `stripe`; durable on return. */
  async missed(stripe: number, members: number[]): Promise<void> {
    let changed = false;
    for (const j of members) changed = this.addUnits(j, [stripe]) || changed;
    if (changed) await this.saver.save();
  }

  /** Starts catching a member up: it takes writes again, and reads only where it is current. */
  async startResync(j: number, opts: { full: boolean }): Promise<void> {
    const d = this.dirty[j] as Dirty;
    if (opts.full) { d.all = true; d.units.clear(); }
    d.cursor = 0;
    this.states[j] = 'resyncing';
    await this.bumpEpoch();
  }

  /** The units still to copy, in order (bounded by MAX_DIRTY_UNITS_PER_MEMBER). */
  pendingUnits(j: number): number[] {
    return [...(this.dirty[j] as Dirty).units].sort((a, b) => a - b);
  }

  /** `stripe` of member j is current again. */
  unitCopied(j: number, stripe: number): void {
    const d = this.dirty[j] as Dirty;
    d.units.delete(stripe);
  }

  /** With a full rebuild, every unit below `cursor` is current. */
  advanceCursor(j: number, cursor: number): void {
    (this.dirty[j] as Dirty).cursor = cursor;
  }

  async markUp(j: number): Promise<void> {
    const d = this.dirty[j] as Dirty;
    d.all = false;
    d.cursor = 0;
    d.units.clear();
    this.states[j] = 'up';
    await this.saver.save();
  }

  async idle(): Promise<void> { await this.saver.idle(); }
}
