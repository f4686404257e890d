/**
 * What a volume needs from each of its members: positional reads and writes of member-local byte
 * ranges, a flush, and per-unit generation numbers. One call is one RPC when the member is a remote
 * node's extent file, so the surface stays small and every argument is bounded.
 */
import { badInput, TesseraError, tooLarge } from '../../errors.js';
import { MAX_STRIPE_UNIT_BYTES } from './layout.js';
import { sealedUnitBytes } from './seal.js';

/** A single member call never moves more than one stripe unit, sealed (seal.ts) at most. */
export const MAX_MEMBER_IO_BYTES = sealedUnitBytes(MAX_STRIPE_UNIT_BYTES);
/** Generations are u32 on disk and on the wire. */
export const MAX_GENERATION = 0xffff_ffff;
/** One generations() call answers for at most this many units (4 bytes each: 256 KiB). */
export const MAX_GENERATIONS_PER_CALL = 65_536;

export interface MemberWriteOptions {
  /** Resolve only once the bytes are on stable storage. */
  durable?: boolean;
  /**
   * The writer's generation (the volume's epoch). A member stores it for every unit touched and
   * refuses, with CONFLICT, a write older than what a unit already holds: a fenced-off master or
   * a write that timed out and arrived late cannot overwrite newer data.
   */
  generation?: number;
}

export interface VolumeMember {
  readonly id: string;
  /** Bytes addressable on the member. */
  readonly size: number;
  /** Resolves to a buffer the caller owns: a sealed member decrypts in it. */
  read(offset: number, length: number): Promise<Buffer>;
  write(offset: number, data: Buffer, opts?: MemberWriteOptions): Promise<void>;
  /** Makes every acknowledged write durable. */
  flush(): Promise<void>;
  /** Generation of units firstUnit .. firstUnit+count-1 (0 for never written). */
  generations(firstUnit: number, count: number): Promise<number[]>;
  close(): Promise<void>;
}

/** Argument checks every member implementation shares, so a remote one rejects the same inputs. */
export function checkMemberRange(id: string, size: number, offset: number, length: number): void {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) {
    throw badInput(`member ${id}: bad range ${offset}+${length}`);
  }
  if (length > MAX_MEMBER_IO_BYTES) throw tooLarge(`member ${id}: ${length} bytes in one call exceeds ${MAX_MEMBER_IO_BYTES}`);
  if (offset + length > size) throw badInput(`member ${id}: range ${offset}+${length} is past its end at ${size}`);
}

export function checkGeneration(id: string, generation: number | undefined): void {
  if (generation === undefined) return;
  if (!Number.isInteger(generation) || generation < 0 || generation > MAX_GENERATION) {
    throw badInput(`member ${id}: generation ${generation} is outside 0..${MAX_GENERATION}`);
  }
}

export function checkGenerationRange(id: string, units: number, firstUnit: number, count: number): void {
  if (!Number.isSafeInteger(firstUnit) || !Number.isSafeInteger(count) || firstUnit < 0 || count < 0) {
    throw badInput(`member ${id}: bad unit range ${firstUnit}+${count}`);
  }
  if (count > MAX_GENERATIONS_PER_CALL) throw tooLarge(`member ${id}: ${count} generations in one call exceeds ${MAX_GENERATIONS_PER_CALL}`);
  if (firstUnit + count > units) throw badInput(`member ${id}: unit range ${firstUnit}+${count} is past its ${units} units`);
}

export function staleWrite(id: string, unit: number, have: number, got: number): TesseraError {
  return new TesseraError('CONFLICT', `member ${id}: write of generation ${got} to unit ${unit} that holds generation ${have}; a newer writer owns this volume`, { unit, have, got });
}

/**
 * Runs one member call with a deadline. A call that does not settle in time rejects with TIMEOUT;
 * its late result is ignored (and a late write is fenced by its generation).
 */
export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new TesseraError('TIMEOUT', `${what} did not answer within ${ms} ms`)), ms);
    p.then(
      (v) => { clearTimeout(timer); resolve(v); },
      (e: unknown) => { clearTimeout(timer); reject(e); },
    );
  });
}
