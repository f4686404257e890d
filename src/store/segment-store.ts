/**
 * Chunk engine on append-only segment files (Bitcask/Haystack style): chunks are records appended
 * to `segments/<seq>.seg`, and an in-memory index maps each id to its record.
 *
 * Why: the file-per-chunk engine pays a file create, an fsync, a rename and a directory fsync per
 * chunk. Here puts that arrive while an fdatasync is running are appended together and share the
 * next one (group commit), so many chunks cost one flush. A put resolves, and the index learns of
 * its record, only after the fdatasync that covers the record: nothing half-written is ever
 * visible. Deletes and quarantines append a tombstone and are acknowledged the same way.
 *
 * Open rebuilds the index by scanning the segments in order. Every header read from disk is
 * checked (magic, salted check, bounded length); the newest segment, the only one that can hold
 * records not yet flushed at a crash, is also hash-verified record by record and its torn tail
 * truncated. Everything this engine owns is named `segments*`; it takes the same `chunks.lock` as
 * the file engine so the two can never serve one data dir at once.
 *
 * Deleted records are reclaimed by compaction: a sealed segment whose live fraction falls below a
 * threshold has its live records (re-verified) and still-needed tombstones copied to the active
 * segment, flushed, and is then unlinked. It runs in the background, one segment at a time, at a
 * bounded rate.
 */
import { type FileHandle, open, readdir, rename, unlink, mkdir } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { TesseraError, badInput, notFound } from '../errors.js';
import { readAt, replaceFileDurably, writeAt, writevAt } from '../disk-io.js';
import { DIRECT_ALIGN, DirectAppender, DirectReader, alignedArena, openDirectForRead } from './direct-io.js';
import { MAX_CHUNK_BYTES } from '../limits.js';
import { type Logger, silentLogger } from '../log.js';
import {
  type ChunkStore,
  type ChunkStoreUsage,
  type PutOptions,
  type GetOptions,
  KeyedMutex,
  checkChunkId,
  checkPut,
  corruptChunk,
  matchesId,
  noSpace,
  normalizeQuota,
} from './chunk-store.js';
import { type DirLock, lockDir } from './dir-lock.js';
import { FreeSpace, HEX_ID, listQuarantineDir, purgeFromQuarantineDir } from './disk-shared.js';
import { errnoOf, fsError, mkdirFresh, syncDirectory } from './fs-util.js';
import {
  RECORD_HEADER_BYTES,
  RECORD_MAGIC_BYTES,
  RecordKind,
  SALT_BYTES,
  SEGMENT_HEADER_BYTES,
  decodeRecordHeader,
  decodeSegmentHeader,
  encodeRecordHeader,
  encodeSegmentHeader,
  parseSegmentFileName,
  segmentFileName,
} from './segment-format.js';

export const DEFAULT_SEGMENT_BYTES = 256 << 20;
/** Smallest segment accepted: tests use tiny ones to exercise rolling and compaction. */
export const MIN_SEGMENT_BYTES = 4 << 10;
/** Compact a sealed segment once less than this fraction of its bytes is live. */
export const DEFAULT_COMPACT_BELOW = 0.5;
/** Background compaction copies at most this many bytes per second, leaving the disk to puts. */
export const DEFAULT_COMPACTION_BYTES_PER_SECOND = 64 << 20;
/** Delay between a delete and the compaction check it triggers, so a burst of deletes is one pass. */
const COMPACTION_DELAY_MS = 1000;
/**
 * One gather write carries at most this much. Small enough that the first flush of a burst starts
 * early and the burst completes in staggered steps, so callers refill the pipeline while the rest
 * is still being flushed (32 MiB batches measured slower: everything completed, then everything
 * was hashed and queued again, with the disk idle meanwhile).
 */
const MAX_BATCH_BYTES = 4 << 20;
/** Each record is two iovecs (header, data); stays under IOV_MAX (1024). */
const MAX_BATCH_RECORDS = 256;
/** Compaction moves records in groups of this size, then sleeps to keep to its rate. */
const COMPACTION_GROUP_BYTES = 4 << 20;
const COMPACTION_GROUP_RECORDS = 64;
/** Read-ahead used to walk record headers at open. */
const SCAN_WINDOW_BYTES = 64 << 10;
/** Step used to search for the next record after damaged bytes. */
const RESYNC_WINDOW_BYTES = 1 << 20;
const HEX_BYTE = /^[0-9a-f]{2}$/;

export interface SegmentChunkStoreOptions {
  /** Bytes of chunk data this store may hold; Infinity or undefined for none. */
  quota?: number;
  log?: Logger;
  /** Size at which the active segment is sealed and a new one started. */
  segmentBytes?: number;
  /** Live fraction (0..1) under which a sealed segment is compacted. */
  compactBelow?: number;
  compactionBytesPerSecond?: number;
  /** Run compaction by itself after deletes; when false only `compact()` does. */
  autoCompact?: boolean;
  /**
   * Append with O_DIRECT where the filesystem allows it (direct-io.ts), else through the
   * page cache. Default true; false always writes through the page cache.
   */
  directWrites?: boolean;
}

