/**
 * Multipart uploads: an object sent in parts, in any order, each part an ordinary stored file
 * whose MD5 is computed as it streams. Completion stitches the chosen parts into one composite
 * file (its root lists the parts' manifests; no byte is copied) and points the key at it, so a
 * reader sees the old object or the new one. Removing the object removes the composite and with
 * it the parts. Parts of an aborted upload are removed at once, and an upload left open longer
 * than the abandon period is aborted by a sweep; their chunks then go after the chunk grace period.
 *
 * Any node may serve any request: the upload and its parts are table records, not node state.
 * Every upload of a part is recorded, so a part number uploaded again while a completion reads
 * the list never loses the bytes the completion chose; the versions not chosen are removed with
 * the upload.
 */
import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { TesseraError, badInput, tooLarge } from '../errors.js';
import type { Logger } from '../log.js';
import type { RedundancyPolicy } from '../content/index.js';
import {
  BUCKET_PARTITION, BUCKET_TABLE, asRecordOwner, MAX_PART_NUMBER, MAX_PART_VERSIONS, PART_TABLE, UPLOAD_TABLE, checkMultipartKey, checkPartNumber, decodePartRecord, decodeUploadRecord,
  encodePartRecord, encodeUploadRecord, isUploadId, newUploadId, parsePartSortKey, parseUploadSortKey, partPrefix, partSortKey, uploadSortKey,
  type BucketEntry, type ObjectEntry, type ObjectRecord, type PartRecord, type TableService, type StoredCannedAcl, type UploadRecord,
} from '../tables/index.js';
import { errorMessage } from './errors.js';

/** S3's smallest part, except the last: clients size parts by it, and so does EntityTooSmall. */
export const MIN_PART_BYTES = 5 << 20;
/** S3's largest part. */
export const MAX_PART_BYTES = 5 * 2 ** 30;
/** An upload neither completed nor aborted for this long is aborted by the sweep (S3 keeps them until a lifecycle rule; a week is generous). */
export const DEFAULT_ABANDON_AFTER_MS = 7 * 24 * 3600_000;
export const MAX_ABANDON_AFTER_MS = 365 * 24 * 3600_000;
export const DEFAULT_MULTIPART_SWEEP_MS = 3600_000;
/** How long a completed upload answers a repeated completion (a client retrying after a lost answer). */
export const COMPLETED_KEEP_MS = 3600_000;
/** Uploads or parts returned by one listing page (S3's maximum). */
export const MAX_MULTIPART_PAGE = 1000;
/** Part files (and part records) removed at once when an upload ends. */
const REMOVE_CONCURRENCY = 8;
/** Entries one table scan page asks for. */
const SCAN_PAGE = 1000;

/** Why a multipart request was refused, for the face to name in its own terms. */
export type MultipartFault = 'no-such-bucket' | 'no-such-upload' | 'invalid-part' | 'invalid-part-order' | 'entity-too-small' | 'malformed';

export const multipartError = (code: 'NOT_FOUND' | 'BAD_INPUT' | 'TOO_LARGE', fault: MultipartFault, message: string) => new TesseraError(code, message, { fault });

export function multipartFault(e: unknown): MultipartFault | undefined {
  return e instanceof TesseraError ? (e.details?.['fault'] as MultipartFault | undefined) : undefined;
}

/** A body stored as a file, with the MD5 and size of its plaintext (ObjectService does the hashing). */
export interface StoredBody {
  readonly fileId: string;
  readonly size: number;
  readonly md5: Buffer;
}

export interface MultipartObjects {
  getBucket(name: string): Promise<BucketEntry | null>;
  storeBody(body: AsyncIterable<unknown> | Readable, opts: { policy: RedundancyPolicy; unique?: boolean; expectedMd5?: Buffer; expectedSize?: number; signal?: AbortSignal }): Promise<StoredBody>;
  openObject(bucket: string, key: string, range?: { start: number; end: number }): Promise<{ entry: ObjectEntry; stream: Readable }>;
  headObject(bucket: string, key: string): Promise<ObjectEntry | null>;
  recordObject(bucket: string, key: string, record: ObjectRecord): Promise<void>;
}

export interface MultipartFiles {
  putComposite(partIds: readonly string[], o?: { signal?: AbortSignal }): Promise<{ fileId: string; size: number }>;
  removeFile(fileId: string): Promise<unknown>;
  partSizes(fileId: string): Promise<number[]>;
}

