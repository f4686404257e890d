/**
 * Hybrid logical clocks: timestamps that follow wall time but never go backwards and always order
 * causally related events, so replicas can merge records last-writer-wins without trusting any
 * one node's clock. The node id breaks ties, making the order total.
 */
import { z } from 'zod';
import { badInput } from '../errors.js';

export interface Hlc {
  /** Milliseconds since the epoch, the largest physical time seen. */
  readonly wall: number;
  /** Counter ordering events within one `wall` millisecond. */
  readonly logical: number;
  /** Id of the node that made the timestamp. */
  readonly node: string;
}

/** Counter ceiling; past it the clock borrows the next millisecond rather than overflow. */
export const MAX_HLC_LOGICAL = 0xffff_ffff;
/** Longest node id carried in a timestamp. */
export const MAX_HLC_NODE_CHARS = 128;
/** Latest wall time accepted (year 9999): anything later is garbage, not a clock. */
export const MAX_HLC_WALL_MS = 253_402_300_799_999;
/** How far ahead of local time a remote timestamp may be before it is refused. */
export const DEFAULT_MAX_CLOCK_SKEW_MS = 60_000;

export const hlcSchema = z
  .object({
    wall: z.number().int().min(0).max(MAX_HLC_WALL_MS),
    logical: z.number().int().min(0).max(MAX_HLC_LOGICAL),
    node: z.string().max(MAX_HLC_NODE_CHARS),
  })
  .strict();

/**
 * The shape hlcSchema accepts, checked by hand (undefined when it is not): every entry from
 * another node has its timestamp checked, and the schema's walk cost more than the rest of a
 * merge's checks. Callers fall back to the schema for the message.
 */
export function plainHlc(value: unknown): Hlc | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  const o = value as Record<string, unknown>;
  const { wall, logical, node } = o;
  if (typeof wall !== 'number' || !Number.isInteger(wall) || wall < 0 || wall > MAX_HLC_WALL_MS) return undefined;
  if (typeof logical !== 'number' || !Number.isInteger(logical) || logical < 0 || logical > MAX_HLC_LOGICAL) return undefined;
  if (typeof node !== 'string' || node.length > MAX_HLC_NODE_CHARS) return undefined;
  // Strict like the schema: no other keys, and these three the object's own.
  if (Object.keys(o).length !== 3 || !Object.hasOwn(o, 'wall') || !Object.hasOwn(o, 'logical') || !Object.hasOwn(o, 'node')) return undefined;
  return { wall, logical, node };
}

export function checkHlc(value: unknown): Hlc {
  const plain = plainHlc(value);
  if (plain !== undefined) return plain;
  // Anything the quick check refuses goes through the schema, which names what is wrong.
  const parsed = hlcSchema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw badInput(`bad clock timestamp: ${issue ? `${issue.path.join('.')}: ${issue.message}` : 'invalid'}`);
  }
  return parsed.data;
}

export function compareHlc(a: Hlc, b: Hlc): -1 | 0 | 1 {
  if (a.wall !== b.wall) return a.wall < b.wall ? -1 : 1;
  if (a.logical !== b.logical) return a.logical < b.logical ? -1 : 1;
  if (a.node !== b.node) return a.node < b.node ? -1 : 1;
  return 0;
}

export function maxHlc(a: Hlc, b: Hlc): Hlc {
  return compareHlc(a, b) >= 0 ? a : b;
}

/** Fixed-layout bytes (6-byte wall, 4-byte counter, node id): for authenticating a timestamp. */
export function encodeHlc(h: Hlc): Buffer {
  const node = Buffer.from(h.node, 'utf8');
  const out = Buffer.allocUnsafe(10 + node.length);
  out.writeUIntBE(h.wall, 0, 6);
  out.writeUInt32BE(h.logical, 6);
  node.copy(out, 10);
  return out;
}

export interface HybridClockOptions {
  /** Physical clock, for tests; defaults to Date.now. */
  readonly now?: () => number;
  readonly maxSkewMs?: number;
}

export class HybridClock {
  readonly #node: string;
  readonly #now: () => number;
  readonly #maxSkewMs: number;
  #wall = 0;
  #logical = 0;

  constructor(node: string, opts: HybridClockOptions = {}) {
    if (node.length === 0 || node.length > MAX_HLC_NODE_CHARS) throw badInput(`clock node id must be 1..${MAX_HLC_NODE_CHARS} characters`);
    this.#node = node;
    this.#now = opts.now ?? Date.now;
    this.#maxSkewMs = opts.maxSkewMs ?? DEFAULT_MAX_CLOCK_SKEW_MS;
  }

  /** The last timestamp issued or observed, without advancing. */
  peek(): Hlc {
    return { wall: this.#wall, logical: this.#logical, node: this.#node };
  }

  /** A timestamp for a local event (a write), later than every one issued or observed before. */
  tick(): Hlc {
    const physical = this.#physical();
    if (physical > this.#wall) {
      this.#wall = physical;
      this.#logical = 0;
    } else {
      this.#bump();
    }
    return this.peek();
  }

  /**
   * Folds in a timestamp received from another node and returns one later than both. A remote
   * wall time too far ahead of ours is refused so one bad clock cannot drag the cluster forward.
   */
  receive(remote: Hlc): Hlc {
    checkHlc(remote);
    const physical = this.#physical();
    if (remote.wall > physical + this.#maxSkewMs) {
      throw badInput(
        `timestamp from node ${remote.node} is ${remote.wall - physical} ms ahead of this node's clock (limit ${this.#maxSkewMs} ms); check both clocks`,
      );
    }
    const wall = Math.max(this.#wall, remote.wall, physical);
    if (wall === this.#wall && wall === remote.wall) {
      this.#logical = Math.max(this.#logical, remote.logical);
      this.#bump();
    } else if (wall === this.#wall) {
      this.#bump();
    } else if (wall === remote.wall) {
      this.#wall = wall;
      this.#logical = remote.logical;
      this.#bump();
    } else {
      this.#wall = wall;
      this.#logical = 0;
    }
    return this.peek();
  }

  #physical(): number {
    const t = Math.floor(this.#now());
    if (!Number.isSafeInteger(t) || t < 0 || t > MAX_HLC_WALL_MS) throw badInput(`physical clock reads ${t}, not a millisecond timestamp`);
    return t;
  }

  #bump(): void {
    if (this.#logical >= MAX_HLC_LOGICAL) {
      this.#wall++;
      this.#logical = 0;
    } else {
      this.#logical++;
    }
  }
}
