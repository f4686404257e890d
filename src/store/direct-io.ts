/**
 * Segment I/O with O_DIRECT: appends, and reads of large records, go between the process's memory
 * and the disk without a page-cache copy.
 *
 * Why: a buffered write copies every byte into page-cache pages the kernel takes from free memory,
 * and a segment only grows, so each put lands in pages nobody touched for a while. On a virtual
 * machine whose host reclaims free guest memory (virtio-balloon free page reporting) the first
 * touch of such a page is a host fault: writing 3 GiB of fresh file here cost 4.7 s of system
 * time, the same 3 GiB again into pages just freed 0.5 s. That copy was a quarter of all the CPU
 * a 1 GiB put took over three nodes (`perf`, `copy_folio_from_iter_atomic`). A direct write DMAs
 * from one reused, already-resident buffer instead; the fdatasync that acknowledges it stays.
 *
 * O_DIRECT wants the file offset, the length and the memory aligned. The segment format is
 * unchanged (records stay back to back): each batch is copied into an aligned arena behind the
 * bytes of the partial block it continues (kept from the previous batch, identical to what is on
 * disk), padded with zeroes to the next block, and written from the block's start. Rewriting
 * those earlier bytes with themselves cannot harm them, whichever sectors a crash lets through;
 * the zero padding past the last record is what a scan at open reads as the end of the log.
 *
 * Where O_DIRECT is refused (tmpfs, some network filesystems) or the arena's memory is not aligned,
 * `DirectAppender.open` or the first write says so and the store writes through the page cache.
 */
import { constants } from 'node:fs';
import { type FileHandle, open } from 'node:fs/promises';
import { TesseraError } from '../errors.js';
import { errnoOf, readAt, writeAt } from '../disk-io.js';

/** Alignment of offsets, lengths and memory: the filesystem block, a multiple of every sector size in use. */
export const DIRECT_ALIGN = 4096;
const WASM_PAGE_BYTES = 64 << 10;

/** Where a batch of `bytes` appended at `start` is written: from `from`, `length` bytes, after `lead` bytes of the block it continues. */
export interface DirectPlan {
  from: number;
  lead: number;
  length: number;
}

/** Pure: the aligned write that appends `bytes` at `start`. */
export function planDirectWrite(start: number, bytes: number): DirectPlan {
  if (!Number.isSafeInteger(start) || start < 0 || !Number.isSafeInteger(bytes) || bytes < 0) {
    throw new TesseraError('INTERNAL', `direct append at ${start} of ${bytes} bytes`);
  }
  const from = start - (start % DIRECT_ALIGN);
  const lead = start - from;
  const length = Math.ceil((lead + bytes) / DIRECT_ALIGN) * DIRECT_ALIGN;
  return { from, lead, length };
}

/**
 * Memory for direct writes: WebAssembly memory is mapped by pages, so its start is page-aligned,
 * which Node's Buffer allocations are not. Touched only as far as the largest batch written.
 */
export function alignedArena(bytes: number): Buffer {
  const pages = Math.ceil(bytes / WASM_PAGE_BYTES);
  const mem = new WebAssembly.Memory({ initial: pages, maximum: pages });
  return Buffer.from(mem.buffer);
}

/** The aligned read covering `len` bytes at `off`: from `from`, `length` bytes, the wanted ones `lead` bytes in. */
export function planDirectRead(off: number, len: number): DirectPlan {
  return planDirectWrite(off, len);
}

/**
 * Reads of large records, so that a chunk written directly is read back without filling the page
 * cache with fresh pages (the same host faults the appends avoid): the covering aligned range is
 * read into one of a few aligned slabs and the record copied out. When all slabs are busy, or a
 * record is larger than a slab, the caller reads through the page cache instead.
 */
export class DirectReader {
  readonly #slab: number;
  readonly #free: Buffer[] = [];
  #arena: Buffer | undefined;

  /** `slabs` buffers of `slabBytes` each, carved from one aligned arena on first use. */
  constructor(
    readonly slabBytes: number,
    readonly slabs: number,
  ) {
    if (slabBytes % DIRECT_ALIGN !== 0) throw new TesseraError('INTERNAL', `direct read slab of ${slabBytes} bytes is not block-aligned`);
    this.#slab = slabBytes;
  }