export interface MultipartServiceOptions {
  readonly tables: TableService;
  readonly objects: MultipartObjects;
  readonly files: MultipartFiles;
  readonly log: Logger;
  readonly minPartBytes?: number;
  readonly abandonAfterMs?: number;
  readonly sweepIntervalMs?: number;
  readonly now?: () => number;
}

export interface UploadView extends UploadRecord {
  readonly bucket: string;
  readonly key: string;
  readonly uploadId: string;
}

export interface PartView extends PartRecord {
  readonly partNumber: number;
}

export interface CompletedPart {
  readonly partNumber: number;
  readonly etag: string;
}

export interface CreateUploadOptions {
  contentType?: string;
  userMeta?: Record<string, string>;
  initiator: { id: string; name: string };
  /** Cache-Control, Expires and the like (STORED_HEADER_NAMES) for the completed object. */
  headers?: Record<string, string>;
  /** The completed object's canned ACL (absent: private). */
  acl?: StoredCannedAcl;
}

/** A part's bytes: a request body stream, or any iterable of buffers. */
export type PartBody = AsyncIterable<unknown> | Iterable<unknown>;

const stripQuotes = (etag: string) => etag.trim().replace(/^"|"$/g, '').toLowerCase();

/** `md5(concatenated part MD5s)-N`, the ETag aws-cli and rclone check a multipart object against. */
export function multipartEtag(partMd5s: readonly string[]): string {
  const h = createHash('md5');
  for (const m of partMd5s) h.update(Buffer.from(m, 'hex'));
  return `${h.digest('hex')}-${partMd5s.length}`;
}

/** Counts bytes through and refuses a body over `max` before storing more. */
async function* capped(body: PartBody, max: number): AsyncGenerator<Buffer> {
  let n = 0;
  for await (const piece of body) {
    const buf = Buffer.isBuffer(piece) ? piece : typeof piece === 'string' ? Buffer.from(piece) : Buffer.from(piece as Uint8Array);
    n += buf.length;
    if (n > max) throw tooLarge(`a part may hold at most ${max} bytes; split the object into more parts`, { size: n });
    yield buf;
  }
}

/**
 * What the upload hands on to its object beside type and metadata: its stored headers, its
 * initiator as the owner (when that is an S3 key), and its canned ACL.
 */
function completedFields(u: UploadRecord): Pick<ObjectRecord, 'headers' | 'owner' | 'acl'> {
  const owner = asRecordOwner(u.initiator);
  return { ...(u.headers ? { headers: u.headers } : {}), ...(owner ? { owner } : {}), ...(u.acl !== undefined ? { acl: u.acl } : {}) };
}

export class MultipartService {
  readonly #tables: TableService;
  readonly #objects: MultipartObjects;
  readonly #files: MultipartFiles;
  readonly #log: Logger;
  readonly #minPart: number;
  readonly #abandonAfter: number;
  readonly #sweepEvery: number;
  readonly #now: () => number;
  #timer: NodeJS.Timeout | undefined;
  #sweeping: Promise<number> | undefined;

  constructor(o: MultipartServiceOptions) {
    this.#tables = o.tables;
    this.#objects = o.objects;
    this.#files = o.files;
    this.#log = o.log.child({ component: 'multipart' });
    this.#minPart = o.minPartBytes ?? MIN_PART_BYTES;
    this.#abandonAfter = o.abandonAfterMs ?? DEFAULT_ABANDON_AFTER_MS;
    this.#sweepEvery = o.sweepIntervalMs ?? DEFAULT_MULTIPART_SWEEP_MS;
    this.#now = o.now ?? Date.now;
    if (!Number.isInteger(this.#abandonAfter) || this.#abandonAfter < 0 || this.#abandonAfter > MAX_ABANDON_AFTER_MS) throw badInput(`abandon period must be 0..${MAX_ABANDON_AFTER_MS} ms`);
  }

  start(): void {
    this.#timer = setInterval(() => void this.sweep(), this.#sweepEvery);
    this.#timer.unref();
  }

  async stop(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#sweeping?.catch(() => undefined);
  }

  async #bucket(name: string): Promise<BucketEntry> {
    const b = await this.#objects.getBucket(name);
    if (b === null) throw multipartError('NOT_FOUND', 'no-such-bucket', `bucket '${name}' does not exist`);
    return b;
  }

  async #upload(b: BucketEntry, key: string, uploadId: string, completed = false): Promise<UploadRecord> {
    const missing = () => multipartError('NOT_FOUND', 'no-such-upload', `no multipart upload ${String(uploadId).slice(0, 40)} for key '${key.slice(0, 200)}' in bucket '${b.name}': it was completed, aborted or never begun`);
    if (!isUploadId(uploadId)) throw missing();
    checkMultipartKey(key);
    const e = await this.#tables.get({ table: UPLOAD_TABLE, pk: b.id, sk: uploadSortKey(key, uploadId) });
    if (e === null || e.value === null) throw missing();
    const rec = decodeUploadRecord(e.value, `upload record ${uploadId}`);
    if (rec.completed !== undefined && !completed) throw missing();
    return rec;
  }

