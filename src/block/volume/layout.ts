/**
 * RAID maps: pure arithmetic from volume byte ranges to member unit extents. No I/O here, so the
 * maps can be property-tested alone and shared by any node that takes over as master.
 *
 * Every member holds exactly one unit of every stripe at member offset `stripe * unitSize`, so a
 * member's unit index and the stripe number are the same thing (generations and dirty sets rely
 * on that).
 */
import { badInput, tooLarge } from '../../errors.js';

export type LayoutKind = 'raid0' | 'raid1' | 'raid5' | 'raid6';

export const LAYOUT_KINDS: readonly LayoutKind[] = ['raid0', 'raid1', 'raid5', 'raid6'];

/** 64 KiB: large enough to amortise one RPC per unit, small enough for 4K random parity updates. */
export const DEFAULT_STRIPE_UNIT_BYTES = 64 << 10;
/** Below 4 KiB the per-unit RPC overhead dominates; also keeps units multiples of 8 for Reed–Solomon. */
export const MIN_STRIPE_UNIT_BYTES = 4 << 10;
/** One unit must travel in one frame with room to spare (MAX_FRAME_PAYLOAD_BYTES is 8 MiB + 64 KiB). */
export const MAX_STRIPE_UNIT_BYTES = 4 << 20;
/** Bitmask-based parity reconstruction and status displays assume a small member set. */
export const MAX_MEMBERS = 24;
/** Keeps every byte offset (member and volume) an exact integer in a JS number. */
export const MAX_MEMBER_BYTES = 2 ** 50;

export const MIN_MEMBERS: Record<LayoutKind, number> = { raid0: 1, raid1: 2, raid5: 3, raid6: 4 };

export interface LayoutSpec {
  kind: LayoutKind;
  members: number;
  /** Usable bytes of each member; rounded down to whole units. */
  memberSize: number;
  unitSize?: number;
  /**
   * Bytes the volume exports, at most the whole stripes' capacity; the tail of the last stripe
   * beyond it is never addressed. Defaults to every whole stripe.
   */
  size?: number;
}

/** The role a member plays in one stripe. */
export type UnitRole =
  | { kind: 'data'; index: number }
  | { kind: 'mirror' }
  | { kind: 'p' }
  | { kind: 'q' };

/** A contiguous piece of a volume range that lives inside one data unit. */
export interface UnitExtent {
  stripe: number;
  /** Index of the data unit within the stripe (0 for raid1, where every member holds a copy). */
  dataIndex: number;
  /** Member holding this data unit (for raid1: the first mirror; all mirrors hold it). */
  member: number;
  /** Offset of the piece within its unit. */
  unitOffset: number;
  /** Offset of the piece on the member. */
  memberOffset: number;
  length: number;
  /** Offset of the piece within the volume. */
  volumeOffset: number;
}

export class Layout {
  readonly kind: LayoutKind;
  readonly members: number;
  readonly unitSize: number;
  /** Data units per stripe (k). */
  readonly dataUnits: number;
  /** Parity units per stripe (0, 1 or 2). */
  readonly parityUnits: number;
  /** How many members may be missing while every byte stays readable. */
  readonly tolerance: number;
  readonly stripeCount: number;
  /** Bytes of volume data per stripe. */
  readonly stripeDataBytes: number;
  /** Usable volume size in bytes. */
  readonly size: number;
  readonly memberSize: number;

