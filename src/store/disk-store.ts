/**
 * Chunk engine on a local filesystem: one file per chunk in a two-level sharded tree
 * (`chunks/ab/cd/<hex>`), so no directory grows past a few thousand entries.
 *
 * The store may share its root with other parts of a node (the data dir), so everything it owns
 * is named `chunks*`. A put writes `chunks.tmp/<hex>.<pid>.<seq>`, fsyncs it, renames it into
 * its shard and fsyncs the shard directory: a chunk is visible only whole. Temp files live in one
 * directory of their own (same filesystem, so the rename is atomic) so that recovery at open is a
 * single readdir. Bad copies are moved to `chunks.quarantine/`.
 *
 * Usage is derived from the tree at open rather than persisted: a counter written beside the
 * chunks could disagree with them after a crash, the tree cannot.
 */
import { open, readdir, rename, stat, unlink, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { MAX_CHUNK_BYTES } from '../limits.js';
import { TesseraError, notFound } from '../errors.js';
import { createFileDurably, pathExists, readAt } from '../disk-io.js';
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
import { errnoOf, forEachLimited, fsError, mkdirFresh, syncDirectory } from './fs-util.js';

const HEX_BYTE = /^[0-9a-f]{2}$/;
/** Parallel stats while deriving usage at open: enough to keep the disk queue busy, few enough fds. */
const OPEN_SCAN_PARALLELISM = 16;

export interface DiskChunkStoreOptions {
  /** Bytes of chunk data this store may hold; Infinity or undefined for none. */
  quota?: number;
  log?: Logger;
}

export class DiskChunkStore implements ChunkStore {
  readonly root: string;
  readonly #chunksDir: string;
  readonly #tmpDir: string;
  readonly #quarantineDir: string;
  readonly #freeSpace: FreeSpace;
  readonly #quota: number;
  readonly #log: Logger;
  readonly #mutex = new KeyedMutex();
  /** Shard directories known to exist durably, or being created. At most 65,536 + 256 entries. */
  readonly #shards = new Map<string, Promise<void>>();
  readonly #lock: DirLock;
  #used = 0;
  #count = 0;
  /** Bytes promised to puts in flight, so concurrent puts cannot jointly overshoot the quota. */
  #reserved = 0;
  #seq = 0;
  #closed = false;

  private constructor(root: string, quota: number, log: Logger, lock: DirLock) {
    this.root = root;
    this.#freeSpace = new FreeSpace(root);
    this.#chunksDir = join(root, 'chunks');
    this.#tmpDir = join(root, 'chunks.tmp');
    this.#quarantineDir = join(root, 'chunks.quarantine');
    this.#quota = quota;
    this.#log = log;
    this.#lock = lock;
  }

  /** Opens (creating if needed) the store under `root`, removes leftovers of a crash and derives usage. */
  static async open(root: string, opts: DiskChunkStoreOptions = {}): Promise<DiskChunkStore> {
    const quota = normalizeQuota(opts.quota);
    try {
      await mkdir(root, { recursive: true });
    } catch (e) {
      throw fsError(e, `creating chunk store directory ${root}`);
    }
    const lock = await lockDir(root, 'chunks.lock');
    const store = new DiskChunkStore(root, quota, opts.log ?? silentLogger, lock);
    try {
      await store.#recover();
    } catch (e) {
      await lock.release();
      throw fsError(e, `opening chunk store ${root}`);
    }
    return store;
  }

  async #recover(): Promise<void> {
    for (const d of [this.#chunksDir, this.#tmpDir, this.#quarantineDir]) {
      if (await mkdirFresh(d)) await syncDirectory(this.root);
    }
    const leftovers = await readdir(this.#tmpDir);
    for (const name of leftovers) await unlink(join(this.#tmpDir, name));
    if (leftovers.length > 0) {
      await syncDirectory(this.#tmpDir);
      this.#log.info({ count: leftovers.length }, 'removed unfinished chunk writes left by a crash');
    }
    const shards: string[] = [];
    for (const l1 of await readdir(this.#chunksDir)) {
      if (!HEX_BYTE.test(l1)) continue;
      for (const l2 of await readdir(join(this.#chunksDir, l1))) {
        if (HEX_BYTE.test(l2)) shards.push(`${l1}/${l2}`);
      }
    }
    const oversized: string[] = [];
    await forEachLimited(shards, OPEN_SCAN_PARALLELISM, async (shard) => {
      this.#shards.set(shard, Promise.resolve());
      const prefix = shard.replace('/', '');
      const dir = join(this.#chunksDir, shard);
      for (const name of await readdir(dir)) {
        if (!HEX_ID.test(name) || !name.startsWith(prefix)) continue;
        const st = await stat(join(dir, name));
        if (!st.isFile()) continue;
        if (st.size > MAX_CHUNK_BYTES) {
          oversized.push(name);
          continue;
        }
        this.#used += st.size;
        this.#count++;
      }
    });
    // Bigger than any chunk we accept: cannot be a chunk we wrote, keep it out of reads and usage.
    for (const hex of oversized) {
      await this.#moveToQuarantine(hex);
      this.#log.warn({ id: hex }, 'quarantined an oversized chunk file found at open');
    }
  }

  #path(hex: string): string {
    return join(this.#chunksDir, hex.slice(0, 2), hex.slice(2, 4), hex);
  }

  #shardDir(hex: string): string {
    return join(this.#chunksDir, hex.slice(0, 2), hex.slice(2, 4));
  }

  #ensureShard(hex: string): Promise<void> {
    const key = `${hex.slice(0, 2)}/${hex.slice(2, 4)}`;
    let p = this.#shards.get(key);
    if (p === undefined) {
      p = (async () => {
        const l1 = join(this.#chunksDir, hex.slice(0, 2));
        const newL1 = await mkdirFresh(l1);
        const newL2 = await mkdirFresh(join(l1, hex.slice(2, 4)));
        // Both parents are flushed together: each fsync costs a journal commit.
        await Promise.all([newL1 ? syncDirectory(this.#chunksDir) : undefined, newL2 ? syncDirectory(l1) : undefined]);
      })();
      this.#shards.set(key, p);
      // A failed creation must be retried by the next put, not remembered.
      p.catch(() => this.#shards.delete(key));
    }
    return p;
  }

  async put(id: Buffer, data: Buffer, opts?: PutOptions): Promise<boolean> {
    this.#checkOpen();
    checkPut(id, data, opts);
    const hex = id.toString('hex');
    return this.#mutex.run(hex, async () => {
      this.#checkOpen();
      const final = this.#path(hex);
      if (await exists(final)) return false;
      const size = data.length;
      if (this.#used + this.#reserved + size > this.#quota) {
        throw noSpace(
          `chunk store quota of ${this.#quota} bytes would be exceeded (${this.#used} used, ${this.#reserved} in flight, chunk is ${size}); raise the quota or free space`,
          { used: this.#used, reserved: this.#reserved, quota: this.#quota, size },
        );
      }
      this.#reserved += size;
      const tmp = join(this.#tmpDir, `${hex}.${process.pid}.${this.#seq++}`);
      let renamed = false;
      try {
        // The temp file does not live in the shard, so its write and fsync overlap the shard's creation.
        const [shard, written] = await Promise.allSettled([this.#ensureShard(hex), createFileDurably(tmp, data)]);
        if (shard.status === 'rejected') throw shard.reason;
        if (written.status === 'rejected') throw written.reason;
        await rename(tmp, final);
        renamed = true;
        this.#used += size;
        this.#count++;
        await syncDirectory(this.#shardDir(hex));
        return true;
      } catch (e) {
        if (!renamed) await unlink(tmp).catch(() => undefined);
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
    const path = this.#path(hex);
    let fh;
    try {
      fh = await open(path, 'r');
    } catch (e) {
      if (errnoOf(e) === 'ENOENT') throw notFound(`chunk ${hex} is not stored here`, { id: hex });
      throw fsError(e, `opening chunk ${hex}`);
    }
    let data: Buffer;
    let ino: number;
    try {
      const st = await fh.stat();
      ino = st.ino;
      if (st.size > MAX_CHUNK_BYTES) {
        data = Buffer.alloc(0);
      } else {
        const into = opts?.into;
        data = into !== undefined && into.length >= st.size ? into.subarray(0, st.size) : Buffer.allocUnsafe(st.size);
        const off = await readAt(fh, data, 0);
        // A file that shrank under us was not written by us (chunk files are never rewritten).
        if (off < data.length) data = data.subarray(0, off);
      }
    } catch (e) {
      throw fsError(e, `reading chunk ${hex}`);
    } finally {
      await fh.close();
    }
    if (opts?.unverified !== true && !matchesId(id, data)) {
      await this.#mutex.run(hex, async () => {
        // Only the copy we read is condemned: a good copy put after a delete must survive.
        const st = await stat(path).catch(() => undefined);
        if (st !== undefined && st.ino === ino) {
          await this.#moveToQuarantine(hex);
          this.#used -= st.size;
          this.#count--;
        }
      });
      this.#log.warn({ id: hex }, 'chunk failed verification on read and was quarantined');
      throw corruptChunk(hex);
    }
    return data;
  }

  async has(id: Buffer): Promise<boolean> {
    this.#checkOpen();
    checkChunkId(id);
    return exists(this.#path(id.toString('hex')));
  }

  async delete(id: Buffer): Promise<boolean> {
    this.#checkOpen();
    checkChunkId(id);
    const hex = id.toString('hex');
    return this.#mutex.run(hex, async () => {
      const path = this.#path(hex);
      try {
        const st = await stat(path);
        await unlink(path);
        this.#used -= st.size;
        this.#count--;
        await syncDirectory(this.#shardDir(hex));
        return true;
      } catch (e) {
        if (errnoOf(e) === 'ENOENT') return false;
        throw fsError(e, `deleting chunk ${hex}`);
      }
    });
  }

  async *list(): AsyncIterable<Buffer> {
    this.#checkOpen();
    for (const l1 of (await readdir(this.#chunksDir)).sort()) {
      if (!HEX_BYTE.test(l1)) continue;
      for (const l2 of (await readdirOrEmpty(join(this.#chunksDir, l1))).sort()) {
        if (!HEX_BYTE.test(l2)) continue;
        const prefix = l1 + l2;
        for (const name of await readdirOrEmpty(join(this.#chunksDir, l1, l2))) {
          if (HEX_ID.test(name) && name.startsWith(prefix)) yield Buffer.from(name, 'hex');
        }
      }
    }
  }

  async quarantine(id: Buffer): Promise<boolean> {
    this.#checkOpen();
    checkChunkId(id);
    const hex = id.toString('hex');
    return this.#mutex.run(hex, async () => {
      let size: number;
      try {
        size = (await stat(this.#path(hex))).size;
      } catch (e) {
        if (errnoOf(e) === 'ENOENT') return false;
        throw fsError(e, `quarantining chunk ${hex}`);
      }
      await this.#moveToQuarantine(hex);
      this.#used -= size;
      this.#count--;
      return true;
    });
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

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#mutex.idle();
    await this.#lock.release();
  }

  /** Renames the live copy into chunks.quarantine/ (replacing an older quarantined copy) durably. */
  async #moveToQuarantine(hex: string): Promise<void> {
    try {
      await rename(this.#path(hex), join(this.#quarantineDir, hex));
      await syncDirectory(this.#quarantineDir);
      await syncDirectory(this.#shardDir(hex));
    } catch (e) {
      throw fsError(e, `quarantining chunk ${hex}`);
    }
  }

  #checkOpen(): void {
    if (this.#closed) throw new TesseraError('UNAVAILABLE', `chunk store ${this.root} is closed`);
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    return await pathExists(path);
  } catch (e) {
    throw fsError(e, `checking ${path}`);
  }
}

async function readdirOrEmpty(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (e) {
    if (errnoOf(e) === 'ENOENT') return [];
    throw e;
  }
}

