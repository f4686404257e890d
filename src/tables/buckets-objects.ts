/**
 * The bucket table (name → id, creation time, default redundancy policy) and the object table
 * ((bucket id, key) → file id, size, ETag, checksums, content type, user metadata, modification
 * time) over the replicated table service. Objects of one bucket share a partition key, so a
 * bucket's listing is one ordered scan on its R holders.
 */
import { randomBytes } from 'node:crypto';
import { notFound, TesseraError } from '../errors.js';
import { DEFAULT_POLICY, type RedundancyPolicy } from '../content/index.js';
import { isSealedError, type ListOptions, type TableService } from './table-service.js';
import {
  BUCKET_PARTITION, BUCKET_TABLE, OBJECT_TABLE, checkBucketName, checkBucketRecord, checkObjectKey, checkObjectRecord, decodeRecord, encodeRecord,
  type BucketRecord, type ObjectRecord, type StoredCannedAcl,
} from './records.js';

/** What an S3 CreateBucket records beside the owner's id: its display name and canned ACL. */
export type BucketAccess = Pick<BucketRecord, 'ownerName' | 'acl'>;

export interface BucketEntry extends BucketRecord {
  readonly name: string;
}

export interface ObjectEntry extends ObjectRecord {
  readonly key: string;
}

export interface Page<T> {
  readonly items: T[];
  readonly token: string | null;
}

/** Buckets a node remembers by name; past this the oldest is forgotten first. */
export const MAX_CACHED_BUCKET_IDS = 4096;

export interface WithIdOptions<T> {
  /** A result that may come from a stale id (nothing found): the bucket is looked up again and `fn` runs once more. */
  readonly recheck?: (result: T) => boolean;
  /** What to return when the bucket does not exist; by default NOT_FOUND is thrown. */
  readonly missing?: () => T;
}

export class BucketTable {
  /**
   * name → id. A bucket's id is random per creation and never changes, so an entry can only be
   * stale by its bucket having been deleted (and perhaps made again under a new id). Deletion
   * seals the old id's objects partition key first, so a write under a stale id is refused by the
   * holders (isSealedError) and a read under it finds nothing: either makes `withId` look again.
   */
  readonly #known = new Map<string, BucketEntry>();

  constructor(private readonly tables: TableService) {}

  async get(name: string): Promise<BucketEntry | null> {
    checkBucketName(name);
    const e = await this.tables.get({ table: BUCKET_TABLE, pk: BUCKET_PARTITION, sk: name });
    if (e === null || e.value === null) {
      this.#known.delete(name);
      return null;
    }
    const b = { name, ...decodeRecord(e.value, checkBucketRecord, `bucket record '${name}'`) };
    this.#remember(b);
    return b;
  }

  /**
   * The bucket as this node last read it, else read now: for a write whose own use of the id
   * checks it (a write under a deleted bucket's id is refused by its seal; the caller then calls
   * `get`). The id and redundancy policy never change; the ACL may be stale, so a check of the
   * ACL reads with `get`.
   */
  async known(name: string): Promise<BucketEntry | null> {
    checkBucketName(name);
    return this.#known.get(name) ?? this.get(name);
  }

  /**
   * Runs `fn` with the bucket's id: the remembered one when there is one (no bucket-table read),
   * else read. A remembered id is checked by its use: a write refused by a seal, or a result
   * `recheck` calls suspect, makes it read the bucket again and run `fn` once more with that id.
   */
  async withId<T>(name: string, fn: (id: string) => Promise<T>, opts: WithIdOptions<T> = {}): Promise<T> {
    checkBucketName(name);
    const known = this.#known.get(name)?.id;
    if (known !== undefined) {
      try {
        const r = await fn(known);
        if (opts.recheck === undefined || !opts.recheck(r)) return r;
      } catch (e) {
        if (!isSealedError(e)) throw e;
      }
      this.#known.delete(name);
    }
    const b = await this.get(name);
    if (b === null) {
      if (opts.missing !== undefined) return opts.missing();
      throw notFound(`bucket '${name}' does not exist`);
    }
    return fn(b.id);
  }

  #remember(b: BucketEntry): void {
    this.#known.delete(b.name);
    this.#known.set(b.name, b);
    if (this.#known.size > MAX_CACHED_BUCKET_IDS) this.#known.delete(this.#known.keys().next().value!);
  }

  /**
   * Creates a bucket, refusing a name already taken. Two creations of one name racing on two
   * nodes both pass the check; the later timestamp wins and the other bucket's id is unreachable
   * (it is empty, having just been made).
   */
  async create(name: string, policy: RedundancyPolicy = DEFAULT_POLICY, now = Date.now(), owner?: string, access: BucketAccess = {}): Promise<BucketEntry> {
    checkBucketName(name);
    if ((await this.get(name)) !== null) throw new TesseraError('CONFLICT', `bucket '${name}' already exists; choose another name`);
    const rec = checkBucketRecord({ id: randomBytes(16).toString('hex'), createdAt: now, policy, ...(owner !== undefined ? { owner } : {}), ...access });
    await this.tables.put({ table: BUCKET_TABLE, pk: BUCKET_PARTITION, sk: name }, encodeRecord(rec));
    return { name, ...rec };
  }

