/**
 * One node's replicas of table partitions, in an LMDB environment of its own, page-encrypted with
 * a key derived from the data key so a raw scan of the data directory finds no name or object key
 * (only full nodes open it; a storage-only node has no key and no tables). Three databases:
 * entries by stored key (sort-key order within a partition key), a per-leaf key index carrying each
 * entry's hash (what two replicas compare), and the digest tree's leaves (its inner levels are
 * held in memory, rebuilt from the leaves). A merge updates all three
 * in one transaction, and resolves once that transaction is on disk; merges and writes handed over
 * while a commit is out share the next one (group-commit.ts), one transaction and one fsync for
 * the batches of every origin.
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
// Before lmdb: store/ picks the addon lmdb loads (lmdb-addon.ts, the build with a bounded page cache).
import '../store/index.js';
import { open as openLmdb, type Database, type RootDatabase } from 'lmdb';
import { badInput, TesseraError } from '../errors.js';
import { fsError } from '../store/index.js';
import { dbError } from '../store/index.js';
import { compareVersions, decodeStored, encodeStored, type EntryKey, type StoredVersion, type TableEntry } from './entry.js';
import { GroupCommit, type GroupCommitStats } from './group-commit.js';
import { BoundedCache } from './bounded-cache.js';
import { addDigestInto, ancestorAt, checkTreePosition, EMPTY_DIGEST, INNER_NODES, innerIndex, NODE_DIGEST_BYTES, TREE_DEPTH, updateDigest } from './digest-tree.js';
import { checkPartition, decodeStorageKey, groupPrefix, LEAF_COUNT, leafOf, PARTITION_COUNT, prefixEnd, SEAL_SORT_KEY, storageKey } from './keys.js';

/** Entries one scan may return; keeps a reply under the control-section limit. */
export const MAX_SCAN_LIMIT = 1000;
/** Bytes of keys and values one reply (scan, leaf listing, fetch, merge) may carry; well under the 256 KiB control-section limit. */
export const MAX_SCAN_BYTES = 160 << 10;
/** Keys one leaf listing may return. */
export const MAX_LEAF_KEYS = 2000;
/** Stored keys removed per transaction when a partition is dropped, so one drop never holds a huge write. */
export const DROP_BATCH = 500;
/**
 * Leaf digests kept in memory (36 bytes each): every write folds its MAC into its leaf's digest,
 * and each read through the encrypted page cache costs 12–25 µs. 16,384 leaves (four partitions'
 * worth, or the busiest leaves of many) in about 3 MiB.
 */
export const MAX_CACHED_TREE_NODES = 16_384;
/**
 * Partitions whose inner digest levels (everything above the leaves) are held in memory: all of
 * them, at INNER_NODES × 36 bytes (about 9.6 KiB) each, 2.4 MiB in all. Only the leaves are
 * stored; the inner levels are rebuilt from them the first time a partition is used after start.
 */
export const MAX_INNER_PARTITIONS = PARTITION_COUNT;
/** Partition keys whose seal state (closed or not) is kept in memory, for judging client writes. */
export const MAX_CACHED_SEALS = 4096;
/** LMDB's page cipher takes a 32-character key. */
const LMDB_KEY_CHARS = 32;

export interface ScanOptions {
  /** Only sort keys starting with this. */
  readonly prefix?: string;
  /** Only sort keys after this one. */
  readonly after?: string;
  readonly limit: number;
}

export interface ScanResult {
  readonly entries: TableEntry[];
  /** True when the scan stopped at its limit or byte budget. */
  readonly more: boolean;
}

interface MergeJob {
  readonly keyed: ReadonlyArray<{ e: TableEntry; key: Buffer }>;
  /** A client write: values under a sealed partition key are refused. */
  readonly refuseSealed: boolean;
  /** Indices (in the call) whose version held before the write is wanted back. */
  readonly want?: ReadonlySet<number>;
}

/** An entry a group commit will write: the version held before the group (its MAC) is folded out of the digests. */
interface Planned {
  readonly key: Buffer;
  readonly leaf: number;
  readonly e: TableEntry;
  readonly cur: Buffer | undefined;
}

export interface MergeResult {
  kept: TableEntry[];
  /** Indices (in the call) of values a seal refused. */
  sealed: number[];
  /**
   * For each index asked for (in the order asked): the version this replica held under its key
   * just before the write (null for none), whether or not the write was newer; null for a value
   * a seal refused.
   */
  held?: Array<TableEntry | null>;
}

