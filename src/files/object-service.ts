/**
 * Objects: keys in buckets that point at stored files. The one place that turns bytes into
 * objects, used by the CLI/HTTP names (the `default` bucket) and by the S3 face.
 *
 * A put streams the body into an ordinary file while computing its MD5 (the ETag) and size, and
 * writes the object record only once the file is durable, so a reader sees the old or the new
 * object, never a mix. Several objects may point at one file (a zero-copy copy), so each object
 * holds a reference in the file-reference table (partition = the file's root id, sort key = bucket
 * id + a hash of the key); a file is removed when the last reference goes.
 */
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { TesseraError, badInput, notFound } from '../errors.js';
import type { Logger } from '../log.js';
import { checkName, FILE_ID_PREFIX, formatFileId, isFileId, parseFileId, type RedundancyPolicy, DEFAULT_POLICY } from '../content/index.js';
import {
  BUCKET_PARTITION, BUCKET_TABLE, checkBucketName, checkBucketRecord, checkObjectKey, checkObjectRecord, encodeRecord,
  type BucketAccess, type BucketEntry, type ObjectEntry, type ObjectRecord, type Page, type StoredCannedAcl, type Tables,
} from '../tables/index.js';
import type { FileService } from './service.js';
import type { PutResultView } from './views.js';
import { errorMessage } from './errors.js';

/** Where `tessera put --name` stores names. */
export const DEFAULT_BUCKET = 'default';
/**
 * The default bucket's id is fixed, so nodes that create it on demand at the same moment write
 * the same id: whichever record wins, no object written meanwhile becomes unreachable.
 */
export const DEFAULT_BUCKET_ID = createHash('sha256').update('tessera/v1/default-bucket').digest('hex').slice(0, 32);
export const FILE_REF_TABLE = 'fileref';
/** Names a migrated deletion removed, with its time (name-migration.ts): (bucket id, key) → time. */
export const MIGRATED_DELETION_TABLE = 'migrated-deletion';
export const DEFAULT_CONTENT_TYPE = 'application/octet-stream';
export const MD5_BYTES = 16;
/** Most entries one listing page returns (the table layer's scan bound). */
export const MAX_OBJECT_PAGE = 1000;
export const DEFAULT_OBJECT_PAGE = 1000;

export interface ObjectWriteOptions {
  contentType?: string;
  userMeta?: Record<string, string>;
  /** Cache-Control, Expires and the like (STORED_HEADER_NAMES), served back on reads. */
  headers?: Record<string, string>;
  /** The S3 key that writes the object and its canned ACL, kept in the record. */
  access?: Pick<ObjectRecord, 'owner' | 'acl'>;
  /** Overrides the bucket's default redundancy policy. */
  policy?: RedundancyPolicy;
  /** Content-MD5: checked before the file is committed; a mismatch is BAD_DIGEST and nothing is listed. */
  expectedMd5?: Buffer;
  /** Content-Length: a body of another length is refused before the file is committed. */
  expectedSize?: number;
  chunkSize?: number;
  signal?: AbortSignal;
}

export interface ObjectListOptions {
  prefix?: string;
  after?: string;
  limit?: number;
  token?: string;
}

export interface ObjectServiceOptions {
  files: FileService;
  tables: Tables;
  log: Logger;
}

export interface ObjectPutResult extends ObjectEntry {
  readonly bucket: string;
  /** The stored file: chunks, deduplicated chunks, policy, duration. */
  readonly file: PutResultView;
}

/** A file id, or a name in the default bucket resolved to the file it points at. */
export interface ResolvedRef {
  readonly fileId: string;
  readonly name: string | null;
  readonly entry?: ObjectEntry;
}

/** Pages of a file's references read when `rm FILE_ID` removes every object that points at it. */
export const MAX_REF_PAGES = 100;

const PLACEHOLDER_FILE_ID = formatFileId(Buffer.alloc(32), Buffer.alloc(32));
const badDigest = (msg: string) => new TesseraError('BAD_DIGEST', msg);

/** The ref's sort key: fixed length whatever the object key, and the key itself is not repeated. */
function refSortKey(bucketId: string, key: string): string {
  return `${bucketId}:${createHash('sha256').update(key, 'utf8').digest('hex')}`;
}

function refPartition(fileId: string): string {
  return parseFileId(fileId).rootId.toString('hex');
}

/** A reference names its object, so removing a file by id can find the objects that point at it. */
function encodeRef(bucketId: string, key: string): Buffer {
  return Buffer.from(JSON.stringify({ b: bucketId, k: key }), 'utf8');
}

