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
import { checkName, FILE_ID_PREFIX, isFileId, parseFileId, type RedundancyPolicy, DEFAULT_POLICY } from '../content/index.js';
import { deriveClusterKeys, INLINE_FILE_ID, MAX_INLINE_OBJECT_BYTES, openInlineObject, sealInlineObject } from '../content/index.js';
import {
  BUCKET_PARTITION, BUCKET_TABLE, OBJECT_TABLE, checkBucketName, checkBucketRecord, checkObjectKey, checkObjectRecord, encodeRecord, isSealedError,
  type BucketAccess, type BucketEntry, type ObjectEntry, type ObjectRecord, type Page, type StoredCannedAcl, type Tables,
} from '../tables/index.js';
import type { FileService, OpenedFile } from './service.js';
import type { FileStatView, PutResultView } from './views.js';
import { errorMessage } from './errors.js';
import { OffThreadMd5, type PlainTap } from './md5-offload.js';

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
  /** False keeps even a small body as a file (a native put answers with a file id). Default true. */
  inline?: boolean;
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
  /** Seals small objects into their entries; without it every object is a file. */
  dataKey?: Uint8Array;
}

export interface ObjectPutResult extends ObjectEntry {
  readonly bucket: string;
  /** The stored file: chunks, deduplicated chunks, policy, duration; absent for an inline object. */
  readonly file?: PutResultView;
}

/** A file id, or a name in the default bucket resolved to the file it points at. */
export interface ResolvedRef {
  readonly fileId: string;
  readonly name: string | null;
  readonly entry?: ObjectEntry;
}

/**
 * Files kept open for reads that follow (ranged downloads), and for how long. Each holds only its
 * manifest root page (the rest is fetched as ranges need it).
 */
export const MAX_OPENED_FILES = 16;
export const OPENED_FILE_TTL_MS = 5_000;