export interface LeafKey {
  readonly key: Buffer;
  readonly hash: Buffer;
}

function leafIndexKey(partition: number, leaf: number, key: Buffer): Buffer {
  const head = Buffer.allocUnsafe(3);
  head.writeUInt8(partition, 0);
  head.writeUInt16BE(leaf, 1);
  return Buffer.concat([head, key]);
}

function treeKey(partition: number, level: number, index: number): Buffer {
  const k = Buffer.allocUnsafe(4);
  k.writeUInt8(partition, 0);
  k.writeUInt8(level, 1);
  k.writeUInt16BE(index, 2);
  return k;
}

/** 24 bytes of the derived key as base64url: exactly the 32 characters LMDB's cipher wants. */
export function lmdbEncryptionKey(diskKey: Uint8Array): string {
  if (diskKey.length < 24) throw badInput(`table disk key must be at least 24 bytes, got ${diskKey.length}`);
  const k = Buffer.from(diskKey.subarray(0, 24)).toString('base64url');
  if (k.length !== LMDB_KEY_CHARS) throw new TesseraError('INTERNAL', `table disk key encodes to ${k.length} characters`);
  return k;
}

export class EntryStore {
  readonly path: string;
  readonly #root: RootDatabase;
  readonly #entries: Database<Buffer, Buffer>;
  readonly #leaves: Database<Buffer, Buffer>;
  readonly #tree: Database<Buffer, Buffer>;
  readonly #temporary: boolean;
  /** Merges and writes handed over while a commit is out go together in the next one. */
  readonly #group = new GroupCommit<MergeJob, MergeResult | Error>({
    commit: (jobs) => this.#commitGroup(jobs),
    sizeOf: (job) => job.keyed.length,
  });
  /**
   * What the write transaction last wrote or read of the tree and of seals, so a write reads
   * neither again. Updated as a transaction's writes are made; emptied when a transaction fails,
   * since its writes (and those batched with it) never reached the disk.
   */
  readonly #treeCache = new BoundedCache<Buffer>(MAX_CACHED_TREE_NODES);
  readonly #sealCache = new BoundedCache<boolean>(MAX_CACHED_SEALS);
  /**
   * Each partition's inner digests (levels 0 to TREE_DEPTH - 1, INNER_NODES of them), derived
   * from its stored leaves. A transaction wrote a partition's whole path, one node per level, and
   * the levels above the leaves were half the tree writes of a batch (a batch of ten entries
   * touches about ten leaves but also the root, seven level-1 and ten level-2 nodes): they are
   * kept here instead, updated with the leaves in the write transaction, and forgotten (to be
   * rebuilt from the disk) when a transaction fails. At most MAX_INNER_PARTITIONS.
   */
  readonly #inner = new Map<number, Buffer>();
  /**
   * Beside each partition's inner digests, one bit per leaf: set while the leaf holds entries.
   * The first write to a leaf since start read its digest from the disk, and in a partition being
   * filled most leaves are still empty: through the encrypted page cache that miss was a tenth of
   * a holder's main thread in the 4 KiB PUT benchmark. The bits are read off the same scan that
   * rebuilds the inner digests and kept with them (LEAF_COUNT / 8 bytes a partition).
   */
  readonly #leavesHeld = new Map<number, Uint8Array>();
  #closed = false;

  private constructor(path: string, root: RootDatabase, temporary: boolean) {
    this.path = path;
    this.#root = root;
    this.#temporary = temporary;
    const binary = { keyEncoding: 'binary', encoding: 'binary' } as const;
    this.#entries = root.openDB<Buffer, Buffer>({ name: 'entries', ...binary });
    this.#leaves = root.openDB<Buffer, Buffer>({ name: 'leaves', ...binary });
    this.#tree = root.openDB<Buffer, Buffer>({ name: 'tree', ...binary });
  }

  /** Opens (creating) the store in `dir`; `null` makes a throwaway one for memory nodes and tests. */
  static async open(dir: string | null, diskKey: Uint8Array): Promise<EntryStore> {
    const temporary = dir === null;
    let path: string;
    try {
      if (dir === null) path = await mkdtemp(join(tmpdir(), 'tessera-tables-'));
      else {
        path = dir;
        await mkdir(path, { recursive: true });
      }
    } catch (e) {
      throw fsError(e, `creating table directory ${dir ?? tmpdir()}`);
    }
    try {
      // A Buffer key aborts the process in lmdb 3.5 (napi fatal error); the 32-character string works.
      const root = openLmdb({ path, maxDbs: 4, encryptionKey: lmdbEncryptionKey(diskKey), ...(temporary ? { noSync: true } : {}) });
      return new EntryStore(path, root, temporary);
    } catch (e) {
      throw dbError(e, `opening table store ${path} (a data directory opened with another data key cannot be read)`);
    }
  }

  get(k: EntryKey): TableEntry | null {
    this.#checkOpen();
    const raw = this.#entries.get(storageKey(k));
    if (raw === undefined) return null;
    return { ...k, ...decodeStored(raw) };
  }

  /**
   * The MAC of the version held under a key (null when none), read from the leaf index: a small
   * value, so the entry's own value (overflow pages, each decrypted on read) is left unread. The
   * MAC covers key, timestamp and value, so equal MACs are the same version.
   */
  macOf(k: EntryKey): Buffer | null {
    this.#checkOpen();
    const key = storageKey(k);
    const mac = this.#leaves.get(leafIndexKey(key[0]!, leafOf(key), key));
    return mac === undefined ? null : Buffer.from(mac);
  }

  /**
   * Keeps each entry that is newer than the version held (last writer wins) and returns those
   * kept, once durable. Callers verify MACs first: this layer trusts what it is given.
   */
  async merge(entries: readonly TableEntry[]): Promise<TableEntry[]> {
    return (await this.#merge(entries, false)).kept;
  }

  /**
   * A client write: merges like `merge`, except that a value whose partition key is sealed is
   * refused (its index is in `sealed`); deletions are kept. The seal is read in the same transaction as the write, so
   * on this replica a write is either before the seal or refused.
   */
  write(entries: readonly TableEntry[], want?: readonly number[]): Promise<MergeResult> {
    return this.#merge(entries, true, want);
  }

  /** True when the partition key has a live seal on this replica. */
  sealed(table: string, pk: string): boolean {
    this.#checkOpen();
    return this.#sealedNow(table, pk);
  }

  #sealedNow(table: string, pk: string): boolean {
    const raw = this.#entries.get(storageKey({ table, pk, sk: SEAL_SORT_KEY }));
    return raw !== undefined && decodeStored(raw).value !== null;
  }

  async #merge(entries: readonly TableEntry[], refuseSealed: boolean, want?: readonly number[]): Promise<MergeResult> {
    this.#checkOpen();
    // Keys are checked here, so a bad entry fails its own call and never the group it would join.
    const keyed = entries.map((e) => ({ e, key: storageKey(e) }));
    const wanted = want === undefined || want.length === 0 ? undefined : new Set(want);
    const r = await this.#group.submit({ keyed, refuseSealed, ...(wanted ? { want: wanted } : {}) });
    if (r instanceof Error) throw r;
    if (wanted === undefined) return r;
    const held = r.held!;
    return { kept: r.kept, sealed: r.sealed, held: want!.map((i) => held[i] ?? null) };
  }

  /**
   * One transaction for every merge and write of a group, in the order they were handed over.
   * Each call is judged first (reads only), against what is stored and what calls before it in
   * the group planned; a call whose judging fails (a stored record that cannot be decoded) is
   * answered with its error alone and plans nothing. Then everything planned is written, with the
   * digest folds shared, so each tree node is read and written once per commit. A transaction
   * that fails fails every call in it.
   */
  async #commitGroup(jobs: readonly MergeJob[]): Promise<Array<MergeResult | Error>> {
    let results: Array<MergeResult | Error>;
    try {
      results = await this.#transaction(() => {
        const planned = new Map<string, Planned>();
        let seals = new Map<string, boolean>();
        const out = jobs.map((job) => {
          const mine = new Map<string, Planned>();
          const sealsAfter = new Map(seals);
          try {
            const r = this.#judge(job, (id) => mine.get(id) ?? planned.get(id), mine, sealsAfter);
            for (const [id, p] of mine) planned.set(id, p);
            seals = sealsAfter;
            return r;
          } catch (e) {
            return dbError(e, 'merging table entries');
          }
        });
        const folds = new Map<string, Buffer>();
        for (const { key, leaf, e, cur } of planned.values()) this.#fold(folds, key[0]!, leaf, cur, e.mac);
        for (const { key, leaf, e } of planned.values()) {
          this.#entries.putSync(key, encodeStored(e));
          this.#leaves.putSync(leafIndexKey(key[0]!, leaf, key), e.mac);
        }
        this.#writeFolds(folds);
        for (const [group, closed] of seals) this.#sealCache.set(group, closed);
        return out;
      });
    } catch (e) {
      throw dbError(e, 'merging table entries');
    }
    return results;
  }

  /** Decides one call of a group: what it keeps (into `mine`) and which of its values a seal refuses. */
  #judge(job: MergeJob, earlier: (id: string) => Planned | undefined, mine: Map<string, Planned>, seals: Map<string, boolean>): MergeResult {
    const kept: TableEntry[] = [];
    const sealed: number[] = [];
    // By index in the call while judging; #merge puts them in the order asked.
    const held: Array<TableEntry | null> | undefined = job.want ? [] : undefined;
    job.keyed.forEach(({ e, key }, i) => {
      const group = `${e.table}\0${e.pk}`;
      // Deletions pass: they cannot bring anything back into a closed partition key.
      if (job.refuseSealed && e.sk !== SEAL_SORT_KEY && e.value !== null) {
        let closed = seals.get(group);
        closed ??= this.#sealCache.get(group);
        if (closed === undefined) seals.set(group, (closed = this.#sealedNow(e.table, e.pk)));
        if (closed) {
          sealed.push(i);
          return;
        }
      }
      const id = key.toString('latin1');
      const before = earlier(id);
      const cur = before !== undefined ? before.e : this.#stored(key);
      // Read for the judging anyway: handing it back costs the writer a read of its own.
      if (held !== undefined && job.want!.has(i)) held[i] = cur === undefined ? null : { table: e.table, pk: e.pk, sk: e.sk, ts: cur.ts, value: cur.value, mac: cur.mac };
      if (cur !== undefined && compareVersions(cur, e) >= 0) return;
      mine.set(id, { key, leaf: before?.leaf ?? leafOf(key), e, cur: before !== undefined ? before.cur : cur?.mac });
      if (e.sk === SEAL_SORT_KEY) seals.set(group, e.value !== null);
      kept.push(e);
    });
    return { kept, sealed, ...(held ? { held } : {}) };
  }

  #stored(key: Buffer): StoredVersion | undefined {
    const raw = this.#entries.get(key);
    return raw === undefined ? undefined : decodeStored(raw);
  }

  /**
   * Folds one change into the digests on its leaf's path: the inner ones held in memory at once,
   * the leaf in `folds` (by tree key), so a leaf that several entries of a batch share is read and
   * written once per transaction.
   */
  #fold(folds: Map<string, Buffer>, partition: number, leaf: number, removed: Buffer | undefined, added: Buffer | undefined): void {
    const inner = this.#innerOf(partition);
    for (let level = 0; level < TREE_DEPTH; level++) {
      const at = innerIndex(level, ancestorAt(leaf, level)) * NODE_DIGEST_BYTES;
      updateDigest(inner.subarray(at, at + NODE_DIGEST_BYTES), removed, added).copy(inner, at);
    }
    const tk = treeKey(partition, TREE_DEPTH, leaf);
    const id = tk.toString('latin1');
    const held = this.#leavesHeld.get(partition)!;
    const before = folds.get(id) ?? ((held[leaf >> 3]! >> (leaf & 7)) & 1 ? this.#treeNode(tk, id) : EMPTY_DIGEST);
    folds.set(id, updateDigest(before, removed, added));
  }

  /** A partition's inner digests, rebuilt from its stored leaves when not held. */
  #innerOf(partition: number): Buffer {
    let inner = this.#inner.get(partition);
    if (inner !== undefined) return inner;
    inner = Buffer.alloc(INNER_NODES * NODE_DIGEST_BYTES);
    const held = new Uint8Array(LEAF_COUNT / 8);
    const end = TREE_DEPTH + 1 < 256 ? treeKey(partition, TREE_DEPTH + 1, 0) : undefined;
    for (const { key, value } of this.#tree.getRange({ start: treeKey(partition, TREE_DEPTH, 0), ...(end ? { end } : {}) })) {
      const leaf = key.readUInt16BE(2);
      held[leaf >> 3]! |= 1 << (leaf & 7);
      for (let level = 0; level < TREE_DEPTH; level++) addDigestInto(inner, innerIndex(level, ancestorAt(leaf, level)) * NODE_DIGEST_BYTES, value);
    }
    // Bounded by the partitions there are; the check keeps the bound honest.
    if (this.#inner.size >= MAX_INNER_PARTITIONS) throw new TesseraError('INTERNAL', `inner digests held for ${this.#inner.size} partitions, over ${MAX_INNER_PARTITIONS}`);
    this.#inner.set(partition, inner);
    this.#leavesHeld.set(partition, held);
    return inner;
  }

  /** A tree node as the write transaction sees it: remembered, else read (and remembered). */
  #treeNode(tk: Buffer, id: string): Buffer {
    let digest = this.#treeCache.get(id);
    if (digest === undefined) {
      digest = this.#tree.get(tk) ?? EMPTY_DIGEST;
      this.#treeCache.set(id, Buffer.from(digest));
    }
    return digest;
  }

  #writeFolds(folds: Map<string, Buffer>): void {
    for (const [id, digest] of folds) {
      const tk = Buffer.from(id, 'latin1');
      const empty = digest.equals(EMPTY_DIGEST);
      if (empty) this.#tree.removeSync(tk);
      else this.#tree.putSync(tk, digest);
      this.#treeCache.set(id, digest);
      // Folds are made after #innerOf, so the partition's bits are there.
      const held = this.#leavesHeld.get(tk[0]!)!;
      const leaf = tk.readUInt16BE(2);
      if (empty) held[leaf >> 3]! &= ~(1 << (leaf & 7));
      else held[leaf >> 3]! |= 1 << (leaf & 7);
    }
  }

  /**
   * A write transaction; if it fails, what the caches learnt from it (and from any transaction
   * LMDB committed with it) is forgotten, so the next one reads the disk again.
   */
  async #transaction<T>(body: () => T): Promise<T> {
    try {
      return await this.#root.transaction(body);
    } catch (e) {
      this.#treeCache.clear();
      this.#sealCache.clear();
      this.#inner.clear();
      this.#leavesHeld.clear();
      throw e;
    }
  }

  /** Entries of one partition key in sort-key byte order, tombstones included, bounded by limit and bytes. */
  scan(table: string, pk: string, opts: ScanOptions): ScanResult {
    this.#checkOpen();
    if (!Number.isInteger(opts.limit) || opts.limit < 1 || opts.limit > MAX_SCAN_LIMIT) {
      throw badInput(`scan limit must be 1..${MAX_SCAN_LIMIT}, got ${opts.limit}`);
    }
    const group = groupPrefix(table, pk);
    const lower = Buffer.concat([group, Buffer.from(opts.prefix ?? '', 'utf8')]);
    const afterKey = opts.after !== undefined ? Buffer.concat([group, Buffer.from(opts.after, 'utf8'), Buffer.from([0])]) : undefined;
    const start = afterKey !== undefined && Buffer.compare(afterKey, lower) > 0 ? afterKey : lower;
    const end = prefixEnd(lower);
    const entries: TableEntry[] = [];
    let bytes = 0;
    for (const { key, value } of this.#entries.getRange({ start, ...(end ? { end } : {}) })) {
      // The seal (empty sort key) closes the partition key; it is not one of its entries.
      if (key.length === group.length) continue;
      if (entries.length >= opts.limit || bytes >= MAX_SCAN_BYTES) return { entries, more: true };
      const sk = key.toString('utf8', group.length);
      entries.push({ table, pk, sk, ...decodeStored(value) });
      bytes += key.length + value.length;
    }
    return { entries, more: false };
  }

  /** Keys and hashes in one digest leaf after `after` and up to `through` (stored keys), in key order. */
  leafKeys(partition: number, leaf: number, after: Buffer | undefined, limit: number, through?: Buffer): { keys: LeafKey[]; more: boolean } {
    this.#checkOpen();
    checkPartition(partition);
    checkTreePosition(TREE_DEPTH, leaf);
    if (!Number.isInteger(limit) || limit < 1 || limit > 100_000) throw badInput(`leaf listing limit must be 1..100000, got ${limit}`);
    const lower = leafIndexKey(partition, leaf, Buffer.alloc(0));
    const start = after !== undefined ? Buffer.concat([leafIndexKey(partition, leaf, after), Buffer.from([0])]) : lower;
    const end = prefixEnd(lower);
    const keys: LeafKey[] = [];
    let bytes = 0;
    for (const { key, value } of this.#leaves.getRange({ start, ...(end ? { end } : {}) })) {
      const stored = Buffer.from(key.subarray(3));
      if (through !== undefined && Buffer.compare(stored, through) > 0) break;
      if (keys.length >= limit || bytes >= MAX_SCAN_BYTES) return { keys, more: true };
      keys.push({ key: stored, hash: value });
      bytes += stored.length + value.length + 8;
    }
    return { keys, more: false };
  }

  /**
   * Entries under these stored keys (absent ones skipped), stopping once the byte budget is
   * spent; `done` says how many of the keys were looked at.
   */
  fetch(keys: readonly Buffer[], maxBytes = Infinity): { entries: TableEntry[]; done: number } {
    this.#checkOpen();
    const entries: TableEntry[] = [];
    let bytes = 0;
    let done = 0;
    for (const key of keys) {
      if (bytes >= maxBytes) break;
      done++;
      const raw = this.#entries.get(key);
      if (raw === undefined) continue;
      const { partition: _p, ...k } = decodeStorageKey(key);
      entries.push({ ...k, ...decodeStored(raw) });
      bytes += key.length + raw.length + 64;
    }
    return { entries, done };
  }

  treeNodes(partition: number, level: number, indices: readonly number[]): Buffer[] {
    this.#checkOpen();
    checkPartition(partition);
    return indices.map((i) => {
      checkTreePosition(level, i);
      if (level === TREE_DEPTH) return this.#tree.get(treeKey(partition, level, i)) ?? EMPTY_DIGEST;
      const at = innerIndex(level, i) * NODE_DIGEST_BYTES;
      // A copy: the held digests change in place as writes come.
      return Buffer.from(this.#innerOf(partition).subarray(at, at + NODE_DIGEST_BYTES));
    });
  }

  root(partition: number): Buffer {
    return this.treeNodes(partition, 0, [0])[0]!;
  }

  /** Drops every entry of a partition, in bounded transactions that keep the digests true to what is left. */
  async dropPartition(partition: number): Promise<number> {
    this.#checkOpen();
    checkPartition(partition);
    const lower = Buffer.from([partition]);
    const end = prefixEnd(lower);
    let dropped = 0;
    for (;;) {
      const batch: { key: Buffer; mac: Buffer }[] = [];
      for (const { key, value } of this.#entries.getRange({ start: lower, ...(end ? { end } : {}), limit: DROP_BATCH })) {
        batch.push({ key: Buffer.from(key), mac: decodeStored(value).mac });
      }
      if (batch.length === 0) return dropped;
      try {
        await this.#transaction(() => {
          const folds = new Map<string, Buffer>();
          for (const { key, mac } of batch) {
            const leaf = leafOf(key);
            this.#entries.removeSync(key);
            this.#leaves.removeSync(leafIndexKey(partition, leaf, key));
            this.#fold(folds, partition, leaf, mac, undefined);
          }
          this.#writeFolds(folds);
          // A dropped seal is no longer closed; forget them all, drops are rare.
          this.#sealCache.clear();
        });
      } catch (e) {
        throw dbError(e, `dropping table partition ${partition}`);
      }
      dropped += batch.length;
    }
  }

  /** Group commits made and the merges and writes they carried. */
  get commits(): GroupCommitStats {
    return { ...this.#group.stats };
  }

  /** Leaf digests, seal states and partitions' inner digests held in memory now (each within its bound). */
  get cached(): { treeNodes: number; seals: number; innerPartitions: number } {
    return { treeNodes: this.#treeCache.size, seals: this.#sealCache.size, innerPartitions: this.#inner.size };
  }

  count(): number {
    return this.#entries.getCount();
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#group.drained();
    await this.#root.flushed;
    await this.#root.close();
    if (this.#temporary) await rm(this.path, { recursive: true, force: true });
  }

  #checkOpen(): void {
    if (this.#closed) throw new TesseraError('UNAVAILABLE', `table store ${this.path} is closed`);
  }
}
