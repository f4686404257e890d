/**
 * The checkpointed per-sector durable versions of a sealed volume (seal-versions.ts), one 8-byte
 * slot per member sector, written in place: a checkpoint writes the pages its log entries
 * touched and syncs. A page torn by a crash holds old and new slots (each 8-byte slot is written
 * whole, and an old slot is never newer than the new one); the version log still holds every
 * change since the last finished checkpoint, and replaying it takes the larger version per
 * sector, so the table is exact again after replay.
 *
 * On storage ('versions.table'): a 4096-byte header 'TVT1' ‖ members (u8) ‖ zero (3) ‖ sectors
 * per member (f64 LE) ‖ zeroes, then per member its sectors' versions (f64 LE; 0 = none durable),
 * member 0 first. The file is sparse: sectors never written take no space.
 */
import { constants, type PathLike } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { endianness } from 'node:os';
import { badInput, corrupt, TesseraError } from '../../errors.js';
import { readAtZeroFilled, syncDirectory, writeAt } from '../../disk-io.js';

/** Slots per page of the table: a checkpoint writes whole pages. */
export const TABLE_PAGE_SECTORS = 512;
export const TABLE_HEADER_BYTES = 4096;
/** Bytes a load reads at once. */
const LOAD_CHUNK_BYTES = 4 << 20;
const MAGIC = Buffer.from('TVT1');

export interface VersionTableStorage {
  /** The members' tables as last written; a table never written reads as zeroes. */
  load(members: number, sectorsPerMember: number): Promise<Float64Array[]>;
  /** Writes `values` as the versions of sectors `first..` of `member`; stable after sync(). */
  write(member: number, first: number, values: Float64Array): Promise<void>;
  sync(): Promise<void>;
  close(): Promise<void>;
}

export class MemoryVersionTable implements VersionTableStorage {
  private tables: Float64Array[] | null = null;
  writes = 0;
  syncs = 0;
  async load(members: number, sectorsPerMember: number): Promise<Float64Array[]> {
    this.tables ??= Array.from({ length: members }, () => new Float64Array(sectorsPerMember));
    if (this.tables.length !== members || this.tables[0]?.length !== sectorsPerMember) throw corrupt('version table has another shape than the volume');
    return this.tables.map((t) => t.slice());
  }
  async write(member: number, first: number, values: Float64Array): Promise<void> {
    const t = this.tables?.[member];
    if (t === undefined || first + values.length > t.length) throw badInput(`version table write ${first}+${values.length} of member ${member} is outside the table`);
    t.set(values, first);
    this.writes++;
  }
  async sync(): Promise<void> { this.syncs++; }
  async close(): Promise<void> {}
  /** The slots as stored (tests). */
  stored(member: number): Float64Array | undefined { return this.tables?.[member]; }
}

export class FileVersionTable implements VersionTableStorage {
  private fh: FileHandle | null = null;
  private sectorsPerMember = 0;

  constructor(readonly path: PathLike & string) {
    // The slots are the Float64Arrays' own bytes.
    if (endianness() !== 'LE') throw new TesseraError('INTERNAL', 'sealed volume version tables are stored little-endian; this machine is big-endian');
  }

  async load(members: number, sectorsPerMember: number): Promise<Float64Array[]> {
    const fh = await open(this.path, constants.O_RDWR | constants.O_CREAT, 0o600);
    try {
      const { size } = await fh.stat();
      const head = Buffer.alloc(TABLE_HEADER_BYTES);
      if (size === 0) {
        MAGIC.copy(head, 0);
        head.writeUInt8(members, 4);
        head.writeDoubleLE(sectorsPerMember, 8);
        await writeAt(fh, head, 0);
        await fh.truncate(TABLE_HEADER_BYTES + members * sectorsPerMember * 8);
        await fh.sync();
        await syncDirectory(dirname(this.path));
      } else {
        await readAtZeroFilled(fh, head, 0);
        if (!head.subarray(0, 4).equals(MAGIC)) throw corrupt(`version table ${this.path} has no valid header; move 'versions.log' and 'versions.table' out of the volume's state folder to open it with rollback checks starting afresh`);
        const m = head.readUInt8(4);
        const spm = head.readDoubleLE(8);
        if (m !== members || spm !== sectorsPerMember) throw corrupt(`version table ${this.path} is for ${m} members of ${spm} sectors, the volume has ${members} of ${sectorsPerMember}`);
      }
      const out: Float64Array[] = [];
      for (let j = 0; j < members; j++) {
        const t = new Float64Array(sectorsPerMember);
        const bytes = Buffer.from(t.buffer);
        const base = TABLE_HEADER_BYTES + j * sectorsPerMember * 8;
        for (let at = 0; at < bytes.length; at += LOAD_CHUNK_BYTES) {
          await readAtZeroFilled(fh, bytes.subarray(at, Math.min(bytes.length, at + LOAD_CHUNK_BYTES)), base + at);
        }
        out.push(t);
      }
      this.fh = fh;
      this.sectorsPerMember = sectorsPerMember;
      return out;
    } catch (e) {
      await fh.close().catch(() => {});
      throw e;
    }
  }

  private handle(): FileHandle {
    if (this.fh === null) throw new TesseraError('INTERNAL', `version table ${this.path} written before it was loaded`);
    return this.fh;
  }

  async write(member: number, first: number, values: Float64Array): Promise<void> {
    const fh = this.handle();
    if (first + values.length > this.sectorsPerMember) throw badInput(`version table write ${first}+${values.length} is past ${this.sectorsPerMember} sectors`);
    // A copy: the caller's table keeps changing while the write is under way.
    const bytes = Buffer.from(new Float64Array(values).buffer);
    await writeAt(fh, bytes, TABLE_HEADER_BYTES + (member * this.sectorsPerMember + first) * 8);
  }

  async sync(): Promise<void> { await this.handle().datasync(); }

  async close(): Promise<void> {
    const fh = this.fh;
    this.fh = null;
    await fh?.close().catch(() => {});
  }
}
