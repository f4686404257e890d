/**
 * A member backed by a local file: positional I/O, fdatasync for durability, and the per-unit
 * generations in a side file (`<path>.gen`, u32 little-endian per unit). The same shape a storage
 * node's extent file serves over the network.
 */
import { constants as fsc } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { badInput, TesseraError } from '../../src/errors.js';
import { readAtZeroFilled, writeAt } from '../../src/disk-io.js';
import { MAX_MEMBER_BYTES, MAX_STRIPE_UNIT_BYTES, MIN_STRIPE_UNIT_BYTES } from '../../src/block/volume/layout.js';
import {
  checkGeneration, checkGenerationRange, checkMemberRange, staleWrite,
  type MemberWriteOptions, type VolumeMember,
} from '../../src/block/volume/member.js';

const GEN_BYTES = 4;

export interface FileMemberOptions {
  path: string;
  size: number;
  unitSize: number;
  id?: string;
}

function ioError(id: string, what: string, e: unknown): TesseraError {
  if (e instanceof TesseraError) return e;
  const msg = e instanceof Error ? e.message : String(e);
  return new TesseraError('IO', `member ${id}: ${what} failed: ${msg}`, undefined, { cause: e });
}

export class FileMember implements VolumeMember {
  readonly id: string;
  readonly size: number;
  readonly unitSize: number;
  private readonly units: number;
  private closed = false;

  private constructor(id: string, size: number, unitSize: number, private readonly data: FileHandle, private readonly gens: FileHandle) {
    this.id = id;
    this.size = size;
    this.unitSize = unitSize;
    this.units = Math.ceil(size / unitSize);
  }

  /** Opens or creates the extent file; its length is set to `size` (sparse). */
  static async open(opts: FileMemberOptions): Promise<FileMember> {
    const id = opts.id ?? opts.path;
    if (!Number.isSafeInteger(opts.size) || opts.size < 0 || opts.size > MAX_MEMBER_BYTES) {
      throw badInput(`member ${id}: size ${opts.size} outside 0..${MAX_MEMBER_BYTES}`);
    }
    if (!Number.isInteger(opts.unitSize) || opts.unitSize < MIN_STRIPE_UNIT_BYTES || opts.unitSize > MAX_STRIPE_UNIT_BYTES) {
      throw badInput(`member ${id}: unit size ${opts.unitSize} outside ${MIN_STRIPE_UNIT_BYTES}..${MAX_STRIPE_UNIT_BYTES}`);
    }
    const handles: FileHandle[] = [];
    try {
      const flags = fsc.O_RDWR | fsc.O_CREAT;
      const data = await open(opts.path, flags, 0o600);
      handles.push(data);
      const gens = await open(opts.path + '.gen', flags, 0o600);
      handles.push(gens);
      const st = await data.stat();
      if (st.size < opts.size) await data.truncate(opts.size);
      return new FileMember(id, opts.size, opts.unitSize, data, gens);
    } catch (e) {
      await Promise.allSettled(handles.map((h) => h.close()));
      throw ioError(id, `open ${opts.path}`, e);
    }
  }

  private live(): void {
    if (this.closed) throw new TesseraError('UNAVAILABLE', `member ${this.id} is closed`);
  }

  async read(offset: number, length: number): Promise<Buffer> {
    checkMemberRange(this.id, this.size, offset, length);
    this.live();
    const buf = Buffer.allocUnsafe(length);
    try { await readAtZeroFilled(this.data, buf, offset); } catch (e) { throw ioError(this.id, 'read', e); }
    return buf;
  }

  async write(offset: number, data: Buffer, opts: MemberWriteOptions = {}): Promise<void> {
    checkMemberRange(this.id, this.size, offset, data.length);
    checkGeneration(this.id, opts.generation);
    this.live();
    if (data.length === 0) return;
    const first = Math.floor(offset / this.unitSize);
    const last = Math.floor((offset + data.length - 1) / this.unitSize);
    try {
      if (opts.generation !== undefined) {
        const have = await this.readGens(first, last - first + 1);
        have.forEach((g, i) => { if (g > (opts.generation as number)) throw staleWrite(this.id, first + i, g, opts.generation as number); });
      }
      await writeAt(this.data, data, offset);
      // Generation after data: a crash in between leaves the unit looking older, which only makes
      // a resync copy more than it strictly needed.
      if (opts.generation !== undefined) {
        const g = Buffer.alloc((last - first + 1) * GEN_BYTES);
        for (let i = 0; i < last - first + 1; i++) g.writeUInt32LE(opts.generation, i * GEN_BYTES);
        await writeAt(this.gens, g, first * GEN_BYTES);
      }
      if (opts.durable) await this.sync();
    } catch (e) {
      throw ioError(this.id, 'write', e);
    }
  }

  private async sync(): Promise<void> {
    await Promise.all([this.data.datasync(), this.gens.datasync()]);
  }

  async flush(): Promise<void> {
    this.live();
    try { await this.sync(); } catch (e) { throw ioError(this.id, 'flush', e); }
  }

  private async readGens(firstUnit: number, count: number): Promise<number[]> {
    const buf = Buffer.alloc(count * GEN_BYTES);
    await readAtZeroFilled(this.gens, buf, firstUnit * GEN_BYTES);
    const out: number[] = [];
    for (let i = 0; i < count; i++) out.push(buf.readUInt32LE(i * GEN_BYTES));
    return out;
  }

  async generations(firstUnit: number, count: number): Promise<number[]> {
    checkGenerationRange(this.id, this.units, firstUnit, count);
    this.live();
    try { return await this.readGens(firstUnit, count); } catch (e) { throw ioError(this.id, 'generations', e); }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.allSettled([this.data.close(), this.gens.close()]);
  }
}
