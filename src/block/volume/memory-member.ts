/**
 * A member held in memory, with failure injection, for tests and throwaway volumes.
 */
import { badInput, TesseraError, tooLarge } from '../../errors.js';
import { MAX_STRIPE_UNIT_BYTES, MIN_STRIPE_UNIT_BYTES } from './layout.js';
import {
  checkGeneration, checkGenerationRange, checkMemberRange, staleWrite,
  type MemberWriteOptions, type VolumeMember,
} from './member.js';

/** A memory member is a test device: 1 GiB keeps a stray size from eating the machine. */
export const MAX_MEMORY_MEMBER_BYTES = 1 << 30;

export type FailureMode = 'none' | 'error' | 'hang';

export interface MemoryMemberOptions {
  id: string;
  size: number;
  unitSize: number;
  /** Each call waits a random 0..maxDelayMs first, to shuffle the order of concurrent calls. */
  maxDelayMs?: number;
}

export class MemoryMember implements VolumeMember {
  readonly id: string;
  readonly size: number;
  readonly unitSize: number;
  private readonly bytes: Buffer;
  private readonly gens: Uint32Array;
  private mode: FailureMode = 'none';
  private readonly maxDelayMs: number;
  /** Bytes written since the last resetCounters(), and which units they touched. */
  writes = 0;
  readonly unitsWritten = new Set<number>();

  constructor(opts: MemoryMemberOptions) {
    if (!Number.isSafeInteger(opts.size) || opts.size < 0) throw badInput(`memory member ${opts.id}: bad size ${opts.size}`);
    if (opts.size > MAX_MEMORY_MEMBER_BYTES) throw tooLarge(`memory member ${opts.id}: ${opts.size} bytes exceeds ${MAX_MEMORY_MEMBER_BYTES}`);
    if (!Number.isInteger(opts.unitSize) || opts.unitSize < MIN_STRIPE_UNIT_BYTES || opts.unitSize > MAX_STRIPE_UNIT_BYTES) {
      throw badInput(`memory member ${opts.id}: unit size ${opts.unitSize} outside ${MIN_STRIPE_UNIT_BYTES}..${MAX_STRIPE_UNIT_BYTES}`);
    }
    this.id = opts.id;
    this.size = opts.size;
    this.unitSize = opts.unitSize;
    this.bytes = Buffer.alloc(opts.size);
    this.gens = new Uint32Array(Math.ceil(opts.size / opts.unitSize));
    this.maxDelayMs = opts.maxDelayMs ?? 0;
  }

  /** 'error': every call rejects with UNAVAILABLE; 'hang': calls never settle; 'none': healthy. */
  fail(mode: FailureMode): void { this.mode = mode; }

  resetCounters(): void { this.writes = 0; this.unitsWritten.clear(); }

  /** Direct access for tests that simulate a lost or torn write. */
  raw(): Buffer { return this.bytes; }

  private async enter(what: string): Promise<void> {
    if (this.maxDelayMs > 0) await new Promise((r) => setTimeout(r, Math.random() * this.maxDelayMs));
    if (this.mode === 'error') throw new TesseraError('UNAVAILABLE', `member ${this.id} is failing (${what})`);
    if (this.mode === 'hang') await new Promise<never>(() => {});
  }

  async read(offset: number, length: number): Promise<Buffer> {
    checkMemberRange(this.id, this.size, offset, length);
    await this.enter('read');
    return Buffer.from(this.bytes.subarray(offset, offset + length));
  }

  async write(offset: number, data: Buffer, opts: MemberWriteOptions = {}): Promise<void> {
    checkMemberRange(this.id, this.size, offset, data.length);
    checkGeneration(this.id, opts.generation);
    await this.enter('write');
    if (data.length === 0) return;
    const first = Math.floor(offset / this.unitSize);
    const last = Math.floor((offset + data.length - 1) / this.unitSize);
    if (opts.generation !== undefined) {
      for (let u = first; u <= last; u++) {
        const have = this.gens[u] as number;
        if (have > opts.generation) throw staleWrite(this.id, u, have, opts.generation);
      }
    }
    data.copy(this.bytes, offset);
    for (let u = first; u <= last; u++) {
      if (opts.generation !== undefined) this.gens[u] = opts.generation;
      this.unitsWritten.add(u);
    }
    this.writes += data.length;
  }

  async flush(): Promise<void> { await this.enter('flush'); }

  async generations(firstUnit: number, count: number): Promise<number[]> {
    checkGenerationRange(this.id, this.gens.length, firstUnit, count);
    await this.enter('generations');
    return Array.from(this.gens.subarray(firstUnit, firstUnit + count));
  }

  async close(): Promise<void> {}
}