  async create(bucket: string, key: string, o: CreateUploadOptions): Promise<UploadView> {
    checkMultipartKey(key);
    const b = await this.#bucket(bucket);
    const uploadId = newUploadId();
    const rec: UploadRecord = {
      createdAt: this.#now(), contentType: o.contentType ?? 'application/octet-stream', userMeta: o.userMeta ?? {}, policy: b.policy, initiator: o.initiator,
      ...(o.headers && Object.keys(o.headers).length > 0 ? { headers: o.headers } : {}),
      ...(o.acl !== undefined ? { acl: o.acl } : {}),
    };
    await this.#tables.put({ table: UPLOAD_TABLE, pk: b.id, sk: uploadSortKey(key, uploadId) }, encodeUploadRecord(rec));
    return { bucket, key, uploadId, ...rec };
  }

  /** Stores one part (a new file) and records it; returns its record (ETag = hex MD5). */
  async uploadPart(bucket: string, key: string, uploadId: string, partNumber: number, body: PartBody, o: { expectedMd5?: Buffer; expectedSize?: number; signal?: AbortSignal } = {}): Promise<PartView> {
    checkPartNumber(partNumber);
    if (o.expectedSize !== undefined && o.expectedSize > MAX_PART_BYTES) throw tooLarge(`a part may hold at most ${MAX_PART_BYTES} bytes; this one announces ${o.expectedSize}`);
    const b = await this.#bucket(bucket);
    const upload = await this.#upload(b, key, uploadId);
    let versions = 0;
    for await (const _ of this.#scan(PART_TABLE, uploadId, partPrefix(partNumber))) versions++;
    if (versions >= MAX_PART_VERSIONS) throw tooLarge(`part ${partNumber} was uploaded ${versions} times already; complete or abort the upload and begin again`);
    // A part's file is removed with its upload or its object: no other upload may share its id.
    const stored = await this.#objects.storeBody(capped(body, MAX_PART_BYTES), {
      policy: upload.policy,
      unique: true,
      ...(o.expectedMd5 !== undefined ? { expectedMd5: o.expectedMd5 } : {}),
      ...(o.expectedSize !== undefined ? { expectedSize: o.expectedSize } : {}),
      ...(o.signal ? { signal: o.signal } : {}),
    });
    const rec: PartRecord = { fileId: stored.fileId, size: stored.size, etag: stored.md5.toString('hex'), mtime: this.#now() };
    const sk = partSortKey(partNumber, rec.mtime);
    try {
      await this.#tables.put({ table: PART_TABLE, pk: uploadId, sk }, encodePartRecord(rec));
      // A completion or abort that ran meanwhile no longer sees this part: it must not stay.
      await this.#upload(b, key, uploadId);
    } catch (e) {
      await this.#tables.put({ table: PART_TABLE, pk: uploadId, sk }, null).catch(() => undefined);
      await this.#removeFiles([rec.fileId]);
      throw e;
    }
    return { partNumber, ...rec };
  }

  /**
   * A part made of a byte range (inclusive) of an existing object. The range's bytes are read and
   * stored again as the part's own file, so the part stays valid whatever happens to the source.
   */
  async uploadPartCopy(bucket: string, key: string, uploadId: string, partNumber: number, source: { bucket: string; key: string; range?: { start: number; end: number } }, signal?: AbortSignal): Promise<PartView & { sourceMtime: number }> {
    checkPartNumber(partNumber);
    const b = await this.#bucket(bucket);
    await this.#upload(b, key, uploadId);
    const { entry, stream } = await this.#objects.openObject(source.bucket, source.key, source.range);
    const size = source.range ? source.range.end - source.range.start + 1 : entry.size;
    if (size > MAX_PART_BYTES) {
      stream.destroy();
      throw tooLarge(`a part may hold at most ${MAX_PART_BYTES} bytes; copy a smaller range`);
    }
    const part = await this.uploadPart(bucket, key, uploadId, partNumber, stream, { expectedSize: size, ...(signal ? { signal } : {}) });
    return { ...part, sourceMtime: entry.mtime };
  }