function decodeRef(value: Buffer): { b: string; k: string } | undefined {
  try {
    const v = JSON.parse(value.toString('utf8')) as { b?: unknown; k?: unknown };
    if (typeof v.b === 'string' && typeof v.k === 'string') return { b: v.b, k: v.k };
  } catch {
    /* an entry of another shape is not a reference this version can follow */
  }
  return undefined;
}

export class ObjectService {
  readonly #files: FileService;
  readonly #tables: Tables;
  readonly #log: Logger;

  constructor(o: ObjectServiceOptions) {
    this.#files = o.files;
    this.#tables = o.tables;
    this.#log = o.log.child({ component: 'objects' });
  }

  // ---- buckets ----

  /** `owner` is the S3 access key that asks, recorded so a second CreateBucket can tell its own bucket from another's. */
  async createBucket(name: string, policy?: RedundancyPolicy, owner?: string, access?: BucketAccess): Promise<BucketEntry> {
    if (name !== DEFAULT_BUCKET) return this.#tables.buckets.create(name, policy, Date.now(), owner, access);
    if ((await this.#tables.buckets.get(name)) !== null) throw new TesseraError('CONFLICT', `bucket '${name}' already exists; choose another name`);
    return this.#writeDefault(policy);
  }

  getBucket(name: string): Promise<BucketEntry | null> {
    return this.#tables.buckets.get(name);
  }

  /** S3's PutBucketAcl: the bucket's canned ACL (undefined: private). */
  setBucketAcl(name: string, acl: StoredCannedAcl | undefined): Promise<BucketEntry> {
    return this.#tables.buckets.setAcl(name, acl);
  }

  removeBucket(name: string): Promise<void> {
    return this.#tables.buckets.remove(name, this.#tables.objects);
  }

  listBuckets(opts: { prefix?: string; after?: string; limit?: number; token?: string } = {}): Promise<Page<BucketEntry>> {
    return this.#tables.buckets.list({ ...opts, limit: pageLimit(opts.limit) });
  }

  /** The bucket, or NOT_FOUND; the default bucket is made on first use. */
  async #bucket(name: string, create: boolean): Promise<BucketEntry> {
    const b = await this.#tables.buckets.get(name);
    if (b !== null) return b;
    if (name === DEFAULT_BUCKET && create) return this.#writeDefault();
    throw notFound(`bucket '${name}' does not exist`);
  }

  async #writeDefault(policy: RedundancyPolicy = DEFAULT_POLICY): Promise<BucketEntry> {
    checkBucketName(DEFAULT_BUCKET);
    const rec = checkBucketRecord({ id: DEFAULT_BUCKET_ID, createdAt: Date.now(), policy });
    await this.#tables.service.put({ table: BUCKET_TABLE, pk: BUCKET_PARTITION, sk: DEFAULT_BUCKET }, encodeRecord(rec));
    return { name: DEFAULT_BUCKET, ...rec };
  }

  // ---- objects ----

  /**
   * Stores a body as a new file and points the key at it. The MD5 and size of the plaintext are
   * computed while it streams; a Content-MD5 or length mismatch fails the stream itself, so the
   * file is never committed and no record is written.
   */
  async putObject(bucket: string, key: string, body: AsyncIterable<unknown> | Readable, opts: ObjectWriteOptions = {}): Promise<ObjectPutResult> {
    checkObjectKey(key);
    // Content type and user metadata are checked before any byte is stored.
    const optionalFields = { ...(opts.headers && Object.keys(opts.headers).length > 0 ? { headers: opts.headers } : {}), ...opts.access };
    checkObjectRecord({ fileId: PLACEHOLDER_FILE_ID, size: 0, etag: '', checksums: {}, contentType: opts.contentType ?? DEFAULT_CONTENT_TYPE, userMeta: opts.userMeta ?? {}, mtime: 0, ...optionalFields });
    const b = await this.#bucket(bucket, true);
    const put = await this.storeBody(body, { ...opts, policy: opts.policy ?? b.policy });
    const { size } = put;
    const record: ObjectRecord = {
      fileId: put.fileId,
      size,
      etag: put.md5.toString('hex'),
      checksums: {},
      contentType: opts.contentType ?? DEFAULT_CONTENT_TYPE,
      userMeta: opts.userMeta ?? {},
      mtime: Date.now(),
      ...optionalFields,
    };
    try {
      await this.#point(b, key, record);
    } catch (e) {
      // The file is referenced by nothing: it must not stay.
      await this.#dropFileIfUnreferenced(put.fileId);
      throw e;
    }
    const { md5: _md5, ...file } = put;
    return { bucket: b.name, key, ...record, file };
  }