export interface SegmentStoreStats {
  segments: number;
  /** Bytes of all segment files, live or not. */
  bytesOnDisk: number;
  /** Bytes of live records (headers included). */
  liveBytes: number;
  /** fdatasync calls made for appends since open. */
  syncs: number;
  /** Whether appends bypass the page cache (O_DIRECT) now. */
  directWrites: boolean;
  /** Records made durable since open. */
  recordsWritten: number;
  compactedSegments: number;
}

interface Segment {
  readonly seq: number;
  readonly path: string;
  readonly fh: FileHandle;
  readonly salt: Buffer;
  /** End of the appended records: where the next append goes. */
  size: number;
  /** Bytes of records (header + data) that are the current copy of their id. */
  live: number;
  /** get() calls reading from this segment: a dropped segment's handle closes after the last. */
  readers: number;
  dropped: boolean;
  /** Its O_DIRECT read handle, opened on the first large read (undefined inside: refused). */
  direct?: Promise<FileHandle | undefined>;
}

interface Loc {
  readonly seg: Segment;
  /** Offset of the record's header. */
  readonly off: number;
  /** Data length. */
  readonly len: number;
}

interface ScannedRecord {
  kind: RecordKind;
  id: Buffer;
  off: number;
  len: number;
}

interface Pending {
  kind: RecordKind;
  id: Buffer;
  data: Buffer | undefined;
  resolve(at: { seg: Segment; off: number }): void;
  reject(e: unknown): void;
}

interface Written {
  p: Pending;
  seg: Segment;
  off: number;
}

const recordBytes = (len: number) => RECORD_HEADER_BYTES + len;
/** The direct-append arena holds the largest batch: MAX_BATCH_BYTES, or one record of the largest chunk, with a block each side. */
const DIRECT_ARENA_BYTES = Math.max(MAX_BATCH_BYTES, recordBytes(MAX_CHUNK_BYTES)) + 2 * DIRECT_ALIGN;

/** Records from this size up are read directly; smaller ones (manifests, stripe descriptors) through the page cache. */
const DIRECT_READ_MIN_BYTES = 64 << 10;
/** Direct reads in flight at once, each in a slab that holds a default 1 MiB chunk with its blocks either side; more wait for none, they read through the page cache. */
const DIRECT_READ_SLABS = 16;
const DIRECT_READ_SLAB_BYTES = (1 << 20) + (64 << 10);

/** Closes a segment's handles. */
async function closeSegment(seg: Segment): Promise<void> {
  await seg.fh.close().catch(() => undefined);
  const d = await seg.direct;
  await d?.close().catch(() => undefined);
}

/** True when the bytes from `end` to `size` are what a direct append pads a block with: under one block, all zero, ending on a block. */
async function isDirectPadding(fh: FileHandle, end: number, size: number): Promise<boolean> {
  if (size - end >= DIRECT_ALIGN || size % DIRECT_ALIGN !== 0) return false;
  const b = Buffer.alloc(size - end);
  return (await readAt(fh, b, end)) === b.length && b.every((x) => x === 0);
}

export class SegmentChunkStore implements ChunkStore {
  readonly root: string;
  readonly #segDir: string;
  readonly #quarantineDir: string;
  readonly #freeSpace: FreeSpace;
  readonly #quota: number;
  readonly #log: Logger;
  readonly #segmentBytes: number;
  readonly #compactBelow: number;
  readonly #compactionRate: number;
  readonly #autoCompact: boolean;
  readonly #lock: DirLock;
  readonly #mutex = new KeyedMutex();
  readonly #index = new Map<string, Loc>();
  readonly #segments = new Map<number, Segment>();
  /**
   * Per id, the segments still holding a put record of it that is not the live copy. A tombstone
   * must be carried forward by compaction while any of them exists, or the old put would come
   * back at the next open.
   */
  readonly #deadIn = new Map<string, Set<number>>();
  #active: Segment | undefined;
  #nextSeq = 1;
  #queue: Pending[] = [];
  #writing: Promise<void> | undefined;
  /** Written, awaiting the fdatasync that acknowledges them; always within one segment. */
  #unsynced: Written[] = [];
  #syncing: Promise<void> | undefined;
  /** Set when an fdatasync failed: the page cache may have dropped our writes, so stop writing. */
  #failed: TesseraError | undefined;
  #used = 0;
  #count = 0;
  #reserved = 0;
  #closed = false;
  #syncs = 0;
  #recordsWritten = 0;
  #compacted = 0;
  #compactionTail: Promise<unknown> = Promise.resolve();
  /** False once direct appends were turned off or refused by the filesystem. */
  #directWrites: boolean;
  /** The active segment's direct handle, opened on its first append. */
  #direct: { seg: Segment; app: DirectAppender } | undefined;
  /** Aligned memory every direct append is staged in (one batch at a time: the write loop is serial). */
  #arena: Buffer | undefined;
  readonly #reader = new DirectReader(DIRECT_READ_SLAB_BYTES, DIRECT_READ_SLABS);
  #compactTimer: NodeJS.Timeout | undefined;