  /** The newest upload of each part number, in order, after `marker`. */
  async listParts(bucket: string, key: string, uploadId: string, o: { marker?: number; limit?: number } = {}): Promise<{ upload: UploadView; parts: PartView[]; truncated: boolean; next: number | null }> {
    const b = await this.#bucket(bucket);
    const upload = await this.#upload(b, key, uploadId);
    const limit = pageLimit(o.limit);
    const marker = o.marker ?? 0;
    if (!Number.isInteger(marker) || marker < 0 || marker > MAX_PART_NUMBER) throw badInput(`part number marker ${marker} is outside 0..${MAX_PART_NUMBER}`);
    const parts: PartView[] = [];
    let truncated = false;
    for await (const p of this.#latestParts(uploadId, marker)) {
      if (parts.length === limit) {
        truncated = true;
        break;
      }
      parts.push(p);
    }
    return { upload: { bucket, key, uploadId, ...upload }, parts, truncated, next: truncated ? parts[parts.length - 1]!.partNumber : null };
  }

  /** Uploads open in a bucket, ordered by key then upload id, after the markers. */
  async listUploads(bucket: string, o: { prefix?: string; keyMarker?: string; uploadIdMarker?: string; limit?: number } = {}): Promise<{ uploads: UploadView[]; truncated: boolean }> {
    const b = await this.#bucket(bucket);
    const limit = pageLimit(o.limit);
    let after: string | undefined;
    if (o.keyMarker !== undefined && o.keyMarker !== '') {
      // With an upload id marker, uploads of the marker key after it; without, the next key on.
      after = o.uploadIdMarker && isUploadId(o.uploadIdMarker) ? uploadSortKey(o.keyMarker, o.uploadIdMarker) : `${o.keyMarker}\u0001`;
    }
    const uploads: UploadView[] = [];
    let truncated = false;
    for await (const e of this.#scan(UPLOAD_TABLE, b.id, o.prefix, after)) {
      const { key, uploadId } = parseUploadSortKey(e.sk);
      if (uploads.length === limit) {
        const next = decodeUploadRecord(e.value, `upload record ${uploadId}`);
        if (next.completed !== undefined) continue;
        truncated = true;
        break;
      }
      const rec = decodeUploadRecord(e.value, `upload record ${uploadId}`);
      if (rec.completed === undefined) uploads.push({ bucket, key, uploadId, ...rec });
    }
    return { uploads, truncated };
  }