  /**
   * Rewrites a bucket's canned ACL (absent: private). The tables have no conditional write: a
   * change racing the bucket's removal can write the record back, empty as it was removed.
   */
  async setAcl(name: string, acl: StoredCannedAcl | undefined): Promise<BucketEntry> {
    const b = await this.get(name);
    if (b === null) throw new TesseraError('NOT_FOUND', `bucket '${name}' does not exist`);
    const { name: _name, acl: _old, ...rest } = b;
    const rec = checkBucketRecord({ ...rest, ...(acl !== undefined ? { acl } : {}) });
    await this.tables.put({ table: BUCKET_TABLE, pk: BUCKET_PARTITION, sk: name }, encodeRecord(rec));
    const updated = { name, ...rec };
    this.#remember(updated);
    return updated;
  }

  /**
   * Removes an empty bucket. Its objects' partition key is sealed before the emptiness check, so
   * no write that starts after this returns can land under the old id, whatever a node
   * remembers; a bucket found not empty is unsealed again (writes meanwhile were refused).
   */
  async remove(name: string, objects: ObjectTable): Promise<void> {
    const b = await this.get(name);
    if (b === null) throw new TesseraError('NOT_FOUND', `bucket '${name}' does not exist`);
    await this.tables.seal(OBJECT_TABLE, b.id);
    const page = await objects.list(b.id, { limit: 1 });
    if (page.items.length > 0) {
      await this.tables.unseal(OBJECT_TABLE, b.id);
      throw new TesseraError('CONFLICT', `bucket '${name}' is not empty; remove its objects first`);
    }
    await this.tables.put({ table: BUCKET_TABLE, pk: BUCKET_PARTITION, sk: name }, null);
    this.#known.delete(name);
  }

  async list(opts: ListOptions): Promise<Page<BucketEntry>> {
    const page = await this.tables.list(BUCKET_TABLE, BUCKET_PARTITION, opts);
    return { items: page.entries.map((e) => ({ name: e.sk, ...decodeRecord(e.value!, checkBucketRecord, `bucket record '${e.sk}'`) })), token: page.token };
  }
}

export class ObjectTable {
  constructor(private readonly tables: TableService) {}

  async get(bucketId: string, key: string): Promise<ObjectEntry | null> {
    checkObjectKey(key);
    const e = await this.tables.get({ table: OBJECT_TABLE, pk: bucketId, sk: key });
    if (e === null || e.value === null) return null;
    return { key, ...decodeRecord(e.value, checkObjectRecord, `object record '${key}'`) };
  }

  async put(bucketId: string, key: string, record: ObjectRecord): Promise<void> {
    checkObjectKey(key);
    await this.tables.put({ table: OBJECT_TABLE, pk: bucketId, sk: key }, encodeRecord(checkObjectRecord(record)));
  }

  /** Writes a record and returns the object it replaced (null for none), without a read of its own (TableService.putReplacing). */
  async putReplacing(bucketId: string, key: string, record: ObjectRecord): Promise<ObjectEntry | null> {
    checkObjectKey(key);
    const { replaced } = await this.tables.putReplacing({ table: OBJECT_TABLE, pk: bucketId, sk: key }, encodeRecord(checkObjectRecord(record)));
    if (replaced === null || replaced.value === null) return null;
    return { key, ...decodeRecord(replaced.value, checkObjectRecord, `object record '${key}'`) };
  }

  /** Records many objects at once (imports, migration, tests); each is validated first. */
  async putMany(bucketId: string, items: ReadonlyArray<{ key: string; record: ObjectRecord }>): Promise<void> {
    const entries = items.map((it) => {
      checkObjectKey(it.key);
      return { key: { table: OBJECT_TABLE, pk: bucketId, sk: it.key }, value: encodeRecord(checkObjectRecord(it.record)) };
    });
    await this.tables.putMany(entries);
  }

  async remove(bucketId: string, key: string): Promise<boolean> {
    checkObjectKey(key);
    const existed = (await this.get(bucketId, key)) !== null;
    if (existed) await this.tables.put({ table: OBJECT_TABLE, pk: bucketId, sk: key }, null);
    return existed;
  }

  async list(bucketId: string, opts: ListOptions): Promise<Page<ObjectEntry>> {
    if (opts.prefix !== undefined && opts.prefix.length > 0) checkObjectKey(opts.prefix);
    const page = await this.tables.list(OBJECT_TABLE, bucketId, opts);
    return { items: page.entries.map((e) => ({ key: e.sk, ...decodeRecord(e.value!, checkObjectRecord, `object record '${e.sk}'`) })), token: page.token };
  }
}
