/**
 * The node's metadata (references, names, tombstones, volume records, membership cache) in an
 * embedded LMDB database (DESIGN §7). This wrapper only names tables and bounds keys: the layers
 * above decide what the keys and values mean.
 *
 * Writes are batched by lmdb (everything issued in one event turn commits together); every write
 * promise here resolves only once its commit is flushed to disk.
 */
import { mkdtemp, mkdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
// Before lmdb: it picks the addon lmdb loads (the build with a bounded page cache).
import './lmdb-addon.js';
import { open as openLmdb, type Database, type RootDatabase, type Key } from 'lmdb';
import { TesseraError, badInput, tooLarge } from '../errors.js';
import { fsError } from './fs-util.js';

/** Tables every node has; others may be opened by name up to MAX_META_TABLES. */
export const DEFAULT_META_TABLES = ['members', 'refs', 'names', 'tombstones', 'volumes'] as const;
/** LMDB fixes the number of named databases at open. */
export const MAX_META_TABLES = 32;
/** lmdb-js rejects keys over 1978 encoded bytes; staying well under leaves room for the encoding. */
export const MAX_META_KEY_BYTES = 1024;
/** Nesting of array keys (composite keys such as [volume, unit]). */
export const MAX_META_KEY_PARTS = 16;
const TABLE_NAME = /^[a-z][a-z0-9_-]{0,62}$/;

/** A key: a string, number, boolean, byte string, or an array of those (compared element-wise). */
export type MetaKey = string | number | boolean | Uint8Array | MetaKeyPart[];
type MetaKeyPart = string | number | boolean | Uint8Array;

export interface MetaRangeOptions {
  /** Inclusive start; with `prefix`, iteration starts at the prefix. */
  start?: MetaKey;
  /** Exclusive end. */
  end?: MetaKey;
  /** String keys beginning with this prefix (string-keyed tables). */
  prefix?: string;
  limit?: number;
  reverse?: boolean;
}

export interface MetaEntry<V> {
  key: MetaKey;
  value: V;
}

/** Reads and writes inside one atomic transaction; writes are visible to later reads in it. */
export interface MetaTxn {
  get<V = unknown>(table: string, key: MetaKey): V | undefined;
  put(table: string, key: MetaKey, value: unknown): void;
  remove(table: string, key: MetaKey): boolean;
}

export interface MetadataOptions {
  /** Tables to open up front (DEFAULT_META_TABLES if omitted); more can be opened later by name. */
  tables?: readonly string[];
}

function keyBytes(key: unknown, depth: number): number {
  if (typeof key === 'string') return Buffer.byteLength(key);
  if (typeof key === 'number') {
    if (!Number.isFinite(key)) throw badInput(`metadata key number must be finite, got ${key}`);
    return 9;
  }
  if (typeof key === 'boolean') return 1;
  if (key instanceof Uint8Array) return key.length;
  if (Array.isArray(key) && depth === 0) {
    if (key.length === 0 || key.length > MAX_META_KEY_PARTS) {
      throw badInput(`composite metadata key must have 1 to ${MAX_META_KEY_PARTS} parts, got ${key.length}`);
    }
    let n = 0;
    for (const part of key) n += keyBytes(part, 1) + 1;
    return n;
  }
  throw badInput(`metadata key must be a string, number, boolean, Uint8Array or a flat array of those`);
}

function checkKey(key: MetaKey): void {
  const n = keyBytes(key, 0);
  if (n > MAX_META_KEY_BYTES) throw tooLarge(`metadata key of ${n} bytes exceeds the ${MAX_META_KEY_BYTES}-byte limit`, { size: n });
}

export function dbError(e: unknown, what: string): TesseraError {
  if (e instanceof TesseraError) return e;
  const msg = e instanceof Error ? e.message : String(e);
  if (/MDB_MAP_FULL|ENOSPC/.test(msg)) {
    return new TesseraError('NO_SPACE', `metadata database is full while ${what}; free disk space`, undefined, { cause: e });
  }
  return new TesseraError('IO', `metadata ${what} failed: ${msg}`, undefined, { cause: e });
}

export class Metadata {
  readonly path: string;
  readonly #root: RootDatabase;
  readonly #tables = new Map<string, Database>();
  readonly #removeOnClose: boolean;
  #closed = false;

  private constructor(path: string, root: RootDatabase, removeOnClose: boolean) {
    this.path = path;
    this.#root = root;
    this.#removeOnClose = removeOnClose;
  }

  /** Opens (creating) the database in directory `path`; `null` makes a throwaway one for `--memory` nodes and tests. */
  static async open(path: string | null, opts: MetadataOptions = {}): Promise<Metadata> {
    const temporary = path === null;
    let dir: string;
    try {
      if (path === null) dir = await mkdtemp(join(tmpdir(), 'tessera-meta-'));
      else {
        dir = path;
        await mkdir(dir, { recursive: true });
      }
    } catch (e) {
      throw fsError(e, `creating metadata directory ${path ?? tmpdir()}`);
    }
    let root: RootDatabase;
    try {
      // A throwaway database need not survive a crash, so it skips the flushes.
      root = openLmdb({ path: dir, maxDbs: MAX_META_TABLES, ...(temporary ? { noSync: true } : {}) });
    } catch (e) {
      throw dbError(e, `opening ${dir}`);
    }
    const meta = new Metadata(dir, root, temporary);
    for (const t of opts.tables ?? DEFAULT_META_TABLES) meta.#table(t);
    return meta;
  }

  #table(name: string): Database {
    this.#checkOpen();
    const db = this.#tables.get(name);
    if (db !== undefined) return db;
    if (!TABLE_NAME.test(name)) throw badInput(`metadata table name '${name}' must match ${TABLE_NAME}`);
    if (this.#tables.size >= MAX_META_TABLES) throw tooLarge(`at most ${MAX_META_TABLES} metadata tables can be open`);
    const opened = this.#root.openDB({ name });
    this.#tables.set(name, opened);
    return opened;
  }

  /** A typed view of one table. */
  table<V>(name: string): MetaTable<V> {
    this.#table(name);
    return new MetaTable<V>(this, name);
  }

  get<V = unknown>(table: string, key: MetaKey): V | undefined {
    checkKey(key);
    return this.#table(table).get(key as Key) as V | undefined;
  }

  has(table: string, key: MetaKey): boolean {
    checkKey(key);
    return this.#table(table).doesExist(key as Key);
  }

  /** Resolves once the write is durable. `undefined` values are refused: use remove. */
  async put(table: string, key: MetaKey, value: unknown): Promise<void> {
    checkKey(key);
    if (value === undefined) throw badInput('metadata value must not be undefined; use remove to delete a key');
    const db = this.#table(table);
    try {
      await db.put(key as Key, value);
      await this.#root.flushed;
    } catch (e) {
      throw dbError(e, `put in '${table}'`);
    }
  }

  /** True when the key existed. Resolves once the removal is durable. */
  async remove(table: string, key: MetaKey): Promise<boolean> {
    checkKey(key);
    const db = this.#table(table);
    try {
      const existed = db.doesExist(key as Key);
      await db.remove(key as Key);
      await this.#root.flushed;
      return existed;
    } catch (e) {
      throw dbError(e, `remove in '${table}'`);
    }
  }

  /** Entries in key order (a consistent snapshot), bounded by start/end/prefix/limit. */
  *range<V = unknown>(table: string, opts: MetaRangeOptions = {}): Generator<MetaEntry<V>> {
    const db = this.#table(table);
    if (opts.start !== undefined) checkKey(opts.start);
    if (opts.end !== undefined) checkKey(opts.end);
    if (opts.limit !== undefined && (!Number.isSafeInteger(opts.limit) || opts.limit < 0)) {
      throw badInput(`range limit must be a non-negative integer, got ${opts.limit}`);
    }
    const prefix = opts.prefix;
    if (prefix !== undefined) checkKey(prefix);
    const start = prefix !== undefined && opts.start === undefined && !opts.reverse ? prefix : opts.start;
    const it = db.getRange({
      ...(start !== undefined ? { start: start as Key } : {}),
      ...(opts.end !== undefined ? { end: opts.end as Key } : {}),
      ...(opts.reverse ? { reverse: true } : {}),
      ...(opts.limit !== undefined && prefix === undefined ? { limit: opts.limit } : {}),
    });
    let n = 0;
    for (const { key, value } of it) {
      if (prefix !== undefined) {
        if (typeof key !== 'string' || !key.startsWith(prefix)) {
          // Forward from the prefix, the first key without it ends the run.
          if (!opts.reverse) break;
          continue;
        }
        if (opts.limit !== undefined && n >= opts.limit) break;
      }
      n++;
      yield { key: key as MetaKey, value: value as V };
    }
  }

  count(table: string): number {
    return this.#table(table).getCount();
  }

  /**
   * Runs `fn` atomically: all its writes commit together or not at all (a throw aborts them).
   * Resolves with fn's result once durable. `fn` must be synchronous: the transaction is open
   * only while it runs.
   */
  async transaction<T>(fn: (tx: MetaTxn) => T): Promise<T> {
    this.#checkOpen();
    const tx: MetaTxn = {
      get: <V>(table: string, key: MetaKey) => {
        checkKey(key);
        return this.#table(table).get(key as Key) as V | undefined;
      },
      put: (table, key, value) => {
        checkKey(key);
        if (value === undefined) throw badInput('metadata value must not be undefined; use remove to delete a key');
        this.#table(table).putSync(key as Key, value);
      },
      remove: (table, key) => {
        checkKey(key);
        return this.#table(table).removeSync(key as Key);
      },
    };
    let result: T;
    try {
      // A child transaction inside the batched commit, so a throw aborts just these writes.
      result = await this.#root.childTransaction(() => fn(tx));
      await this.#root.flushed;
    } catch (e) {
      if (e instanceof TesseraError) throw e;
      throw dbError(e, 'transaction');
    }
    return result;
  }

  /** Resolves when every write issued so far is durable. */
  async flushed(): Promise<void> {
    await this.#root.flushed;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#root.flushed;
    await this.#root.close();
    if (this.#removeOnClose) await rm(this.path, { recursive: true, force: true });
  }

  #checkOpen(): void {
    if (this.#closed) throw new TesseraError('UNAVAILABLE', `metadata database ${this.path} is closed`);
  }
}

/** One table of a Metadata database with its value type fixed. */
export class MetaTable<V> {
  constructor(
    readonly meta: Metadata,
    readonly name: string,
  ) {}
  get(key: MetaKey): V | undefined {
    return this.meta.get<V>(this.name, key);
  }
  has(key: MetaKey): boolean {
    return this.meta.has(this.name, key);
  }
  put(key: MetaKey, value: V): Promise<void> {
    return this.meta.put(this.name, key, value);
  }
  remove(key: MetaKey): Promise<boolean> {
    return this.meta.remove(this.name, key);
  }
  range(opts?: MetaRangeOptions): Generator<MetaEntry<V>> {
    return this.meta.range<V>(this.name, opts);
  }
  count(): number {
    return this.meta.count(this.name);
  }
}

/** Opens the metadata database in `path` (or a throwaway one for `null`). */
export function openMetadata(path: string | null, opts?: MetadataOptions): Promise<Metadata> {
  return Metadata.open(path, opts);
}