  /**
   * Stores a body as a file that no key points at yet, with the MD5 and size of its plaintext
   * computed as it streams (multipart parts are such files). A Content-MD5 or length mismatch
   * fails the stream itself, so the file is never committed.
   */
  async storeBody(body: AsyncIterable<unknown> | Iterable<unknown>, opts: ObjectWriteOptions & { policy: RedundancyPolicy; unique?: boolean }): Promise<PutResultView & { md5: Buffer }> {
    if (opts.expectedMd5 !== undefined && opts.expectedMd5.length !== MD5_BYTES) throw badInput(`Content-MD5 must be ${MD5_BYTES} bytes (base64 of an MD5 digest), got ${opts.expectedMd5.length}`);
    if (opts.expectedSize !== undefined && (!Number.isSafeInteger(opts.expectedSize) || opts.expectedSize < 0)) throw badInput(`expected size ${opts.expectedSize} is not a byte count`);
    const policy = opts.policy;
    const md5 = createHash('md5');
    let size = 0;
    const expectedSize = opts.expectedSize;
    const expectedMd5 = opts.expectedMd5;
    async function* hashed(): AsyncGenerator<Buffer> {
      for await (const piece of body as AsyncIterable<unknown>) {
        const buf = typeof piece === 'string' ? Buffer.from(piece) : Buffer.isBuffer(piece) ? piece : Buffer.from(piece as Uint8Array);
        size += buf.length;
        if (expectedSize !== undefined && size > expectedSize) throw badInput(`the body is longer than the ${expectedSize} bytes announced`);
        md5.update(buf);
        yield buf;
      }
      if (expectedSize !== undefined && size !== expectedSize) throw badInput(`the body ended after ${size} of the ${expectedSize} bytes announced`);
      if (expectedMd5 !== undefined) {
        const got = md5.copy().digest();
        if (!got.equals(expectedMd5)) throw badDigest(`the body's MD5 ${got.toString('base64')} does not match Content-MD5 ${expectedMd5.toString('base64')}; nothing was stored`);
      }
    }
    const put = await this.#files.put(hashed(), {
      ...(policy.kind === 'ec' ? { ec: { k: policy.k, m: policy.m } } : { replicas: policy.r, quorum: policy.w }),
      ...(opts.chunkSize !== undefined ? { chunkSize: opts.chunkSize } : {}),
      ...(opts.signal ? { signal: opts.signal } : {}),
      ...(opts.unique ? { unique: true } : {}),
    });
    return { ...put, size, md5: md5.digest() };
  }

  async headObject(bucket: string, key: string): Promise<ObjectEntry | null> {
    checkObjectKey(key);
    const id = await this.#bucketIdForRead(bucket);
    return id === null ? null : this.#tables.objects.get(id, key);
  }

  /**
   * The id to read a bucket's objects under. The default bucket's is fixed, so reading names needs
   * no bucket-table read: one partition fewer that must have a quorum of holders up (a default
   * bucket not made yet simply has no objects).
   */
  async #bucketIdForRead(bucket: string): Promise<string | null> {
    if (bucket === DEFAULT_BUCKET) return DEFAULT_BUCKET_ID;
    return (await this.#tables.buckets.get(bucket))?.id ?? null;
  }

  /** The object's bytes [start, end] (inclusive, as in HTTP ranges), streamed in bounded memory. */
  async openObject(bucket: string, key: string, range?: { start: number; end: number }): Promise<{ entry: ObjectEntry; stream: Readable }> {
    const entry = await this.headObject(bucket, key);
    if (entry === null) throw notFound(`no object '${key.slice(0, 200)}' in bucket '${bucket}'`);
    const file = await this.#files.open(entry.fileId);
    let start = 0;
    let end = file.totalSize;
    if (range !== undefined) {
      if (!Number.isSafeInteger(range.start) || !Number.isSafeInteger(range.end) || range.start < 0 || range.end < range.start || range.end >= file.totalSize) {
        throw badInput(`byte range ${range.start}-${range.end} does not fit the object's ${file.totalSize} bytes`, { size: file.totalSize });
      }
      start = range.start;
      end = range.end + 1;
    }
    return { entry, stream: Readable.from(file.read(start, end), { objectMode: false }) };
  }

  /** Removes the key; its file goes when no other object points at it. False when there was none. */
  async removeObject(bucket: string, key: string): Promise<boolean> {
    checkObjectKey(key);
    const b = await this.#tables.buckets.get(bucket);
    if (b === null) throw notFound(`bucket '${bucket}' does not exist`);
    return (await this.#removeEntry(b, key)) !== null;
  }

  /** Removes the record, then its reference, then the file if nothing else points at it (errors propagate). */
  async #removeEntry(b: BucketEntry, key: string): Promise<ObjectEntry | null> {
    const cur = await this.#tables.objects.get(b.id, key);
    if (cur === null) return null;
    await this.#tables.objects.remove(b.id, key);
    await this.#tables.service.put({ table: FILE_REF_TABLE, pk: refPartition(cur.fileId), sk: refSortKey(b.id, key) }, null);
    if ((await this.references(cur.fileId, 1)) === 0) await this.#files.removeFile(cur.fileId);
    return cur;
  }

  async listObjects(bucket: string, opts: ObjectListOptions = {}): Promise<Page<ObjectEntry>> {
    const limit = pageLimit(opts.limit);
    const id = await this.#bucketIdForRead(bucket);
    if (id === null) throw notFound(`bucket '${bucket}' does not exist`);
    return this.#tables.objects.list(id, { ...opts, limit });
  }

  /** Points a key at an existing file (zero-copy copy, multipart completion). */
  async recordObject(bucket: string, key: string, record: ObjectRecord): Promise<void> {
    checkObjectKey(key);
    const b = await this.#bucket(bucket, true);
    await this.#point(b, key, record);
  }

  // ---- names: what `tessera put --name`, `get/rm/stat NAME` and `ls` use ----
  // A name is a key of the default bucket, in Unicode NFC and free of control characters
  // (content/names.ts), so it can never be mistaken for a file id.

  /** A file id as given, or a name looked up in the default bucket (O(R) calls). */
  async resolveRef(ref: string): Promise<ResolvedRef> {
    if (typeof ref !== 'string' || ref.length === 0) throw badInput('give a file id or a file name');
    if (isFileId(ref)) return { fileId: ref.toLowerCase(), name: null };
    const looksLikeId = ref.slice(0, FILE_ID_PREFIX.length).toLowerCase() === FILE_ID_PREFIX;
    let name: string;
    try {
      name = checkName(ref);
    } catch (e) {
      if (looksLikeId) parseFileId(ref);
      throw e;
    }
    const entry = await this.headObject(DEFAULT_BUCKET, name);
    if (entry === null) {
      if (looksLikeId) {
        try {
          parseFileId(ref);
        } catch (e) {
          throw badInput(`'${ref.length > 80 ? ref.slice(0, 80) + '…' : ref}' is not a valid file id (${errorMessage(e)}) and no file has that name`);
        }
      }
      throw notFound(`no file is named '${name}' (see 'tessera ls')`);
    }
    return { fileId: entry.fileId, name, entry };
  }

  /** Stores a body under a name in the default bucket. */
  putName(name: string, body: AsyncIterable<unknown> | Readable, opts: ObjectWriteOptions = {}): Promise<ObjectPutResult> {
    return this.putObject(DEFAULT_BUCKET, checkName(name), body, opts);
  }

  /**
   * `rm NAME` removes the name and, when no other object points at it, its file. `rm FILE_ID`
   * removes the file and every object that points at it.
   */
  async removeRef(ref: string): Promise<{ fileId: string; name: string | null }> {
    const r = await this.resolveRef(ref);
    if (r.name !== null) {
      const b = await this.#bucket(DEFAULT_BUCKET, false);
      const gone = await this.#removeEntry(b, r.name);
      if (gone === null) throw notFound(`no file is named '${r.name}' (see 'tessera ls')`);
      return { fileId: gone.fileId, name: r.name };
    }
    await this.#files.removeFile(r.fileId);
    let name: string | null = null;
    const pk = refPartition(r.fileId);
    let token: string | undefined;
    for (let page = 0; page < MAX_REF_PAGES; page++) {
      const refs = await this.#tables.service.list(FILE_REF_TABLE, pk, { limit: MAX_OBJECT_PAGE, ...(token !== undefined ? { token } : {}) });
      for (const e of refs.entries) {
        const ref = e.value === null ? undefined : decodeRef(e.value);
        if (ref === undefined) continue;
        const cur = await this.#tables.objects.get(ref.b, ref.k);
        if (cur?.fileId === r.fileId) await this.#tables.objects.remove(ref.b, ref.k);
        await this.#tables.service.put({ table: FILE_REF_TABLE, pk, sk: e.sk }, null);
        if (name === null && ref.b === DEFAULT_BUCKET_ID) name = ref.k;
      }
      if (refs.token === null) break;
      token = refs.token;
    }
    return { fileId: r.fileId, name };
  }

  /**
   * Takes over one name record of the previous version's name directory (migration). Last writer
   * wins by the record's time: a key already holding an object at least as new is left alone, and
   * a deletion leaves a marker with its time, so a live record older than a deletion another node
   * migrated first is not brought back. The outcome does not depend on the order in which nodes
   * migrate; see name-migration.ts for writes that race. Files an older record pointed at are not
   * removed: the previous version kept them too.
   */
  async adoptName(name: string, rec: { fileId: string; size: number; deleted?: boolean }, at: number): Promise<'written' | 'removed' | 'kept'> {
    const key = checkName(name);
    const b = await this.#bucket(DEFAULT_BUCKET, true);
    const markerKey = { table: MIGRATED_DELETION_TABLE, pk: b.id, sk: key };
    const marker = await this.#tables.service.get(markerKey);
    const markedAt = marker?.value ? Number(marker.value.toString('utf8')) : -1;
    if (rec.deleted === true) {
      if (markedAt < at) await this.#tables.service.put(markerKey, Buffer.from(String(at), 'utf8'));
      const cur = await this.#tables.objects.get(b.id, key);
      if (cur === null || cur.mtime > at) return 'kept';
      await this.#tables.objects.remove(b.id, key);
      await this.#tables.service.put({ table: FILE_REF_TABLE, pk: refPartition(cur.fileId), sk: refSortKey(b.id, key) }, null);
      return 'removed';
    }
    if (markedAt >= at) return 'kept';
    const cur = await this.#tables.objects.get(b.id, key);
    if (cur !== null && cur.mtime >= at) return 'kept';
    await this.#tables.service.put({ table: FILE_REF_TABLE, pk: refPartition(rec.fileId), sk: refSortKey(b.id, key) }, encodeRef(b.id, key));
    await this.#tables.objects.put(b.id, key, { fileId: rec.fileId, size: rec.size, etag: '', checksums: {}, contentType: DEFAULT_CONTENT_TYPE, userMeta: {}, mtime: at });
    return 'written';
  }

  /**
   * Adds the new file's reference before the record that uses it, then drops the replaced
   * object's reference. Two writers racing on one key each re-read the winner afterwards; the
   * loser drops its own reference, so its file does not stay referenced by nothing.
   */
  async #point(b: BucketEntry, key: string, record: ObjectRecord): Promise<void> {
    const old = await this.#tables.objects.get(b.id, key);
    await this.#tables.service.put({ table: FILE_REF_TABLE, pk: refPartition(record.fileId), sk: refSortKey(b.id, key) }, encodeRef(b.id, key));
    await this.#tables.objects.put(b.id, key, record);
    if (old !== null && old.fileId !== record.fileId) await this.#unref(b.id, key, old.fileId);
    // A quorum read after a quorum write sees this write or a later one (another writer's, or a removal).
    const now = await this.#tables.objects.get(b.id, key);
    if (now?.fileId !== record.fileId) {
      this.#log.debug({ key: key.slice(0, 64) }, 'a concurrent write or removal of the key won; dropping this write\'s reference');
      await this.#unref(b.id, key, record.fileId);
    }
  }

  async #unref(bucketId: string, key: string, fileId: string): Promise<void> {
    await this.#tables.service.put({ table: FILE_REF_TABLE, pk: refPartition(fileId), sk: refSortKey(bucketId, key) }, null);
    await this.#dropFileIfUnreferenced(fileId);
  }

  /** How many objects point at a file (at most `limit` counted). */
  async references(fileId: string, limit = 2): Promise<number> {
    return (await this.#tables.service.list(FILE_REF_TABLE, refPartition(fileId), { limit })).entries.length;
  }

  async #dropFileIfUnreferenced(fileId: string): Promise<void> {
    try {
      if ((await this.references(fileId, 1)) > 0) return;
      await this.#files.removeFile(fileId);
    } catch (err) {
      // A file left behind costs space, not correctness; `tessera rm FILE_ID` removes it.
      this.#log.warn({ err: errorMessage(err), file: fileId.slice(0, 16) }, 'an unreferenced file could not be removed');
    }
  }
}

function pageLimit(limit: number | undefined): number {
  if (limit === undefined) return DEFAULT_OBJECT_PAGE;
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_OBJECT_PAGE) throw badInput(`listing limit must be 1..${MAX_OBJECT_PAGE}, got ${limit}`);
  return limit;
}