  /**
   * Stitches the listed parts into the object. Parts must be ascending, each the newest upload of
   * its number with a matching ETag, and all but the last at least the minimum part size.
   */
  async complete(bucket: string, key: string, uploadId: string, requested: readonly CompletedPart[], signal?: AbortSignal): Promise<ObjectRecord & { key: string }> {
    const b = await this.#bucket(bucket);
    const upload = await this.#upload(b, key, uploadId, true);
    if (requested.length === 0) throw multipartError('BAD_INPUT', 'malformed', 'the completion lists no parts; list each part number with its ETag');
    const request = createHash('sha256').update(JSON.stringify(requested.map((p) => [p.partNumber, stripQuotes(p.etag)]))).digest('hex');
    if (upload.completed !== undefined) {
      // The same completion again (its answer was lost): the same answer. Anything else finds no upload.
      if (upload.completed.request !== request) await this.#upload(b, key, uploadId);
      const done = upload.completed;
      const now = await this.#objects.headObject(bucket, key);
      return { key, fileId: now?.fileId ?? '', size: done.size, etag: done.etag, checksums: {}, contentType: upload.contentType, userMeta: upload.userMeta, mtime: done.at };
    }
    if (requested.length > MAX_PART_NUMBER) throw multipartError('BAD_INPUT', 'malformed', `the completion lists ${requested.length} parts; at most ${MAX_PART_NUMBER}`);
    // Ascending; a number listed twice (a client that re-sent a part and kept both answers) counts once, by its later entry.
    const wanted: CompletedPart[] = [];
    for (const p of requested) {
      checkPartNumber(p.partNumber);
      const prev = wanted[wanted.length - 1];
      if (prev !== undefined && p.partNumber < prev.partNumber) throw multipartError('BAD_INPUT', 'invalid-part-order', `part ${p.partNumber} is listed after part ${prev.partNumber}; list parts in ascending order`);
      if (prev !== undefined && p.partNumber === prev.partNumber) wanted[wanted.length - 1] = p;
      else wanted.push(p);
    }
    const latest = new Map<number, PartView>();
    for await (const p of this.#latestParts(uploadId, 0)) latest.set(p.partNumber, p);
    const chosen: PartView[] = wanted.map((r) => {
      const p = latest.get(r.partNumber);
      if (p === undefined) throw multipartError('BAD_INPUT', 'invalid-part', `part ${r.partNumber} was never uploaded (or not finished); upload it, then complete`);
      if (stripQuotes(r.etag) !== p.etag) throw multipartError('BAD_INPUT', 'invalid-part', `part ${r.partNumber}'s ETag ${stripQuotes(r.etag).slice(0, 40)} is not the ${p.etag} of its newest upload`);
      return p;
    });
    const small = chosen.findIndex((p, i) => i < chosen.length - 1 && p.size < this.#minPart);
    if (small >= 0) {
      throw multipartError('BAD_INPUT', 'entity-too-small', `part ${chosen[small]!.partNumber} holds ${chosen[small]!.size} bytes; every part but the last must hold at least ${this.#minPart}`);
    }
    const composite = await this.#files.putComposite(chosen.map((p) => p.fileId), signal ? { signal } : {});
    const record: ObjectRecord = {
      fileId: composite.fileId,
      size: composite.size,
      etag: multipartEtag(chosen.map((p) => p.etag)),
      checksums: {},
      contentType: upload.contentType,
      userMeta: upload.userMeta,
      mtime: this.#now(),
      ...completedFields(upload),
    };
    await this.#objects.recordObject(bucket, key, record);
    // The object now owns the chosen parts; everything else the upload stored goes.
    const used = new Set(chosen.map((p) => p.fileId));
    await this.#end(b, key, uploadId, used, { ...upload, completed: { at: record.mtime, etag: record.etag, size: record.size, request } });
    this.#log.info({ key: key.slice(0, 64), parts: chosen.length, size: record.size }, 'multipart upload completed');
    return { key, ...record };
  }

  async abort(bucket: string, key: string, uploadId: string): Promise<void> {
    const b = await this.#bucket(bucket);
    await this.#upload(b, key, uploadId);
    await this.#end(b, key, uploadId, new Set());
    this.#log.info({ key: key.slice(0, 64), upload: uploadId }, 'multipart upload aborted');
  }

  /**
   * Where part `partNumber` of an object lies (inclusive range) and how many parts it has: an
   * object from a multipart upload is read part by part as it was sent; any other is one part.
   */
  async partRange(bucket: string, key: string, partNumber: number): Promise<{ entry: ObjectEntry; start: number; end: number; count: number }> {
    checkPartNumber(partNumber);
    const entry = await this.#objects.headObject(bucket, key);
    if (entry === null) throw new TesseraError('NOT_FOUND', `no object '${key.slice(0, 200)}' in bucket '${bucket}'`);
    const sizes = /-\d+$/.test(entry.etag) ? await this.#files.partSizes(entry.fileId) : [entry.size];
    const count = Math.max(1, sizes.length);
    if (partNumber > count) throw multipartError('BAD_INPUT', 'invalid-part', `the object has ${count} part(s); part ${partNumber} does not exist`);
    let start = 0;
    for (let i = 0; i < partNumber - 1; i++) start += sizes[i]!;
    return { entry, start, end: start + (sizes[partNumber - 1] ?? 0) - 1, count };
  }

  /**
   * Aborts the uploads begun longer ago than the abandon period, in every bucket; returns how many.
   * Every full node sweeps: two sweeps of one upload both end it, which is harmless.
   */
  sweep(): Promise<number> {
    this.#sweeping ??= this.#sweep()
      .catch((err: unknown) => {
        this.#log.warn({ err: errorMessage(err) }, 'multipart sweep failed; the next one tries again');
        return 0;
      })
      .finally(() => {
        this.#sweeping = undefined;
      });
    return this.#sweeping;
  }

  async #sweep(): Promise<number> {
    const cutoff = this.#now() - this.#abandonAfter;
    let ended = 0;
    let token: string | null = null;
    do {
      const page = await this.#tables.list(BUCKET_TABLE, BUCKET_PARTITION, { limit: SCAN_PAGE, ...(token ? { token } : {}) });
      token = page.token;
      for (const be of page.entries) {
        const b = await this.#objects.getBucket(be.sk);
        if (b === null) continue;
        for await (const e of this.#scan(UPLOAD_TABLE, b.id)) {
          const { key, uploadId } = parseUploadSortKey(e.sk);
          const rec = decodeUploadRecord(e.value, `upload record ${uploadId}`);
          if (rec.completed !== undefined) {
            if (rec.completed.at <= this.#now() - COMPLETED_KEEP_MS) await this.#tables.put({ table: UPLOAD_TABLE, pk: b.id, sk: e.sk }, null);
            continue;
          }
          if (rec.createdAt > cutoff) continue;
          await this.#end(b, key, uploadId, new Set());
          ended++;
          this.#log.info({ bucket: b.name, key: key.slice(0, 64), upload: uploadId }, 'abandoned multipart upload aborted');
        }
      }
    } while (token !== null);
    return ended;
  }

  /** Ends an upload: its record goes first (no part is accepted after), then every part not kept. */
  async #end(b: BucketEntry, key: string, uploadId: string, keep: ReadonlySet<string>, completed?: UploadRecord): Promise<void> {
    await this.#tables.put({ table: UPLOAD_TABLE, pk: b.id, sk: uploadSortKey(key, uploadId) }, completed ? encodeUploadRecord(completed) : null);
    const drop: string[] = [];
    const entries: string[] = [];
    for await (const e of this.#scan(PART_TABLE, uploadId)) {
      entries.push(e.sk);
      const p = decodePartRecord(e.value, `part record of ${uploadId}`);
      if (!keep.has(p.fileId)) drop.push(p.fileId);
    }
    await this.#removeFiles(drop);
    await eachLimited(entries, (sk) => this.#tables.put({ table: PART_TABLE, pk: uploadId, sk }, null));
  }

  async #removeFiles(fileIds: readonly string[]): Promise<void> {
    await eachLimited(fileIds, async (id) => {
      try {
        await this.#files.removeFile(id);
      } catch (err) {
        // Already removed (by another sweep or a retried abort) is the outcome wanted.
        if (!(err instanceof TesseraError && err.code === 'NOT_FOUND')) this.#log.warn({ err: errorMessage(err), file: id.slice(0, 16) }, 'a part file could not be removed');
      }
    });
  }

  /** The newest record of each part number above `after`, in order. */
  async *#latestParts(uploadId: string, after: number): AsyncGenerator<PartView> {
    let cur: PartView | undefined;
    const start = after > 0 ? `${partPrefix(after)}~` : undefined;
    for await (const e of this.#scan(PART_TABLE, uploadId, undefined, start)) {
      const n = parsePartSortKey(e.sk);
      const p: PartView = { partNumber: n, ...decodePartRecord(e.value, `part record of ${uploadId}`) };
      if (cur !== undefined && cur.partNumber !== n) yield cur;
      cur = p;
    }
    if (cur !== undefined) yield cur;
  }

  async *#scan(table: string, pk: string, prefix?: string, after?: string): AsyncGenerator<{ sk: string; value: Buffer }> {
    let token: string | null = null;
    let first = true;
    while (first || token !== null) {
      const page = await this.#tables.list(table, pk, { limit: SCAN_PAGE, ...(prefix ? { prefix } : {}), ...(token ? { token } : first && after !== undefined ? { after } : {}) });
      first = false;
      token = page.token;
      for (const e of page.entries) if (e.value !== null) yield { sk: e.sk, value: e.value };
    }
  }
}

/** Runs `fn` over `items`, REMOVE_CONCURRENCY at a time. */
async function eachLimited<T>(items: readonly T[], fn: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(REMOVE_CONCURRENCY, items.length) }, worker));
}

function pageLimit(limit: number | undefined): number {
  if (limit === undefined) return MAX_MULTIPART_PAGE;
  if (!Number.isInteger(limit) || limit < 0 || limit > MAX_MULTIPART_PAGE) throw badInput(`listing limit must be 0..${MAX_MULTIPART_PAGE}, got ${limit}`);
  return limit;
}