  private constructor(root: string, opts: SegmentChunkStoreOptions, lock: DirLock) {
    this.root = root;
    this.#freeSpace = new FreeSpace(root);
    this.#segDir = join(root, 'segments');
    this.#quarantineDir = join(root, 'segments.quarantine');
    this.#quota = normalizeQuota(opts.quota);
    this.#log = opts.log ?? silentLogger;
    this.#segmentBytes = opts.segmentBytes ?? DEFAULT_SEGMENT_BYTES;
    this.#compactBelow = opts.compactBelow ?? DEFAULT_COMPACT_BELOW;
    this.#compactionRate = opts.compactionBytesPerSecond ?? DEFAULT_COMPACTION_BYTES_PER_SECOND;
    this.#autoCompact = opts.autoCompact ?? true;
    this.#directWrites = opts.directWrites ?? true;
    this.#lock = lock;
  }

  /** Opens (creating if needed) the store under `root`, rebuilding the index from the segments. */
  static async open(root: string, opts: SegmentChunkStoreOptions = {}): Promise<SegmentChunkStore> {
    normalizeQuota(opts.quota);
    const seg = opts.segmentBytes ?? DEFAULT_SEGMENT_BYTES;
    if (!Number.isSafeInteger(seg) || seg < MIN_SEGMENT_BYTES) throw badInput(`segmentBytes must be an integer ≥ ${MIN_SEGMENT_BYTES}, got ${seg}`);
    const below = opts.compactBelow ?? DEFAULT_COMPACT_BELOW;
    if (!(below >= 0 && below <= 1)) throw badInput(`compactBelow must be between 0 and 1, got ${below}`);
    const rate = opts.compactionBytesPerSecond ?? DEFAULT_COMPACTION_BYTES_PER_SECOND;
    if (!(rate > 0)) throw badInput(`compactionBytesPerSecond must be positive, got ${rate}`);
    try {
      await mkdir(root, { recursive: true });
    } catch (e) {
      throw fsError(e, `creating chunk store directory ${root}`);
    }
    const lock = await lockDir(root, 'chunks.lock');
    const store = new SegmentChunkStore(root, opts, lock);
    try {
      await store.#load();
    } catch (e) {
      await store.#closeHandles();
      await lock.release();
      throw fsError(e, `opening chunk store ${root}`);
    }
    store.#scheduleCompaction();
    return store;
  }