  constructor(spec: LayoutSpec) {
    const { kind, members } = spec;
    const unitSize = spec.unitSize ?? DEFAULT_STRIPE_UNIT_BYTES;
    if (!LAYOUT_KINDS.includes(kind)) throw badInput(`unknown volume layout "${String(kind)}"; use one of ${LAYOUT_KINDS.join(', ')}`);
    if (!Number.isInteger(members) || members < MIN_MEMBERS[kind]) {
      throw badInput(`layout ${kind} needs at least ${MIN_MEMBERS[kind]} members, got ${members}`);
    }
    if (members > MAX_MEMBERS) throw tooLarge(`a volume has at most ${MAX_MEMBERS} members, got ${members}`);
    if (!Number.isInteger(unitSize) || unitSize < MIN_STRIPE_UNIT_BYTES || unitSize > MAX_STRIPE_UNIT_BYTES || (unitSize & (unitSize - 1)) !== 0) {
      throw badInput(`stripe unit must be a power of two between ${MIN_STRIPE_UNIT_BYTES} and ${MAX_STRIPE_UNIT_BYTES} bytes, got ${unitSize}`);
    }
    if (!Number.isSafeInteger(spec.memberSize) || spec.memberSize < 0) throw badInput(`member size must be a non-negative integer, got ${spec.memberSize}`);
    if (spec.memberSize > MAX_MEMBER_BYTES) throw tooLarge(`member size ${spec.memberSize} exceeds the limit of ${MAX_MEMBER_BYTES} bytes`);
    this.kind = kind;
    this.members = members;
    this.unitSize = unitSize;
    this.parityUnits = kind === 'raid5' ? 1 : kind === 'raid6' ? 2 : 0;
    this.dataUnits = kind === 'raid1' ? 1 : members - this.parityUnits;
    this.tolerance = kind === 'raid0' ? 0 : kind === 'raid1' ? members - 1 : this.parityUnits;
    this.stripeCount = Math.floor(spec.memberSize / unitSize);
    this.memberSize = this.stripeCount * unitSize;
    this.stripeDataBytes = this.dataUnits * unitSize;
    const capacity = this.stripeCount * this.stripeDataBytes;
    if (spec.size !== undefined && (!Number.isSafeInteger(spec.size) || spec.size < 0 || spec.size > capacity || capacity - spec.size >= this.stripeDataBytes)) {
      throw badInput(`volume size ${spec.size} does not fit ${this.stripeCount} stripes of ${this.stripeDataBytes} bytes (it must be more than ${capacity - this.stripeDataBytes} and at most ${capacity})`);
    }
    this.size = spec.size ?? capacity;
  }

  /**
   * Left-symmetric rotation (Linux md's default): parity walks backwards from the last member and
   * data follows parity, so sequential reads touch every member.
   */
  parityMembers(stripe: number): number[] {
    if (this.parityUnits === 0) return [];
    const p = this.members - 1 - (stripe % this.members);
    return this.parityUnits === 1 ? [p] : [p, (p + 1) % this.members];
  }

  /** Member holding data unit `dataIndex` of `stripe`. */
  dataMember(stripe: number, dataIndex: number): number {
    if (this.kind === 'raid0' || this.kind === 'raid1') return dataIndex;
    const p = this.members - 1 - (stripe % this.members);
    return (p + this.parityUnits + dataIndex) % this.members;
  }

  /** What member `member` holds in `stripe`. */
  roleOf(stripe: number, member: number): UnitRole {
    if (this.kind === 'raid1') return { kind: 'mirror' };
    if (this.kind === 'raid0') return { kind: 'data', index: member };
    const p = this.members - 1 - (stripe % this.members);
    const rel = (member - p + this.members) % this.members;
    if (rel === 0) return { kind: 'p' };
    if (rel === 1 && this.parityUnits === 2) return { kind: 'q' };
    return { kind: 'data', index: rel - this.parityUnits };
  }

  /** Splits a volume byte range into per-unit pieces, in volume order. */
  mapRange(offset: number, length: number): UnitExtent[] {
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > this.size) {
      throw badInput(`range ${offset}+${length} is outside the volume of ${this.size} bytes`);
    }
    const out: UnitExtent[] = [];
    let pos = offset;
    const end = offset + length;
    while (pos < end) {
      const stripe = Math.floor(pos / this.stripeDataBytes);
      const inStripe = pos - stripe * this.stripeDataBytes;
      const dataIndex = Math.floor(inStripe / this.unitSize);
      const unitOffset = inStripe - dataIndex * this.unitSize;
      const len = Math.min(this.unitSize - unitOffset, end - pos);
      out.push({
        stripe,
        dataIndex,
        member: this.dataMember(stripe, dataIndex),
        unitOffset,
        memberOffset: stripe * this.unitSize + unitOffset,
        length: len,
        volumeOffset: pos,
      });
      pos += len;
    }
    return out;
  }

  /** Inverse of mapRange for one byte: the volume offset stored at (member, memberOffset), or null for parity. */
  volumeOffsetOf(member: number, memberOffset: number): number | null {
    const stripe = Math.floor(memberOffset / this.unitSize);
    const unitOffset = memberOffset - stripe * this.unitSize;
    const role = this.roleOf(stripe, member);
    if (role.kind === 'p' || role.kind === 'q') return null;
    const index = role.kind === 'data' ? role.index : 0;
    return stripe * this.stripeDataBytes + index * this.unitSize + unitOffset;
  }
}