/** Pages of a file's references read when `rm FILE_ID` removes every object that points at it. */
export const MAX_REF_PAGES = 100;

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
  readonly #inlineSecret: Buffer | undefined;
  /** Files opened for recent reads (#openFile). */
  readonly #opened = new Map<string, { at: number; file: Promise<OpenedFile> }>();

  constructor(o: ObjectServiceOptions) {
    this.#files = o.files;
    this.#tables = o.tables;
    this.#log = o.log.child({ component: 'objects' });
    this.#inlineSecret = o.dataKey === undefined ? undefined : deriveClusterKeys(o.dataKey).convergenceSecret;
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

  /**
   * The bucket, or NOT_FOUND; the default bucket is made on first use. `remembered` may answer
   * with the entry this node last read (`fresh` false), whose id a write checks by its seal.
   */
  async #bucket(name: string, create: boolean, remembered = false): Promise<BucketEntry & { fresh: boolean }> {
    if (remembered) {
      const known = await this.#tables.buckets.known(name);
      if (known !== null) return { ...known, fresh: false };
    }
    const b = await this.#tables.buckets.get(name);
    if (b !== null) return { ...b, fresh: true };
    if (name === DEFAULT_BUCKET && create) return { ...(await this.#writeDefault()), fresh: true };
    throw notFound(`bucket '${name}' does not exist`);
  }

  async #writeDefault(policy: RedundancyPolicy = DEFAULT_POLICY): Promise<BucketEntry> {
    checkBucketName(DEFAULT_BUCKET);
    const rec = checkBucketRecord({ id: DEFAULT_BUCKET_ID, createdAt: Date.now(), policy });
    // Its id is fixed, so a deleted default bucket left its id sealed: made again, it opens it.
    await this.#tables.service.unseal(OBJECT_TABLE, DEFAULT_BUCKET_ID);
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
    const optionalFields = { ...(opts.headers && Object.keys(opts.headers).length > 0 ? { headers: opts.headers } : {}), ...opts.access };
    // The remembered bucket: a small object then costs no bucket-table read. A file re-reads it below.
    const known = await this.#bucket(bucket, true, true);
    checkBodyOptions(opts);
    const hashed = new HashedBody(body, opts);
    const secret = opts.inline === false ? undefined : this.#inlineSecret;
    const small = secret === undefined || (opts.expectedSize !== undefined && opts.expectedSize > MAX_INLINE_OBJECT_BYTES) ? null : await hashed.takeUpTo(MAX_INLINE_OBJECT_BYTES);
    const meta = { checksums: {}, contentType: opts.contentType ?? DEFAULT_CONTENT_TYPE, userMeta: opts.userMeta ?? {}, ...optionalFields };
    if (small !== null && secret !== undefined) {
      // One table write instead of a file (chunk, manifest, commit on R nodes) and its reference.
      const record: ObjectRecord = { fileId: INLINE_FILE_ID, size: small.length, etag: hashed.md5Hex(), ...meta, mtime: Date.now(), inline: sealInlineObject(small, secret) };
      try {
        await this.#point(known, key, record);
      } catch (e) {
        // The remembered bucket was deleted (its id is sealed): the name is looked up afresh.
        // An inline write leaves nothing behind when refused, so it is simply written again.
        if (!isSealedError(e)) throw e;
        await this.#point(await this.#bucket(bucket, true), key, record);
      }
      return { bucket: known.name, key, ...record };
    }
    // Content type and user metadata are checked before any byte is stored (an inline record is
    // checked whole when it is written, and nothing is stored before it).
    checkObjectRecord({ fileId: INLINE_FILE_ID, size: 0, etag: '', ...meta, mtime: 0 });
    // A file is stored under the bucket's policy and referenced before its record is written, so
    // it goes by the bucket as it is now, not as remembered.
    const b = known.fresh ? known : await this.#bucket(bucket, true);
    const put = await this.#storeHashed(hashed, { ...opts, policy: opts.policy ?? b.policy });
    const record: ObjectRecord = { fileId: put.fileId, size: put.size, etag: put.md5.toString('hex'), ...meta, mtime: Date.now() };
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
    checkBodyOptions(opts);
    return this.#storeHashed(new HashedBody(body, opts), opts);
  }

  async #storeHashed(hashed: HashedBody, opts: ObjectWriteOptions & { policy: RedundancyPolicy; unique?: boolean }): Promise<PutResultView & { md5: Buffer }> {
    const policy = opts.policy;
    const put = await this.#files.put(hashed.rest(), {
      ...(policy.kind === 'ec' ? { ec: { k: policy.k, m: policy.m } } : { replicas: policy.r, quorum: policy.w }),
      ...(opts.chunkSize !== undefined ? { chunkSize: opts.chunkSize } : {}),
      ...(opts.signal ? { signal: opts.signal } : {}),
      ...(opts.unique ? { unique: true } : {}),
      plainTap: hashed,
    });
    return { ...put, size: hashed.size, md5: hashed.md5() };
  }

  async headObject(bucket: string, key: string): Promise<ObjectEntry | null> {
    checkObjectKey(key);
    if (bucket === DEFAULT_BUCKET) return this.#tables.objects.get(DEFAULT_BUCKET_ID, key);
    // A miss may come from a remembered id of a deleted bucket: withId then looks the bucket up again.
    return this.#tables.buckets.withId(bucket, (id) => this.#tables.objects.get(id, key), { recheck: (o) => o === null, missing: () => null });
  }

  /** The object's bytes [start, end] (inclusive, as in HTTP ranges), streamed in bounded memory. */
  async openObject(bucket: string, key: string, range?: { start: number; end: number }): Promise<{ entry: ObjectEntry; stream: Readable }> {
    const found = await this.headObject(bucket, key);
    if (found === null) throw notFound(`no object '${key.slice(0, 200)}' in bucket '${bucket}'`);
    const { entry, file, start, end } = await this.#openRange(found, range);
    return { entry, stream: Readable.from(file.read(start, end), { objectMode: false }) };
  }

  /**
   * The bytes of an entry a caller has just read (HeadObject then GetObject cost one table read,
   * and the bytes are those of the entry whose headers were sent), for a consumer that is done
   * with each piece before it asks for the next (an HTTP answer that waits for each write):
   * pieces are decrypted into a window of buffers used again, not a fresh buffer per chunk.
   */
  async readEntry(entry: ObjectEntry, range?: { start: number; end: number }): Promise<AsyncIterable<Buffer>> {
    const { file, start, end } = await this.#openRange(entry, range);
    return file.read(start, end, undefined, { reuse: true });
  }

  async #openRange(entry: ObjectEntry, range?: { start: number; end: number }): Promise<{ entry: ObjectEntry; file: OpenedFile; start: number; end: number }> {
    const file = this.inlineFile(entry) ?? (await this.#openFile(entry.fileId));
    if (range === undefined) return { entry, file, start: 0, end: file.totalSize };
    if (!Number.isSafeInteger(range.start) || !Number.isSafeInteger(range.end) || range.start < 0 || range.end < range.start || range.end >= file.totalSize) {
      throw badInput(`byte range ${range.start}-${range.end} does not fit the object's ${file.totalSize} bytes`, { size: file.totalSize });
    }
    return { entry, file, start: range.start, end: range.end + 1 };
  }

  /**
   * A file opened for a read a moment ago is used again: clients download a large object in
   * ranges (aws-cli: 8 MiB, 10 at once), and each would otherwise fetch, check and decrypt the
   * manifest root again. A file's content never changes under its id, and whether the object
   * still points at it was just read from the object table, so only removal could make a kept
   * one wrong: it is kept for a few seconds, and a removed file's chunks outlive that grace.
   */
  #openFile(fileId: string): Promise<OpenedFile> {
    const now = Date.now();
    const hit = this.#opened.get(fileId);
    if (hit !== undefined && now - hit.at < OPENED_FILE_TTL_MS) return hit.file;
    if (this.#opened.size >= MAX_OPENED_FILES) {
      for (const [id, o] of this.#opened) if (now - o.at >= OPENED_FILE_TTL_MS) this.#opened.delete(id);
      if (this.#opened.size >= MAX_OPENED_FILES) this.#opened.delete(this.#opened.keys().next().value!);
    }
    const file = this.#files.open(fileId);
    this.#opened.set(fileId, { at: now, file });
    file.catch(() => {
      if (this.#opened.get(fileId)?.file === file) this.#opened.delete(fileId);
    });
    return file;
  }

  /** Removes a file, which this node then no longer serves from its opened files. */
  async #removeFile(fileId: string): Promise<void> {
    this.#opened.delete(fileId);
    await this.#files.removeFile(fileId);
  }

  /** An inline object read as a file is (native get, ranges); null for an object stored as a file. */
  inlineFile(entry: ObjectEntry): OpenedFile | null {
    if (entry.inline === undefined) return null;
    const plain = this.#openInline(entry);
    const totalSize = plain.length;
    return {
      fileId: INLINE_FILE_ID,
      totalSize,
      createdAt: entry.mtime,
      async *read(start = 0, end = totalSize) {
        if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || end < start || end > totalSize) {
          throw new TesseraError('BAD_INPUT', `byte range ${start}-${end} does not fit the object's ${totalSize} bytes`, { size: totalSize });
        }
        if (end > start) yield plain.subarray(start, end);
      },
    };
  }

  /** What `tessera stat NAME` shows for an inline object: no chunks; its copies are the entry's. */
  inlineStat(entry: ObjectEntry, name: string | null): FileStatView | null {
    if (entry.inline === undefined) return null;
    this.#openInline(entry);
    return {
      fileId: INLINE_FILE_ID, name, size: entry.size, chunkSize: 0, chunks: 0, policy: 'inline',
      createdAt: new Date(entry.mtime).toISOString(),
      health: { fullRedundancy: 0, degraded: 0, lost: 0 }, zones: 0, zoneLossesSurvived: 0, chunkHealth: [],
    };
  }

  #openInline(entry: ObjectEntry): Buffer {
    if (this.#inlineSecret === undefined) throw new TesseraError('AUTH', `object '${entry.key.slice(0, 200)}' is stored inline and this node cannot unseal it without the data key`);
    return openInlineObject(entry.inline!, entry.size);
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
    if (cur.inline !== undefined) return cur;
    await this.#tables.service.put({ table: FILE_REF_TABLE, pk: refPartition(cur.fileId), sk: refSortKey(b.id, key) }, null);
    if ((await this.references(cur.fileId, 1)) === 0) await this.#removeFile(cur.fileId);
    return cur;
  }

  /**
   * The default bucket's id is fixed, so listing names needs no bucket-table read: one partition
   * fewer that must have a quorum of holders up (a default bucket not made yet has no objects).
   */
  async listObjects(bucket: string, opts: ObjectListOptions = {}): Promise<Page<ObjectEntry>> {
    const limit = pageLimit(opts.limit);
    if (bucket === DEFAULT_BUCKET) return this.#tables.objects.list(DEFAULT_BUCKET_ID, { ...opts, limit });
    return this.#tables.buckets.withId(bucket, (id) => this.#tables.objects.list(id, { ...opts, limit }), { recheck: (p) => p.items.length === 0 });
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
  async putName(name: string, body: AsyncIterable<unknown> | Readable, opts: ObjectWriteOptions = {}): Promise<ObjectPutResult & { file: PutResultView }> {
    // Always a file: `tessera put` answers with a file id that `tessera get FILE_ID` reads.
    const put = await this.putObject(DEFAULT_BUCKET, checkName(name), body, { ...opts, inline: false });
    if (put.file === undefined) throw new TesseraError('INTERNAL', 'a named put was stored inline');
    return { ...put, file: put.file };
  }

  /**
   * `rm NAME` removes the name and, when no other object points at it, its file. `rm FILE_ID`
   * removes the file and every object that points at it.
   */
  async removeRef(ref: string): Promise<{ fileId: string; name: string | null }> {
    const r = await this.resolveRef(ref);
    if (r.name === null && r.fileId === INLINE_FILE_ID) throw badInput('this id names no file (objects stored inline carry it); remove the object by its name');
    if (r.name !== null) {
      const b = await this.#bucket(DEFAULT_BUCKET, false);
      const gone = await this.#removeEntry(b, r.name);
      if (gone === null) throw notFound(`no file is named '${r.name}' (see 'tessera ls')`);
      return { fileId: gone.fileId, name: r.name };
    }
    await this.#removeFile(r.fileId);
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
      if (cur.inline === undefined) await this.#tables.service.put({ table: FILE_REF_TABLE, pk: refPartition(cur.fileId), sk: refSortKey(b.id, key) }, null);
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
    const fileOf = (old: ObjectEntry | null) => (old !== null && old.inline === undefined && old.fileId !== record.fileId ? old.fileId : null);
    if (record.inline !== undefined) {
      // No file and no reference: nothing can be left behind if another write wins. The holders
      // say what the write replaced, so it needs no read before it.
      const replaced = fileOf(await this.#tables.objects.putReplacing(b.id, key, record));
      if (replaced !== null) await this.#unref(b.id, key, replaced);
      return;
    }
    const replaced = fileOf(await this.#tables.objects.get(b.id, key));
    await this.#tables.service.put({ table: FILE_REF_TABLE, pk: refPartition(record.fileId), sk: refSortKey(b.id, key) }, encodeRef(b.id, key));
    await this.#tables.objects.put(b.id, key, record);
    if (replaced !== null) await this.#unref(b.id, key, replaced);
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
      await this.#removeFile(fileId);
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

/** An entry as the HTTP API shows it: an inline object's sealed bytes are left out, only the fact is said. */
export function objectEntryView(o: ObjectEntry): Omit<ObjectEntry, 'inline'> & { inline?: true } {
  const { inline, ...rest } = o;
  return inline === undefined ? rest : { ...rest, inline: true };
}

function checkBodyOptions(opts: ObjectWriteOptions): void {
  if (opts.expectedMd5 !== undefined && opts.expectedMd5.length !== MD5_BYTES) throw badInput(`Content-MD5 must be ${MD5_BYTES} bytes (base64 of an MD5 digest), got ${opts.expectedMd5.length}`);
  if (opts.expectedSize !== undefined && (!Number.isSafeInteger(opts.expectedSize) || opts.expectedSize < 0)) throw badInput(`expected size ${opts.expectedSize} is not a byte count`);
}

/**
 * A body read once, with the MD5 and size of its plaintext computed as it goes. A Content-MD5 or
 * length mismatch fails the stream itself, so nothing built from it is committed. The head of the
 * body may be taken first (to see whether it is small), the rest streamed after it.
 */
class HashedBody implements PlainTap {
  size = 0;
  readonly #md5 = new OffThreadMd5();
  /** Set when the body has been read to its end and its MD5 taken. */
  #digest: Buffer | undefined;
  /** Set when a put's seal jobs hash the rest of the body (PlainTap): pieces pass here unhashed. */
  #tapped = false;
  /** Set when the body was read to its end without a problem. */
  #ended = false;
  readonly #expectedMd5: Buffer | undefined;
  readonly #it: AsyncIterator<Buffer>;
  #head: Buffer[] = [];

  constructor(body: AsyncIterable<unknown> | Iterable<unknown>, opts: ObjectWriteOptions) {
    this.#expectedMd5 = opts.expectedMd5;
    this.#it = this.#checked(body, opts.expectedSize)[Symbol.asyncIterator]();
  }

  async *#checked(body: AsyncIterable<unknown> | Iterable<unknown>, expectedSize: number | undefined): AsyncGenerator<Buffer> {
    try {
      for await (const piece of body as AsyncIterable<unknown>) {
        const buf = typeof piece === 'string' ? Buffer.from(piece) : Buffer.isBuffer(piece) ? piece : Buffer.from(piece as Uint8Array);
        this.size += buf.length;
        if (expectedSize !== undefined && this.size > expectedSize) throw badInput(`the body is longer than the ${expectedSize} bytes announced`);
        if (!this.#tapped) await this.#md5.update(buf);
        yield buf;
      }
      if (expectedSize !== undefined && this.size !== expectedSize) throw badInput(`the body ended after ${this.size} of the ${expectedSize} bytes announced`);
      this.#ended = true;
      // A tapped body's digest is taken by the put once its seal jobs are all sent (`end`).
      if (!this.#tapped) this.#digest = await this.#md5.digest();
    } finally {
      if (this.#digest === undefined && !(this.#tapped && this.#ended)) this.#md5.abort();
    }
    if (this.#digest !== undefined) this.#checkDigest(this.#digest);
  }

  #checkDigest(digest: Buffer): void {
    const expected = this.#expectedMd5;
    if (expected !== undefined && !digest.equals(expected)) {
      throw badDigest(`the body's MD5 ${digest.toString('base64')} does not match Content-MD5 ${expected.toString('base64')}; nothing was stored`);
    }
  }

  begin(): { body: number; hashed: number } {
    this.#tapped = true;
    return this.#md5.takeOver();
  }

  direct(piece: Uint8Array): Promise<void> {
    return this.#md5.direct(piece);
  }

  async end(): Promise<void> {
    if (!this.#ended) throw new TesseraError('INTERNAL', 'the MD5 of a body was taken before the body ended');
    this.#digest = await this.#md5.digest();
    this.#checkDigest(this.#digest);
  }

  abort(): void {
    this.#md5.abort();
  }

  /** The whole (checked) body when it ends within `limit` bytes; otherwise null, and what was read is kept for `rest`. */
  async takeUpTo(limit: number): Promise<Buffer | null> {
    let n = 0;
    for (;;) {
      const r = await this.#it.next();
      if (r.done) return Buffer.concat(this.#head, n);
      this.#head.push(r.value);
      n += r.value.length;
      if (n > limit) return null;
    }
  }

  async *rest(): AsyncGenerator<Buffer> {
    const head = this.#head;
    this.#head = [];
    let done = false;
    try {
      yield* head;
      for (;;) {
        const r = await this.#it.next();
        if (r.done) {
          done = true;
          return;
        }
        yield r.value;
      }
    } finally {
      // A put that gives up early must let go of the request body, as a for-await would.
      if (!done) await this.#it.return?.(undefined);
    }
  }

  /** The body's MD5, once it has been read to its end (a put resolves only then). */
  md5(): Buffer {
    if (this.#digest === undefined) throw new TesseraError('INTERNAL', 'the MD5 of a body was asked for before the body ended');
    return this.#digest;
  }

  md5Hex(): string {
    return this.md5().toString('hex');
  }
}