  #take(): Buffer | undefined {
    if (this.#arena === undefined) {
      this.#arena = alignedArena(this.#slab * this.slabs);
      for (let i = 0; i < this.slabs; i++) this.#free.push(this.#arena.subarray(i * this.#slab, (i + 1) * this.#slab));
    }
    return this.#free.pop();
  }

  /**
   * Reads `out.length` bytes at `off` of the file behind `fh` (opened O_DIRECT) into `out`;
   * returns the bytes read (fewer at the end of the file), or undefined when no slab was free or
   * the record does not fit one, so the caller reads through the page cache.
   */
  async read(fh: FileHandle, out: Buffer, off: number): Promise<number | undefined> {
    const plan = planDirectRead(off, out.length);
    if (plan.length > this.#slab) return undefined;
    const slab = this.#take();
    if (slab === undefined) return undefined;
    try {
      const got = await readAt(fh, slab.subarray(0, plan.length), plan.from);
      const n = Math.max(0, Math.min(out.length, got - plan.lead));
      slab.copy(out, 0, plan.lead, plan.lead + n);
      return n;
    } finally {
      this.#free.push(slab);
    }
  }
}

/** Opens `path` read-only with O_DIRECT; undefined where the filesystem refuses it. */
export async function openDirectForRead(path: string): Promise<FileHandle | undefined> {
  try {
    return await open(path, constants.O_RDONLY | constants.O_DIRECT);
  } catch (e) {
    if (errnoOf(e) === 'EINVAL' || errnoOf(e) === 'EOPNOTSUPP') return undefined;
    throw e;
  }
}

/** Appends batches to one segment file through a second, O_DIRECT handle. */
export class DirectAppender {
  readonly #fh: FileHandle;
  readonly #arena: Buffer;
  /** The bytes of the partial block at the current end of the file, as they are on disk. */
  #tail: Buffer;
  #end: number;

  private constructor(fh: FileHandle, arena: Buffer, tail: Buffer, end: number) {
    this.#fh = fh;
    this.#arena = arena;
    this.#tail = tail;
    this.#end = end;
  }

  /**
   * Opens `path` for direct appends at `end` (the end of its last record); `buffered` is the
   * segment's ordinary handle, used to read the partial block there. Undefined when the
   * filesystem refuses O_DIRECT.
   */
  static async open(path: string, buffered: FileHandle, end: number, arena: Buffer): Promise<DirectAppender | undefined> {
    let fh: FileHandle;
    try {
      fh = await open(path, constants.O_WRONLY | constants.O_DIRECT);
    } catch (e) {
      if (errnoOf(e) === 'EINVAL' || errnoOf(e) === 'EOPNOTSUPP') return undefined;
      throw e;
    }
    try {
      const tail = Buffer.alloc(end % DIRECT_ALIGN);
      if ((await readAt(buffered, tail, end - tail.length)) !== tail.length) {
        throw new TesseraError('IO', `segment ${path} ends before its last record (${end} bytes expected)`);
      }
      return new DirectAppender(fh, arena, tail, end);
    } catch (e) {
      await fh.close().catch(() => undefined);
      throw e;
    }
  }

  /** True when a batch of `bytes` fits the arena with its lead and padding. */
  fits(bytes: number): boolean {
    return planDirectWrite(this.#end, bytes).length <= this.#arena.length;
  }

  /**
   * Writes `parts` (total `bytes`) at `start`, the end of the last record. Throws `EINVAL` from
   * the kernel when the filesystem turns out not to take direct writes after all; nothing is
   * written then. After any failure the end stays where it was, as the caller truncates the file
   * back to it (the partial block before it holds the same bytes as before).
   */
  async append(start: number, parts: readonly Buffer[], bytes: number): Promise<void> {
    if (start !== this.#end) throw new TesseraError('INTERNAL', `direct append at ${start}, the segment ends at ${this.#end}`);
    const plan = planDirectWrite(this.#end, bytes);
    const a = this.#arena;
    this.#tail.copy(a, 0);
    let at = plan.lead;
    for (const p of parts) at += p.copy(a, at);
    a.fill(0, at, plan.length);
    await writeAt(this.#fh, a.subarray(0, plan.length), plan.from);
    const end = this.#end + bytes;
    const tailStart = end - (end % DIRECT_ALIGN);
    this.#tail = Buffer.from(a.subarray(tailStart - plan.from, end - plan.from));
    this.#end = end;
  }

  async close(): Promise<void> {
    await this.#fh.close();
  }
}
