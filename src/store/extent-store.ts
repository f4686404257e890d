/**
 * Extent files for block volumes (DESIGN §6): per volume, one sparse file of `units × unitSize`
 * bytes with positional I/O, and a side file of generation numbers, one u32 (little-endian) per
 * unit, which the volume layer uses to fence stale writers and to resync only what changed.
 *
 * Generations are cached in memory by pages and written through only when a write changes one
 * (a new epoch), so an ordinary write is one pwrite: each thread-pool round trip (a thread
 * wake-up and a callback) cost more than the 4 KiB write itself. Syncs skip a file with nothing
 * written since its last fdatasync.
 *
 * Layout under the root: `<name>/extent`, `<name>/gens`, `<name>/volume.json`. A volume is
 * created in a dot-named scratch directory and renamed into place, and deleted by renaming it
 * aside first, so a crash never leaves a half-made volume under its real name.
 */
import { readSync, readvSync, writeSync, writevSync } from 'node:fs';
import { resourceUsage } from 'node:process';
import { open, mkdir, readdir, readFile, rename, rm, writeFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { TesseraError, badInput, notFound, tooLarge } from '../errors.js';
import { MAX_IO_ROUNDS, pathExists, readAtZeroFilled, writeAt, writevAt } from '../disk-io.js';
import { type Logger, silentLogger } from '../log.js';
import { fsError, syncDirectory } from './fs-util.js';

export const MIN_EXTENT_UNIT_BYTES = 4 << 10;
/** A 4 MiB stripe unit sealed: 4 MiB of sectors plus their 64-byte trailers (block/volume/seal.ts). */
export const MAX_EXTENT_UNIT_BYTES = (4 << 20) + (64 << 10);
/** 2^26 units keep the generation file at 256 MiB at most. */
export const MAX_EXTENT_UNITS = 1 << 26;
/** A volume member holds at most 1 PiB (2^50 bytes), matching the volume layer's members. */
export const MAX_EXTENT_BYTES = 2 ** 50;
/** One read or write call moves at most this much (an NBD request's usual ceiling). */
export const MAX_EXTENT_IO_BYTES = 32 << 20;
/** Volumes held by one node; each keeps two file descriptors open. */
export const MAX_EXTENT_VOLUMES = 256;
/** Generations are u32 on disk and on the wire. */
export const MAX_EXTENT_GENERATION = 0xffff_ffff;
/** One generations() call answers for at most this many units. */
export const MAX_GENERATIONS_PER_READ = 65_536;
/** Generations are cached in pages of this many units (16 KiB each), each read from disk once. */
export const GEN_PAGE_UNITS = 4096;
/** Cached generation pages per store: 64 MiB of cache covers 2^26 units (4 TiB of 64 KiB units). */
export const MAX_CACHED_GEN_PAGES = 4096;
/**
 * Data writes of whole pages up to this size are made synchronously: they only copy into the page
 * cache (a whole page needs no read first), which takes microseconds, while a thread-pool write
 * costs a thread wake-up, a context switch and a callback, several times the copy on a loaded
 * machine. Larger or unaligned writes and syncs stay async; reads follow SYNC_READ_MAX_BYTES.
 * 260 KiB is four sealed 64 KiB stripe units (65 KiB each: records of 4160 bytes per 4 KiB
 * sector), so a member's batch of up to four units stays in line as four plain units did; at
 * 256 KiB a batch of four sealed units went through the thread pool (0.31–0.37 ms of CPU per MiB
 * written, in process, against 0.10–0.15 in line). Reads take the same bound, for the same batches.
 */
export const SYNC_WRITE_MAX_BYTES = 260 << 10;
/**
 * Data reads up to this size are made synchronously while they find their pages in the page
 * cache, for the same reason as writes (fio 4K random reads of a raid0 volume over four nodes,
 * three A/B pairs: 5.4–7.6k IOPS through the thread pool, 9.6–11.0k in line; a member's CPU per
 * read 56 → 27 µs; sequential reads unchanged, the master limits them). A read can also wait for
 * the disk, blocking the event loop meanwhile: one during which the process's count of block
 * reads (getrusage's ru_inblock) rose sends that volume's reads to the thread pool for
 * COLD_READS_POOLED_MS, so a volume whose data is not cached blocks the loop for at most one disk
 * read per interval.
 */
export const SYNC_READ_MAX_BYTES = 260 << 10;
export const COLD_READS_POOLED_MS = 1000;
const PAGE_BYTES = 4096;
/** volume.json is a few dozen bytes; anything bigger is not ours. */
const MAX_VOLUME_RECORD_BYTES = 4096;
const GEN_BYTES = 4;
const VOLUME_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

export interface ExtentInfo {
  name: string;
  units: number;
  unitSize: number;
  /** units × unitSize */
  size: number;
}

export interface ExtentWriteOptions {
  /**
   * Recorded for every unit the write touches, after the data write completes. A write whose
   * generation is lower than a touched unit's is refused with CONFLICT before any byte changes.
   */
  generation?: number;
  /** Resolve only once data and generations are on stable storage. */
  durable?: boolean;
}

/** A file with the bookkeeping that lets sync skip an fdatasync nothing needs. */
interface SyncedFile {
  fh: FileHandle;
  /** Some write completed since the last fdatasync began. */
  dirty: boolean;
  /** The latest fdatasync in progress: it covers every write that completed before it began. */
  syncing: Promise<void> | null;
}

interface Volume {
  info: ExtentInfo;
  dir: string;
  data: SyncedFile;
  gens: SyncedFile;
  /** Cached generation pages by page index; the map's order is least recently loaded first. */
  genPages: Map<number, Uint32Array>;
  genLoads: Map<number, Promise<Uint32Array>>;
  /** Unit ranges held by writes in flight; overlapping writes wait, so check-write-stamp is atomic per unit. */
  locked: Array<{ first: number; last: number; done: Promise<void> }>;
  inflight: Set<Promise<unknown>>;
  /** Until this time (the store's clock) reads go through the thread pool: a recent one went to the disk. */
  pooledReadsUntil: number;
}

export interface ExtentStoreOptions {
  log?: Logger;
  now?: () => number;
  diskReads?: () => number;
}

/** How data reads were made: in line or through the thread pool. */
export interface ExtentReadCounters {
  inLine: number;
  pooled: number;
  /** In-line reads during which the process read from a block device. */
  fromDisk: number;
}

function checkName(name: string): void {
  if (typeof name !== 'string' || !VOLUME_NAME.test(name)) {
    throw badInput(`volume name '${String(name)}' must be 1-128 characters of letters, digits, '.', '_' or '-', not starting with a punctuation mark`);
  }
}

function checkGeometry(units: number, unitSize: number): void {
  if (!Number.isSafeInteger(unitSize) || unitSize < MIN_EXTENT_UNIT_BYTES || unitSize > MAX_EXTENT_UNIT_BYTES || unitSize % 512 !== 0) {
    throw badInput(`unit size ${unitSize} must be a multiple of 512 between ${MIN_EXTENT_UNIT_BYTES} and ${MAX_EXTENT_UNIT_BYTES} bytes`);
  }
  if (!Number.isSafeInteger(units) || units < 1) throw badInput(`unit count ${units} must be a positive integer`);
  if (units > MAX_EXTENT_UNITS) throw tooLarge(`${units} units exceeds the ${MAX_EXTENT_UNITS}-unit limit; use larger units`);
  if (units * unitSize > MAX_EXTENT_BYTES) throw tooLarge(`volume of ${units * unitSize} bytes exceeds the ${MAX_EXTENT_BYTES}-byte limit`);
}

function checkGeneration(generation: number | undefined): void {
  if (generation === undefined) return;
  if (!Number.isInteger(generation) || generation < 0 || generation > MAX_EXTENT_GENERATION) {
    throw badInput(`generation ${generation} is outside 0..${MAX_EXTENT_GENERATION}`);
  }
}

/** Buffers left after the first `n` bytes of `bufs`. */
function skipBytes(bufs: Buffer[], n: number): Buffer[] {
  let i = 0;
  while (i < bufs.length && n >= (bufs[i] as Buffer).length) n -= (bufs[i++] as Buffer).length;
  const rest = bufs.slice(i);
  if (n > 0 && rest.length > 0) rest[0] = (rest[0] as Buffer).subarray(n);
  return rest;
}

/** One pwritev for contiguous buffers (one thread-pool round trip instead of one per buffer). */
async function pwritevFull(fh: FileHandle, bufs: Buffer[], pos: number): Promise<void> {
  const left = totalLength(bufs);
  if (left <= SYNC_WRITE_MAX_BYTES && pos % PAGE_BYTES === 0 && left % PAGE_BYTES === 0) return pwritevSync(fh.fd, bufs, pos, left);
  if (bufs.length === 1) return writeAt(fh, bufs[0] as Buffer, pos);
  return writevAt(fh, bufs, pos);
}

function pwritevSync(fd: number, bufs: Buffer[], pos: number, left: number): void {
  let rest = bufs;
  for (let round = 0; left > 0; round++) {
    if (round >= MAX_IO_ROUNDS) throw new TesseraError('IO', `write made no progress after ${MAX_IO_ROUNDS} rounds`);
    const n = rest.length === 1 ? writeSync(fd, rest[0] as Buffer, 0, left, pos) : writevSync(fd, rest, pos);
    pos += n;
    left -= n;
    if (left > 0) rest = skipBytes(rest, n);
  }
}

/** One preadv into contiguous buffers; past the end of the file reads as zeroes. */
async function preadvFull(fh: FileHandle, bufs: Buffer[], pos: number): Promise<void> {
  if (bufs.length === 1) return readAtZeroFilled(fh, bufs[0] as Buffer, pos);
  let rest = bufs;
  let left = totalLength(bufs);
  for (let round = 0; left > 0; round++) {
    if (round >= MAX_IO_ROUNDS) throw new TesseraError('IO', `read made no progress after ${MAX_IO_ROUNDS} rounds`);
    const { bytesRead } = await fh.readv(rest, pos);
    if (bytesRead === 0) {
      for (const b of rest) b.fill(0);
      return;
    }
    pos += bytesRead;
    left -= bytesRead;
    if (left > 0) rest = skipBytes(rest, bytesRead);
  }
}

function preadvSync(fd: number, bufs: Buffer[], pos: number): void {
  let rest = bufs;
  let left = totalLength(bufs);
  for (let round = 0; left > 0; round++) {
    if (round >= MAX_IO_ROUNDS) throw new TesseraError('IO', `read made no progress after ${MAX_IO_ROUNDS} rounds`);
    const n = rest.length === 1 ? readSync(fd, rest[0] as Buffer, 0, left, pos) : readvSync(fd, rest, pos);
    // Past the end of the file reads as zeroes, as on the thread pool.
    if (n === 0) {
      for (const b of rest) b.fill(0);
      return;
    }
    pos += n;
    left -= n;
    if (left > 0) rest = skipBytes(rest, n);
  }
}

function totalLength(bufs: Buffer[]): number {
  let n = 0;
  for (const b of bufs) n += b.length;
  return n;
}

function syncedFile(fh: FileHandle): SyncedFile {
  return { fh, dirty: false, syncing: null };
}

/** fdatasync unless nothing was written since the last one began (then waits for that one). */
async function syncFile(f: SyncedFile): Promise<void> {
  if (!f.dirty) {
    if (f.syncing !== null) await f.syncing;
    return;
  }
  f.dirty = false;
  const p = f.fh.datasync().catch((e: unknown) => {
    f.dirty = true;
    throw e;
  });
  f.syncing = p;
  try {
    await p;
  } finally {
    if (f.syncing === p) f.syncing = null;
  }
}

function parseRecord(text: string, name: string): ExtentInfo {
  const rec: unknown = JSON.parse(text);
  if (typeof rec !== 'object' || rec === null) throw new Error('not an object');
  const { units, unitSize } = rec as { units?: unknown; unitSize?: unknown };
  if (typeof units !== 'number' || typeof unitSize !== 'number') throw new Error('units and unitSize must be numbers');
  checkGeometry(units, unitSize);
  return { name, units, unitSize, size: units * unitSize };
}

export class ExtentStore {
  readonly root: string;
  readonly #volumes = new Map<string, Volume>();
  /** Names being created or deleted, so two calls cannot race on one directory. */
  readonly #busy = new Set<string>();
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #diskReads: () => number;
  /** The block-input count after the last in-line read of this event-loop turn (see #readData). */
  #turnDiskReads: number | undefined;
  #cachedGenPages = 0;
  #closed = false;
  readonly readCounters: ExtentReadCounters = { inLine: 0, pooled: 0, fromDisk: 0 };

  private constructor(root: string, log: Logger, now: () => number, diskReads: () => number) {
    this.root = root;
    this.#log = log;
    this.#now = now;
    this.#diskReads = diskReads;
  }

  /**
   * Opens (creating) the store under `root`, clears half-made or half-deleted volumes, opens the
   * rest. `now` (ms) and `diskReads` (the process's block-input count) decide how data is read
   * (see SYNC_READ_MAX_BYTES); tests pass their own.
   */
  static async open(root: string, opts: ExtentStoreOptions = {}): Promise<ExtentStore> {
    const store = new ExtentStore(root, opts.log ?? silentLogger, opts.now ?? (() => performance.now()), opts.diskReads ?? (() => resourceUsage().fsRead));
    try {
      await mkdir(root, { recursive: true });
      for (const entry of await readdir(root, { withFileTypes: true })) {
        if (entry.name.startsWith('.')) {
          await rm(join(root, entry.name), { recursive: true, force: true });
          continue;
        }
        if (!entry.isDirectory() || !VOLUME_NAME.test(entry.name)) continue;
        if (store.#volumes.size >= MAX_EXTENT_VOLUMES) {
          throw tooLarge(`more than ${MAX_EXTENT_VOLUMES} volumes under ${root}`);
        }
        await store.#load(entry.name);
      }
    } catch (e) {
      await store.close();
      throw fsError(e, `opening extent store ${root}`);
    }
    return store;
  }

  async #load(name: string): Promise<void> {
    const dir = join(this.root, name);
    let info: ExtentInfo;
    try {
      const raw = await readFile(join(dir, 'volume.json'));
      if (raw.length > MAX_VOLUME_RECORD_BYTES) throw new Error(`record of ${raw.length} bytes is too long`);
      info = parseRecord(raw.toString('utf8'), name);
    } catch (e) {
      // One damaged volume must not keep the node from starting; it stays on disk for inspection.
      this.#log.error({ volume: name, err: e }, 'skipping volume with an unreadable record');
      return;
    }
    const data = await open(join(dir, 'extent'), 'r+');
    let gens: FileHandle;
    try {
      gens = await open(join(dir, 'gens'), 'r+');
    } catch (e) {
      await data.close();
      throw e;
    }
    this.#volumes.set(name, { info, dir, data: syncedFile(data), gens: syncedFile(gens), genPages: new Map(), genLoads: new Map(), locked: [], inflight: new Set(), pooledReadsUntil: 0 });
  }

  /** Creates an all-zero (sparse) volume. CONFLICT if the name is taken. */
  async create(name: string, geometry: { units: number; unitSize: number }): Promise<ExtentInfo> {
    this.#checkOpen();
    checkName(name);
    checkGeometry(geometry.units, geometry.unitSize);
    if (this.#volumes.has(name) || this.#busy.has(name)) throw new TesseraError('CONFLICT', `volume '${name}' already exists`);
    if (this.#volumes.size + this.#busy.size >= MAX_EXTENT_VOLUMES) {
      throw tooLarge(`this node already holds ${MAX_EXTENT_VOLUMES} volumes; delete one first`);
    }
    this.#busy.add(name);
    const scratch = join(this.root, `.new-${name}-${randomBytes(4).toString('hex')}`);
    const dir = join(this.root, name);
    try {
      if (await pathExists(dir)) throw new TesseraError('CONFLICT', `volume directory ${dir} already exists (an unreadable volume?); remove it first`);
      await mkdir(scratch);
      const info: ExtentInfo = { name, units: geometry.units, unitSize: geometry.unitSize, size: geometry.units * geometry.unitSize };
      for (const [file, size] of [['extent', info.size], ['gens', info.units * GEN_BYTES]] as const) {
        const fh = await open(join(scratch, file), 'wx', 0o600);
        try {
          await fh.truncate(size);
          await fh.sync();
        } finally {
          await fh.close();
        }
      }
      const rec = join(scratch, 'volume.json');
      await writeFile(rec, JSON.stringify({ version: 1, units: info.units, unitSize: info.unitSize }) + '\n');
      const fh = await open(rec, 'r');
      try {
        await fh.sync();
      } finally {
        await fh.close();
      }
      await syncDirectory(scratch);
      await rename(scratch, dir);
      await syncDirectory(this.root);
      await this.#load(name);
      return { ...info };
    } catch (e) {
      await rm(scratch, { recursive: true, force: true }).catch(() => undefined);
      throw fsError(e, `creating volume '${name}'`);
    } finally {
      this.#busy.delete(name);
    }
  }

  /** Removes a volume and its data once its I/O in flight has settled. False if there was none. */
  async delete(name: string): Promise<boolean> {
    this.#checkOpen();
    checkName(name);
    const v = this.#volumes.get(name);
    if (v === undefined) return false;
    this.#volumes.delete(name);
    this.#busy.add(name);
    try {
      while (v.inflight.size > 0) await Promise.allSettled([...v.inflight]);
      this.#dropGenPages(v);
      await Promise.allSettled([v.data.fh.close(), v.gens.fh.close()]);
      const aside = join(this.root, `.del-${name}-${randomBytes(4).toString('hex')}`);
      await rename(v.dir, aside);
      await syncDirectory(this.root);
      await rm(aside, { recursive: true, force: true });
      return true;
    } catch (e) {
      throw fsError(e, `deleting volume '${name}'`);
    } finally {
      this.#busy.delete(name);
    }
  }

  list(): ExtentInfo[] {
    this.#checkOpen();
    return [...this.#volumes.values()].map((v) => ({ ...v.info })).sort((a, b) => a.name.localeCompare(b.name));
  }

  info(name: string): ExtentInfo {
    return { ...this.#volume(name).info };
  }

  async read(name: string, offset: number, length: number): Promise<Buffer> {
    const v = this.#volume(name);
    this.#checkRange(v, offset, length);
    const buf = Buffer.allocUnsafe(length);
    await this.#readData(v, [buf], offset);
    return buf;
  }

  /**
   * Reads into caller-owned buffers (no allocation per call): `buf.length` bytes at `offset`, or
   * for a list, consecutive ranges starting at `offset` in one preadv.
   */
  async readInto(name: string, offset: number, buf: Buffer | Buffer[]): Promise<void> {
    const v = this.#volume(name);
    const bufs = Buffer.isBuffer(buf) ? [buf] : buf;
    this.#checkRange(v, offset, totalLength(bufs));
    await this.#readData(v, bufs, offset);
  }

  /** In line while the volume's reads find the page cache (see SYNC_READ_MAX_BYTES), else on the thread pool. */
  async #readData(v: Volume, bufs: Buffer[], offset: number): Promise<void> {
    if (totalLength(bufs) > SYNC_READ_MAX_BYTES || this.#now() < v.pooledReadsUntil) {
      this.readCounters.pooled++;
      await this.#track(v, 'read', () => preadvFull(v.data.fh, bufs, offset));
      return;
    }
    const before = this.#diskReadsBefore();
    try {
      preadvSync(v.data.fh.fd, bufs, offset);
    } catch (e) {
      this.#turnDiskReads = undefined;
      throw fsError(e, `read on volume '${v.info.name}'`);
    }
    this.readCounters.inLine++;
    // Timing cannot tell a disk read from a preempted copy on a busy machine; the block-input count can.
    if (this.#diskReadsAfter() !== before) {
      this.readCounters.fromDisk++;
      v.pooledReadsUntil = this.#now() + COLD_READS_POOLED_MS;
    }
  }

  /**
   * In line when the write is small and either covers whole pages or the volume's pages look
   * cached; else on the thread pool. Sealed volumes write 4160-byte records, so nearly every write
   * covers part of a page: the kernel then needs that page in cache, and reads it first if it is
   * not. The block-input count tells when it did, and sends the volume's partial writes (and
   * reads) to the thread pool for COLD_READS_POOLED_MS, as reads do. In line, a 4 KiB record costs
   * a member about 5 µs; through the thread pool about 20.
   */
  async #writeData(v: Volume, bufs: Buffer[], offset: number, length: number): Promise<void> {
    const whole = offset % PAGE_BYTES === 0 && length % PAGE_BYTES === 0;
    if (length > SYNC_WRITE_MAX_BYTES || (!whole && this.#now() < v.pooledReadsUntil)) return pwritevFull(v.data.fh, bufs, offset);
    const before = whole ? 0 : this.#diskReadsBefore();
    try {
      pwritevSync(v.data.fh.fd, bufs, offset, length);
    } catch (e) {
      this.#turnDiskReads = undefined;
      throw fsError(e, `write on volume '${v.info.name}'`);
    }
    if (!whole && this.#diskReadsAfter() !== before) v.pooledReadsUntil = this.#now() + COLD_READS_POOLED_MS;
  }

  /**
   * The block-input count before an in-line read or partial write. Reading it builds a 16-field
   * object per call (a tenth of a member's busy time under 4K random writes when each write looked
   * twice), so the in-line calls of one turn share their looks: each opens with the previous one's
   * closing count. One on the thread pool landing in between only makes the check err towards
   * the pool.
   */
  #diskReadsBefore(): number {
    const before = this.#turnDiskReads;
    if (before !== undefined) return before;
    setImmediate(() => { this.#turnDiskReads = undefined; });
    return this.#diskReads();
  }

  /** The count after an in-line call, kept as the next call's opening one. */
  #diskReadsAfter(): number {
    this.#turnDiskReads = this.#diskReads();
    return this.#turnDiskReads;
  }

  /** Writes `data` at `offset`; a list of buffers is written back to back in one pwritev. */
  async write(name: string, offset: number, data: Buffer | Buffer[], opts: ExtentWriteOptions = {}): Promise<void> {
    const v = this.#volume(name);
    const bufs = Buffer.isBuffer(data) ? [data] : data;
    const length = totalLength(bufs);
    this.#checkRange(v, offset, length);
    checkGeneration(opts.generation);
    if (length === 0) {
      if (opts.durable) await this.sync(name);
      return;
    }
    const first = Math.floor(offset / v.info.unitSize);
    const last = Math.floor((offset + length - 1) / v.info.unitSize);
    await this.#track(v, 'write', async () => {
      const release = await lockUnits(v, first, last);
      try {
        const gen = opts.generation;
        let stamp: Buffer | undefined;
        if (gen !== undefined) {
          const have = await this.#genRange(v, first, last - first + 1);
          for (let i = 0; i < have.length; i++) {
            const g = have[i] as number;
            if (g > gen) {
              throw new TesseraError('CONFLICT', `write of generation ${gen} to unit ${first + i} of volume '${name}' that holds generation ${g}; a newer writer owns this volume`, {
                unit: first + i,
                have: g,
                got: gen,
              });
            }
            if (g !== gen && stamp === undefined) stamp = Buffer.allocUnsafe(have.length * GEN_BYTES);
          }
          if (stamp !== undefined) for (let i = 0; i < have.length; i++) stamp.writeUInt32LE(gen, i * GEN_BYTES);
        }
        await this.#writeData(v, bufs, offset, length);
        v.data.dirty = true;
        // Generation after data: a crash in between leaves the unit looking older, which only
        // makes a resync copy more than it strictly needed, never less.
        if (stamp !== undefined) {
          await writeAt(v.gens.fh, stamp, first * GEN_BYTES);
          v.gens.dirty = true;
          await this.#setGens(v, first, last - first + 1, gen as number);
        }
        if (opts.durable) await Promise.all([syncFile(v.data), syncFile(v.gens)]);
      } finally {
        release();
      }
    });
  }

  /** Generations of units firstUnit .. firstUnit+count-1 (0 for never stamped). */
  async generations(name: string, firstUnit: number, count: number): Promise<number[]> {
    const v = this.#volume(name);
    if (!Number.isSafeInteger(firstUnit) || !Number.isSafeInteger(count) || firstUnit < 0 || count < 0) {
      throw badInput(`bad unit range ${firstUnit}+${count}`);
    }
    if (count > MAX_GENERATIONS_PER_READ) throw tooLarge(`${count} generations in one call exceeds ${MAX_GENERATIONS_PER_READ}`);
    if (firstUnit + count > v.info.units) throw badInput(`unit range ${firstUnit}+${count} is past the ${v.info.units} units of volume '${name}'`);
    return this.#track(v, 'generations read', () => this.#genRange(v, firstUnit, count));
  }

  /** fdatasync of the data and generation files: every write that resolved before is durable. */
  async sync(name: string): Promise<void> {
    const v = this.#volume(name);
    await this.#track(v, 'sync', () => Promise.all([syncFile(v.data), syncFile(v.gens)]));
  }

  /** Generations of `count` units from `first`, from the cache (pages missing are read once). */
  async #genRange(v: Volume, first: number, count: number): Promise<number[]> {
    const out = new Array<number>(count);
    let i = 0;
    while (i < count) {
      const unit = first + i;
      const pageNo = Math.floor(unit / GEN_PAGE_UNITS);
      const page = v.genPages.get(pageNo) ?? await this.#loadGenPage(v, pageNo);
      const at = unit - pageNo * GEN_PAGE_UNITS;
      const n = Math.min(count - i, GEN_PAGE_UNITS - at);
      for (let k = 0; k < n; k++) out[i + k] = page[at + k] as number;
      i += n;
    }
    return out;
  }

  /** Records generations just written to disk in the cached pages (a page being loaded gets them too). */
  async #setGens(v: Volume, first: number, count: number, gen: number): Promise<void> {
    let i = 0;
    while (i < count) {
      const unit = first + i;
      const pageNo = Math.floor(unit / GEN_PAGE_UNITS);
      const at = unit - pageNo * GEN_PAGE_UNITS;
      const n = Math.min(count - i, GEN_PAGE_UNITS - at);
      // A load that began before the disk write may hold the old values: patch it once it lands.
      const page = v.genPages.get(pageNo) ?? await v.genLoads.get(pageNo)?.catch(() => undefined);
      if (page !== undefined) page.fill(gen, at, at + n);
      i += n;
    }
  }

  #loadGenPage(v: Volume, pageNo: number): Promise<Uint32Array> {
    const loading = v.genLoads.get(pageNo);
    if (loading !== undefined) return loading;
    const p = (async () => {
      const units = Math.min(GEN_PAGE_UNITS, v.info.units - pageNo * GEN_PAGE_UNITS);
      const buf = Buffer.allocUnsafe(units * GEN_BYTES);
      await readAtZeroFilled(v.gens.fh, buf, pageNo * GEN_PAGE_UNITS * GEN_BYTES);
      const page = new Uint32Array(units);
      for (let k = 0; k < units; k++) page[k] = buf.readUInt32LE(k * GEN_BYTES);
      return page;
    })();
    v.genLoads.set(pageNo, p);
    p.then((page) => {
      if (v.genLoads.get(pageNo) !== p) return;
      v.genLoads.delete(pageNo);
      if (!this.#volumes.has(v.info.name) || this.#volumes.get(v.info.name) !== v) return;
      this.#evictGenPages(v);
      v.genPages.set(pageNo, page);
      this.#cachedGenPages++;
    }, () => {
      if (v.genLoads.get(pageNo) === p) v.genLoads.delete(pageNo);
    });
    return p;
  }

  /** Makes room for one more page, dropping the oldest pages of this volume first, then of others. */
  #evictGenPages(v: Volume): void {
    while (this.#cachedGenPages >= MAX_CACHED_GEN_PAGES) {
      const victim = v.genPages.size > 0 ? v : [...this.#volumes.values()].find((o) => o.genPages.size > 0);
      if (victim === undefined) return;
      const oldest = victim.genPages.keys().next().value as number;
      victim.genPages.delete(oldest);
      this.#cachedGenPages--;
    }
  }

  #dropGenPages(v: Volume): void {
    this.#cachedGenPages -= v.genPages.size;
    v.genPages.clear();
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const volumes = [...this.#volumes.values()];
    this.#volumes.clear();
    for (const v of volumes) {
      while (v.inflight.size > 0) await Promise.allSettled([...v.inflight]);
      this.#dropGenPages(v);
      await Promise.allSettled([v.data.fh.close(), v.gens.fh.close()]);
    }
  }

  #volume(name: string): Volume {
    this.#checkOpen();
    checkName(name);
    const v = this.#volumes.get(name);
    if (v === undefined) throw notFound(`volume '${name}' is not on this node`, { volume: name });
    return v;
  }

  #checkRange(v: Volume, offset: number, length: number): void {
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) {
      throw badInput(`bad range ${offset}+${length} on volume '${v.info.name}'`);
    }
    if (length > MAX_EXTENT_IO_BYTES) throw tooLarge(`${length} bytes in one call exceeds the ${MAX_EXTENT_IO_BYTES}-byte limit; split the request`);
    if (offset + length > v.info.size) throw badInput(`range ${offset}+${length} is past the end of volume '${v.info.name}' at ${v.info.size}`);
  }

  async #track<T>(v: Volume, what: string, fn: () => Promise<T>): Promise<T> {
    const p = fn();
    v.inflight.add(p);
    try {
      return await p;
    } catch (e) {
      throw fsError(e, `${what} on volume '${v.info.name}'`);
    } finally {
      v.inflight.delete(p);
    }
  }

  #checkOpen(): void {
    if (this.#closed) throw new TesseraError('UNAVAILABLE', `extent store ${this.root} is closed`);
  }
}

async function lockUnits(v: Volume, first: number, last: number): Promise<() => void> {
  for (;;) {
    const clash = v.locked.find((l) => l.first <= last && first <= l.last);
    if (clash === undefined) break;
    await clash.done;
  }
  let release!: () => void;
  const entry = { first, last, done: new Promise<void>((r) => (release = r)) };
  v.locked.push(entry);
  return () => {
    v.locked.splice(v.locked.indexOf(entry), 1);
    release();
  };
}