  async #load(): Promise<void> {
    for (const d of [this.#segDir, this.#quarantineDir]) {
      if (await mkdirFresh(d)) await syncDirectory(this.root);
    }
    const leftovers = (await readdir(this.#quarantineDir)).filter((n) => n.endsWith('.tmp'));
    for (const name of leftovers) await unlink(join(this.#quarantineDir, name));
    if (leftovers.length > 0) await syncDirectory(this.#quarantineDir);
    await this.#warnAboutFileEngineChunks();

    const seqs: number[] = [];
    for (const name of await readdir(this.#segDir)) {
      const seq = parseSegmentFileName(name);
      if (seq !== undefined) seqs.push(seq);
    }
    seqs.sort((a, b) => a - b);
    for (const [i, seq] of seqs.entries()) {
      this.#nextSeq = seq + 1;
      const newest = i === seqs.length - 1;
      const path = join(this.#segDir, segmentFileName(seq));
      const fh = await open(path, 'r+');
      let keep = false;
      try {
        const size = (await fh.stat()).size;
        const header = Buffer.alloc(SEGMENT_HEADER_BYTES);
        await readAt(fh, header, 0);
        const salt = size >= SEGMENT_HEADER_BYTES ? decodeSegmentHeader(header, seq) : undefined;
        if (salt === undefined) {
          await this.#setAsideBadSegment(path, seq, size, newest);
          continue;
        }
        const seg: Segment = { seq, path, fh, salt, size, live: 0, readers: 0, dropped: false };
        // Only the newest segment can hold records whose flush a crash cut short; older ones were
        // fully flushed before the next was started, and their data is verified on every read.
        const { end, skipped } = await scanSegment(fh, salt, size, newest, (r) => this.#replay(seg, r));
        // Zeroes up to the next block after the last record are a direct append's padding, not damage.
        const padding = newest && end < size && (await isDirectPadding(fh, end, size));
        if (skipped > 0 && !padding) this.#log.warn({ segment: seq, bytes: skipped }, 'skipped damaged or unflushed bytes while scanning a segment');
        if (newest && end < size) {
          await fh.truncate(end);
          await fh.datasync();
          if (!padding) this.#log.info({ segment: seq, bytes: size - end }, 'truncated the torn tail left by a crash');
        }
        if (newest) seg.size = end;
        this.#segments.set(seq, seg);
        if (newest) this.#active = seg;
        keep = true;
      } finally {
        if (!keep) await fh.close();
      }
    }
  }

  async #setAsideBadSegment(path: string, seq: number, size: number, newest: boolean): Promise<void> {
    const name = segmentFileName(seq);
    if (newest && size <= SEGMENT_HEADER_BYTES) {
      // A segment is started by writing and flushing its header before any record goes in: a
      // newest segment with no valid header and no room for records is an interrupted start.
      await unlink(path);
      await syncDirectory(this.#segDir);
      this.#log.info({ segment: seq }, 'removed a segment whose creation a crash interrupted');
      return;
    }
    await rename(path, join(this.#quarantineDir, `${name}.bad-header`));
    await syncDirectory(this.#quarantineDir);
    await syncDirectory(this.#segDir);
    this.#log.error({ segment: seq, size }, 'segment header is damaged; the segment was moved to segments.quarantine and its chunks must be repaired from other holders');
  }

  async #warnAboutFileEngineChunks(): Promise<void> {
    let names: string[];
    try {
      names = await readdir(join(this.root, 'chunks'));
    } catch (e) {
      if (errnoOf(e) === 'ENOENT') return;
      throw e;
    }
    if (names.some((n) => HEX_BYTE.test(n))) {
      this.#log.warn({ dir: join(this.root, 'chunks') }, 'this data dir holds chunks written by the files engine, which the segments engine does not serve; run the node with --store-engine files to serve them');
    }
  }

  /** Applies one record found at open, in log order. */
  #replay(seg: Segment, r: ScannedRecord): void {
    const hex = r.id.toString('hex');
    const prev = this.#index.get(hex);
    if (prev !== undefined) this.#forget(hex, prev);
    if (r.kind === RecordKind.Put) this.#remember(hex, { seg, off: r.off, len: r.len });
  }

  #remember(hex: string, loc: Loc): void {
    this.#index.set(hex, loc);
    loc.seg.live += recordBytes(loc.len);
    this.#used += loc.len;
    this.#count++;
  }

  #forget(hex: string, loc: Loc): void {
    this.#index.delete(hex);
    loc.seg.live -= recordBytes(loc.len);
    this.#used -= loc.len;
    this.#count--;
    let dead = this.#deadIn.get(hex);
    if (dead === undefined) this.#deadIn.set(hex, (dead = new Set()));
    dead.add(loc.seg.seq);
  }

  // --- group commit -------------------------------------------------------------------------

  /** Appends a record; resolves once an fdatasync that began after its write has completed. */
  #append(kind: RecordKind, id: Buffer, data?: Buffer): Promise<{ seg: Segment; off: number }> {
    if (this.#failed !== undefined) return Promise.reject(this.#failed);
    return new Promise((resolve, reject) => {
      this.#queue.push({ kind, id, data, resolve, reject });
      // Started on the next turn of the event loop, not now: puts issued together (a window of
      // chunks resolving at once) then go out as one batch instead of one alone and then the rest.
      this.#writing ??= new Promise<void>((r) => setImmediate(r))
        .then(() => this.#writeLoop())
        .finally(() => (this.#writing = undefined));
    });
  }

  /**
   * Appends queued records in batches, one gather write each, without waiting for the flush of
   * the previous batch: records written while an fdatasync runs share the next one.
   */
  async #writeLoop(): Promise<void> {
    while (this.#queue.length > 0) {
      if (this.#failed !== undefined) {
        for (const p of this.#queue.splice(0)) p.reject(this.#failed);
        return;
      }
      const firstLen = recordBytes(this.#queue[0]!.data?.length ?? 0);
      let seg = this.#active;
      if (seg === undefined || (seg.size > SEGMENT_HEADER_BYTES && seg.size + firstLen > this.#segmentBytes)) {
        // Everything in the old segment is flushed before the new one starts, so at open only
        // the newest segment can hold records a crash cut short.
        await this.#flushed();
        if (this.#failed !== undefined) continue;
        try {
          seg = await this.#roll();
        } catch (e) {
          const err = fsError(e, 'starting a new segment');
          for (const p of this.#queue.splice(0)) p.reject(err);
          continue;
        }
      }
      let take = 0;
      let bytes = 0;
      while (take < this.#queue.length && take < MAX_BATCH_RECORDS) {
        const n = recordBytes(this.#queue[take]!.data?.length ?? 0);
        if (take > 0 && (seg.size + bytes + n > this.#segmentBytes || bytes + n > MAX_BATCH_BYTES)) break;
        take++;
        bytes += n;
      }
      const batch = this.#queue.splice(0, take);
      const start = seg.size;
      const iov: Buffer[] = [];
      const written: Written[] = [];
      let off = start;
      for (const p of batch) {
        const len = p.data?.length ?? 0;
        iov.push(encodeRecordHeader(seg.salt, p.kind, p.id, len));
        if (p.data !== undefined && len > 0) iov.push(p.data);
        written.push({ p, seg, off });
        off += recordBytes(len);
      }
      try {
        await this.#write(seg, iov, start, off - start);
      } catch (e) {
        // A full disk: take back whatever part of the batch landed, so no partial record stays.
        await seg.fh.truncate(start).catch(() => undefined);
        const err = fsError(e, 'appending to a segment');
        for (const p of batch) p.reject(err);
        continue;
      }
      seg.size = off;
      if (this.#failed !== undefined) {
        for (const p of batch) p.reject(this.#failed);
        continue;
      }
      this.#unsynced.push(...written);
      this.#syncing ??= this.#syncLoop().finally(() => (this.#syncing = undefined));
    }
  }

  /** Appends one batch at `start`: directly where the filesystem allows, else through the page cache. */
  async #write(seg: Segment, iov: Buffer[], start: number, bytes: number): Promise<void> {
    const app = await this.#appender(seg);
    if (app !== undefined && app.fits(bytes)) {
      try {
        await app.append(start, iov, bytes);
        return;
      } catch (e) {
        if (errnoOf(e) !== 'EINVAL') throw e;
        // Nothing was written: the filesystem or the memory does not suit O_DIRECT after all.
        await this.#stopDirect('the filesystem refused an aligned direct write');
      }
    }
    await writevAt(seg.fh, iov, start);
  }

  /** The direct handle of `seg`, opened on first use; undefined when appends go through the page cache. */
  async #appender(seg: Segment): Promise<DirectAppender | undefined> {
    if (!this.#directWrites) return undefined;
    if (this.#direct?.seg === seg) return this.#direct.app;
    await this.#closeDirect();
    this.#arena ??= alignedArena(DIRECT_ARENA_BYTES);
    const app = await DirectAppender.open(seg.path, seg.fh, seg.size, this.#arena);
    if (app === undefined) {
      await this.#stopDirect('the filesystem does not take O_DIRECT');
      return undefined;
    }
    this.#direct = { seg, app };
    return app;
  }

  async #stopDirect(why: string): Promise<void> {
    this.#directWrites = false;
    this.#arena = undefined;
    await this.#closeDirect();
    this.#log.info({ dir: this.#segDir, why }, 'chunk store appends go through the page cache');
  }

  /** Closes the direct handle; its segment's file may end in padding, which `#trim` removes. */
  async #closeDirect(): Promise<Segment | undefined> {
    const d = this.#direct;
    this.#direct = undefined;
    await d?.app.close().catch(() => undefined);
    return d?.seg;
  }

  /** Cuts a direct append's zero padding off the end of `seg` (which takes no more appends). */
  async #trim(seg: Segment, durable: boolean): Promise<void> {
    await seg.fh.truncate(seg.size);
    if (durable) await seg.fh.datasync();
  }

  /** Flushes whatever has been written, over and over while more arrives, then acknowledges it. */
  async #syncLoop(): Promise<void> {
    while (this.#unsynced.length > 0) {
      const batch = this.#unsynced.splice(0);
      const seg = batch[0]!.seg;
      try {
        await seg.fh.datasync();
      } catch (e) {
        // After a failed fdatasync the kernel may have dropped the dirty pages and will not say so
        // again: nothing written since the last good flush can be trusted, so refuse further writes.
        this.#failed = fsError(e, 'flushing a segment');
        this.#log.error({ err: e, segment: seg.seq }, 'fdatasync failed; the chunk store refuses writes until reopened');
        for (const w of [...batch, ...this.#unsynced.splice(0)]) w.p.reject(this.#failed);
        return;
      }
      this.#syncs++;
      this.#recordsWritten += batch.length;
      for (const w of batch) w.p.resolve({ seg: w.seg, off: w.off });
    }
  }

  /** Resolves once every record written so far has been flushed (or failed). */
  async #flushed(): Promise<void> {
    while (this.#syncing !== undefined) await this.#syncing;
  }

  /** Starts a new active segment. The previous one was fully flushed by the batch before. */
  async #roll(): Promise<Segment> {
    // A sealed segment ends at its last record: a scan at open resynchronises over anything else.
    const sealed = await this.#closeDirect();
    if (sealed !== undefined) await this.#trim(sealed, true);
    const seq = this.#nextSeq++;
    const salt = randomBytes(SALT_BYTES);
    const path = join(this.#segDir, segmentFileName(seq));
    const fh = await open(path, 'wx+', 0o644);
    try {
      await writeAt(fh, encodeSegmentHeader(seq, salt), 0);
      await fh.datasync();
      await syncDirectory(this.#segDir);
    } catch (e) {
      await fh.close().catch(() => undefined);
      await unlink(path).catch(() => undefined);
      throw e;
    }
    const seg: Segment = { seq, path, fh, salt, size: SEGMENT_HEADER_BYTES, live: 0, readers: 0, dropped: false };
    this.#segments.set(seq, seg);
    this.#active = seg;
    return seg;
  }

  // --- ChunkStore ----------------------------------------------------------------------------

  async put(id: Buffer, data: Buffer, opts?: PutOptions): Promise<boolean> {
    this.#checkOpen();
    checkPut(id, data, opts);
    const hex = id.toString('hex');
    return this.#mutex.run(hex, async () => {
      this.#checkOpen();
      if (this.#index.has(hex)) return false;
      const size = data.length;
      if (this.#used + this.#reserved + size > this.#quota) {
        throw noSpace(
          `chunk store quota of ${this.#quota} bytes would be exceeded (${this.#used} used, ${this.#reserved} in flight, chunk is ${size}); raise the quota or free space`,
          { used: this.#used, reserved: this.#reserved, quota: this.#quota, size },
        );
      }
      this.#reserved += size;
      try {
        const at = await this.#append(RecordKind.Put, id, data);
        this.#remember(hex, { seg: at.seg, off: at.off, len: size });
        return true;
      } catch (e) {
        throw fsError(e, `storing chunk ${hex}`);
      } finally {
        this.#reserved -= size;
      }
    });
  }

  async get(id: Buffer, opts?: GetOptions): Promise<Buffer> {
    this.#checkOpen();
    checkChunkId(id);
    const hex = id.toString('hex');
    const loc = this.#index.get(hex);
    if (loc === undefined) throw notFound(`chunk ${hex} is not stored here`, { id: hex });
    let data: Buffer;
    try {
      data = await this.#readData(loc, opts?.into);
    } catch (e) {
      throw fsError(e, `reading chunk ${hex}`);
    }
    if (opts?.unverified !== true && !matchesId(id, data)) {
      await this.#mutex.run(hex, async () => {
        // Only the copy we read is condemned: a good copy put after a delete must survive.
        if (this.#index.get(hex) === loc) await this.#quarantineLocked(hex, id, loc, data);
      });
      this.#log.warn({ id: hex }, 'chunk failed verification on read and was quarantined');
      throw corruptChunk(hex);
    }
    return data;
  }

  /** Reads a record's data (length from the index, bounded at put or scan) with positional I/O, into `into` when it fits. */
  async #readData(loc: Loc, into?: Buffer): Promise<Buffer> {
    const seg = loc.seg;
    seg.readers++;
    try {
      const data = into !== undefined && into.length >= loc.len ? into.subarray(0, loc.len) : Buffer.allocUnsafe(loc.len);
      const at = loc.off + RECORD_HEADER_BYTES;
      const got = (await this.#readDirect(seg, data, at)) ?? (await readAt(seg.fh, data, at));
      // Short means the file was cut behind our back; the hash check then fails.
      return got < data.length ? data.subarray(0, got) : data;
    } finally {
      seg.readers--;
      if (seg.dropped && seg.readers === 0) await closeSegment(seg);
    }
  }

  /**
   * Reads a large record around the page cache when appends bypass it too: what was written
   * directly is not cached, and filling the cache would touch fresh pages (direct-io.ts).
   * Undefined when the caller should read through the page cache.
   */
  async #readDirect(seg: Segment, out: Buffer, at: number): Promise<number | undefined> {
    if (!this.#directWrites || out.length < DIRECT_READ_MIN_BYTES) return undefined;
    seg.direct ??= openDirectForRead(seg.path).catch(() => undefined);
    const fh = await seg.direct;
    if (fh === undefined) return undefined;
    try {
      return await this.#reader.read(fh, out, at);
    } catch (e) {
      if (errnoOf(e) !== 'EINVAL') throw e;
      return undefined;
    }
  }

  async has(id: Buffer): Promise<boolean> {
    this.#checkOpen();
    checkChunkId(id);
    return this.#index.has(id.toString('hex'));
  }

  async delete(id: Buffer): Promise<boolean> {
    return this.#withRecord(id, async (hex, loc) => {
      try {
        await this.#append(RecordKind.Tombstone, id);
      } catch (e) {
        throw fsError(e, `deleting chunk ${hex}`);
      }
      this.#forget(hex, loc);
      this.#scheduleCompaction();
    });
  }

  /** Runs `fn` under the id's lock on its live record; false when none is stored. */
  async #withRecord(id: Buffer, fn: (hex: string, loc: Loc) => Promise<void>): Promise<boolean> {
    this.#checkOpen();
    checkChunkId(id);
    const hex = id.toString('hex');
    return this.#mutex.run(hex, async () => {
      this.#checkOpen();
      const loc = this.#index.get(hex);
      if (loc === undefined) return false;
      await fn(hex, loc);
      return true;
    });
  }

  async *list(): AsyncIterable<Buffer> {
    this.#checkOpen();
    for (const hex of [...this.#index.keys()]) yield Buffer.from(hex, 'hex');
  }

  async quarantine(id: Buffer): Promise<boolean> {
    return this.#withRecord(id, (hex, loc) => this.#quarantineLocked(hex, id, loc));
  }

  /** Copies the record's bytes to segments.quarantine/<hex> durably, then tombstones it. Holds hex's lock. */
  async #quarantineLocked(hex: string, id: Buffer, loc: Loc, data?: Buffer): Promise<void> {
    try {
      const bytes = data ?? (await this.#readData(loc));
      await replaceFileDurably(join(this.#quarantineDir, hex), bytes);
      await this.#append(RecordKind.Tombstone, id);
    } catch (e) {
      throw fsError(e, `quarantining chunk ${hex}`);
    }
    this.#forget(hex, loc);
    this.#scheduleCompaction();
  }

  async *listQuarantined(): AsyncIterable<Buffer> {
    this.#checkOpen();
    yield* listQuarantineDir(this.#quarantineDir);
  }

  async purgeQuarantined(id: Buffer): Promise<boolean> {
    this.#checkOpen();
    return purgeFromQuarantineDir(this.#quarantineDir, id);
  }

  usage(): ChunkStoreUsage {
    return { used: this.#used, count: this.#count, quota: this.#quota, capacity: Math.min(this.#quota, this.#freeSpace.bytes() + this.#used) };
  }

  stats(): SegmentStoreStats {
    let bytesOnDisk = 0;
    let liveBytes = 0;
    for (const s of this.#segments.values()) {
      bytesOnDisk += s.size;
      liveBytes += s.live;
    }
    return {
      segments: this.#segments.size,
      bytesOnDisk,
      liveBytes,
      syncs: this.#syncs,
      directWrites: this.#directWrites,
      recordsWritten: this.#recordsWritten,
      compactedSegments: this.#compacted,
    };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#compactTimer);
    await this.#compactionTail;
    await this.#mutex.idle();
    await this.#writing;
    await this.#flushed();
    const last = await this.#closeDirect();
    if (last !== undefined) await this.#trim(last, false).catch(() => undefined);
    await this.#closeHandles();
    await this.#lock.release();
  }

  async #closeHandles(): Promise<void> {
    for (const s of this.#segments.values()) await closeSegment(s);
    this.#segments.clear();
  }

  #checkOpen(): void {
    if (this.#closed) throw new TesseraError('UNAVAILABLE', `chunk store ${this.root} is closed`);
  }

  // --- compaction ----------------------------------------------------------------------------

  #scheduleCompaction(): void {
    if (!this.#autoCompact || this.#closed || this.#compactTimer !== undefined) return;
    this.#compactTimer = setTimeout(() => {
      this.#compactTimer = undefined;
      this.compact().catch((e: unknown) => {
        if (!this.#closed) this.#log.error({ err: e }, 'segment compaction failed; it will be retried after the next delete');
      });
    }, COMPACTION_DELAY_MS);
    this.#compactTimer.unref();
  }

  /**
   * Compacts every sealed segment whose live fraction is under the threshold, one at a time.
   * Resolves with what was done; runs after any compaction already in progress.
   */
  compact(): Promise<{ segments: number; bytesReclaimed: number }> {
    this.#checkOpen();
    const run = this.#compactionTail.then(() => this.#compactPass());
    this.#compactionTail = run.catch(() => undefined);
    return run;
  }

  async #compactPass(): Promise<{ segments: number; bytesReclaimed: number }> {
    let segments = 0;
    let bytesReclaimed = 0;
    const tried = new Set<number>();
    while (!this.#closed) {
      let victim: Segment | undefined;
      for (const s of this.#segments.values()) {
        if (s === this.#active || tried.has(s.seq)) continue;
        const fraction = s.live / Math.max(s.size, 1);
        if (fraction < this.#compactBelow && (victim === undefined || fraction < victim.live / Math.max(victim.size, 1))) victim = s;
      }
      if (victim === undefined) break;
      tried.add(victim.seq);
      const size = victim.size;
      const copied = await this.#compactSegment(victim);
      if (copied === undefined) continue;
      segments++;
      bytesReclaimed += size - copied;
    }
    return { segments, bytesReclaimed };
  }

  /** Moves what is still needed out of `seg` and drops it; bytes copied, or undefined when it stays. */
  async #compactSegment(seg: Segment): Promise<number | undefined> {
    const records: ScannedRecord[] = [];
    const { skipped } = await scanSegment(seg.fh, seg.salt, seg.size, false, (r) => records.push(r));
    if (skipped > 0) this.#log.warn({ segment: seg.seq, bytes: skipped }, 'compaction skipped damaged bytes');
    let copied = 0;
    for (let i = 0; i < records.length; ) {
      if (this.#closed) return undefined;
      const group: ScannedRecord[] = [];
      let groupBytes = 0;
      while (i < records.length && group.length < COMPACTION_GROUP_RECORDS && groupBytes < COMPACTION_GROUP_BYTES) {
        const r = records[i++]!;
        group.push(r);
        groupBytes += recordBytes(r.len);
      }
      const started = Date.now();
      const moved = await Promise.all(group.map((r) => this.#mutex.run(r.id.toString('hex'), () => this.#moveRecord(seg, r))));
      const bytes = moved.reduce((a, b) => a + b, 0);
      copied += bytes;
      const wait = (bytes / this.#compactionRate) * 1000 - (Date.now() - started);
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    }
    if (this.#closed) return undefined;
    if (seg.live !== 0) {
      // A live record the scan could not find (damaged framing): dropping the segment would lose it.
      this.#log.error({ segment: seg.seq, live: seg.live }, 'segment still holds live records after compaction; kept');
      return undefined;
    }
    this.#segments.delete(seg.seq);
    seg.dropped = true;
    await unlink(seg.path);
    // Durable before the dead-record bookkeeping forgets the segment: were it to come back after a
    // crash, a tombstone dropped meanwhile would let its dead puts reappear.
    await syncDirectory(this.#segDir);
    for (const r of records) {
      if (r.kind !== RecordKind.Put) continue;
      const hex = r.id.toString('hex');
      const dead = this.#deadIn.get(hex);
      if (dead === undefined) continue;
      dead.delete(seg.seq);
      if (dead.size === 0) this.#deadIn.delete(hex);
    }
    if (seg.readers === 0) await closeSegment(seg);
    this.#compacted++;
    this.#log.info({ segment: seg.seq, copied }, 'compacted a segment');
    return copied;
  }

  /** Copies one record of a segment being compacted if it is still needed. Holds the id's lock. */
  async #moveRecord(seg: Segment, r: ScannedRecord): Promise<number> {
    const hex = r.id.toString('hex');
    if (r.kind === RecordKind.Put) {
      const loc = this.#index.get(hex);
      if (loc === undefined || loc.seg !== seg || loc.off !== r.off) return 0;
      const data = await this.#readData(loc);
      if (!matchesId(r.id, data)) {
        await this.#quarantineLocked(hex, r.id, loc, data);
        this.#log.warn({ id: hex }, 'chunk failed verification during compaction and was quarantined');
        return 0;
      }
      const at = await this.#append(RecordKind.Put, r.id, data);
      seg.live -= recordBytes(loc.len);
      this.#used -= loc.len;
      this.#count--;
      this.#index.delete(hex);
      this.#remember(hex, { seg: at.seg, off: at.off, len: loc.len });
      return recordBytes(loc.len);
    }
    // A live id needs no tombstone; a dead one needs it while an older put of it remains elsewhere.
    if (this.#index.has(hex)) return 0;
    const dead = this.#deadIn.get(hex);
    if (dead === undefined || ![...dead].some((s) => s !== seg.seq)) return 0;
    await this.#append(RecordKind.Tombstone, r.id);
    return RECORD_HEADER_BYTES;
  }
}

// --- segment scanning ------------------------------------------------------------------------

/** Serves small reads from a read-ahead window so walking headers is not one syscall each. */
class WindowReader {
  #buf = Buffer.alloc(0);
  #start = 0;
  constructor(
    private readonly fh: FileHandle,
    private readonly size: number,
  ) {}

  async read(pos: number, n: number, window = SCAN_WINDOW_BYTES): Promise<Buffer> {
    const rel = pos - this.#start;
    if (rel >= 0 && rel + n <= this.#buf.length) return this.#buf.subarray(rel, rel + n);
    const want = Math.max(0, Math.min(Math.max(n, window), this.size - pos));
    const b = Buffer.allocUnsafe(want);
    const got = await readAt(this.fh, b, pos);
    this.#buf = b.subarray(0, got);
    this.#start = pos;
    return this.#buf.subarray(0, Math.min(n, got));
  }
}

/**
 * Walks the records of one segment in order, calling `onRecord` for each valid one. A header that
 * fails its checks (torn, rotten, or not a header at all) is skipped by searching for the next
 * valid one; with `verify`, a put whose data does not hash to its id is skipped too. Returns the
 * end of the last valid record and how many bytes were skipped.
 */
async function scanSegment(
  fh: FileHandle,
  salt: Buffer,
  size: number,
  verify: boolean,
  onRecord: (r: ScannedRecord) => void,
): Promise<{ end: number; skipped: number }> {
  const reader = new WindowReader(fh, size);
  let pos = SEGMENT_HEADER_BYTES;
  let end = pos;
  let skipped = 0;
  while (pos + RECORD_HEADER_BYTES <= size) {
    const h = decodeRecordHeader(salt, await reader.read(pos, RECORD_HEADER_BYTES));
    if (h === undefined || pos + recordBytes(h.length) > size) {
      const next = await findNextHeader(reader, salt, pos + 1, size);
      skipped += next - pos;
      pos = next;
      continue;
    }
    if (verify && h.kind === RecordKind.Put && !matchesId(h.id, await reader.read(pos + RECORD_HEADER_BYTES, h.length, 0))) {
      skipped += recordBytes(h.length);
      pos += recordBytes(h.length);
      continue;
    }
    onRecord({ kind: h.kind, id: h.id, off: pos, len: h.length });
    pos += recordBytes(h.length);
    end = pos;
  }
  if (pos < size) skipped += size - pos;
  return { end, skipped };
}

/** Offset of the next valid record header at or after `from` (whose record fits), else `size`. */
async function findNextHeader(reader: WindowReader, salt: Buffer, from: number, size: number): Promise<number> {
  let p = from;
  while (p + RECORD_HEADER_BYTES <= size) {
    const buf = await reader.read(p, Math.min(RESYNC_WINDOW_BYTES, size - p), RESYNC_WINDOW_BYTES);
    let i = buf.indexOf(RECORD_MAGIC_BYTES);
    while (i >= 0) {
      const q = p + i;
      if (q + RECORD_HEADER_BYTES > size) return size;
      const h = decodeRecordHeader(salt, await reader.read(q, RECORD_HEADER_BYTES));
      if (h !== undefined && q + recordBytes(h.length) <= size) return q;
      // `buf` stays valid when the candidate's read refills the window: refills allocate afresh.
      i = buf.indexOf(RECORD_MAGIC_BYTES, i + 1);
    }
    // Overlap by the magic's length less one, so a magic straddling two windows is still seen.
    p += Math.max(1, buf.length - (RECORD_MAGIC_BYTES.length - 1));
  }
  return size;
}

