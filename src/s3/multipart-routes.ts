/**
 * The seven multipart operations of S3: CreateMultipartUpload, UploadPart, UploadPartCopy,
 * CompleteMultipartUpload, AbortMultipartUpload, ListParts and ListMultipartUploads, as routes
 * for the S3 router. The work is the files layer's MultipartService; here requests are parsed,
 * checked against their bounds, and answered in S3's XML and error codes.
 */
import type { Readable } from 'node:stream';
import type { CompletedPart, MultipartFault, MultipartService, PartView, UploadView } from '../files/index.js';
import { MAX_MULTIPART_PAGE, multipartFault } from '../files/index.js';
import { MAX_PART_NUMBER } from '../tables/index.js';
import { S3Error, toS3Error, type S3ErrorCode } from './errors.js';
import type { S3Context, S3Response, S3Route } from './handler.js';
import { el, parseXmlBody, xmlDocument, type XmlChild } from './xml.js';
import { bucketName, countParam, header, isoDate, objectKey, quoteEtag, whatIsMissing } from './common.js';
import { copySource, objectHeaders, storedHeadersOf, userMetaOf } from './object-ops.js';
import { requestedAclField } from './acl-access.js';

/** What the routes need of the multipart service (the node passes the real one; tests may pass another). */
export type S3Multipart = Pick<MultipartService, 'create' | 'uploadPart' | 'uploadPartCopy' | 'listParts' | 'listUploads' | 'complete' | 'abort' | 'partRange'>;

/** A CompleteMultipartUpload body: 10,000 parts of about 100 bytes each, with room for whitespace. */
export const MAX_COMPLETE_BODY_BYTES = 2 << 20;
const MD5_BASE64_CHARS = 24;

const FAULTS: Record<MultipartFault, S3ErrorCode> = {
  'no-such-bucket': 'NoSuchBucket',
  'no-such-upload': 'NoSuchUpload',
  'invalid-part': 'InvalidPart',
  'invalid-part-order': 'InvalidPartOrder',
  'entity-too-small': 'EntityTooSmall',
  malformed: 'MalformedXML',
};

function asS3(err: unknown): S3Error {
  const fault = multipartFault(err);
  if (fault !== undefined) return new S3Error(FAULTS[fault], (err as Error).message, { cause: err });
  return toS3Error(err);
}

/** Runs a handler; a lower layer's error leaves as the S3 error it means. */
const wrap = (fn: (ctx: S3Context) => Promise<S3Response | void>) => async (ctx: S3Context) => {
  try {
    return await fn(ctx);
  } catch (e) {
    throw asS3(e);
  }
};

function uploadIdOf(ctx: S3Context): string {
  return ctx.query.get('uploadId') ?? '';
}

function partNumberOf(ctx: S3Context): number {
  const text = ctx.query.get('partNumber') ?? '';
  const n = /^\d{1,5}$/.test(text) ? Number(text) : NaN;
  if (!Number.isInteger(n) || n < 1 || n > MAX_PART_NUMBER) throw new S3Error('InvalidArgument', `partNumber must be an integer from 1 to ${MAX_PART_NUMBER}; got '${text.slice(0, 20)}'`);
  return n;
}

/** A listing bound from the query: absent means the maximum; anything but 0..max is InvalidArgument. */
function contentMd5(ctx: S3Context): Buffer | undefined {
  const v = header(ctx, 'content-md5');
  if (v === undefined) return undefined;
  const b = Buffer.from(v, 'base64');
  if (v.length !== MD5_BASE64_CHARS || b.length !== 16) throw new S3Error('InvalidDigest', 'Content-MD5 must be the base64 of a 16-byte MD5 digest');
  return b;
}

/** `x-amz-copy-source-range: bytes=first-last` (both required, inclusive) within an object of `size` bytes. */
export function parseCopyRange(text: string, size: number): { start: number; end: number } {
  const m = /^bytes=(\d{1,16})-(\d{1,16})$/.exec(text.trim());
  if (!m) throw new S3Error('InvalidArgument', `x-amz-copy-source-range must be bytes=first-last; got '${text.slice(0, 40)}'`);
  const start = Number(m[1]);
  const end = Number(m[2]);
  if (end < start || end >= size) throw new S3Error('InvalidRange', `the range ${start}-${end} does not fit the source's ${size} bytes`);
  return { start, end };
}

const person = (u: UploadView, tag: string) => el(tag, el('ID', u.initiator.id), el('DisplayName', u.initiator.name));

/** S3's `encoding-type=url`: keys percent-encoded as a URI component, '/' kept. */
function encoder(ctx: S3Context): (s: string) => string {
  const type = ctx.query.get('encoding-type');
  if (type === null) return (s) => s;
  if (type !== 'url') throw new S3Error('InvalidArgument', `encoding-type must be 'url'; got '${type.slice(0, 20)}'`);
  return (s) => encodeURIComponent(s).replace(/%2F/g, '/');
}

/** Numeric character references (Go's XML encoder writes an ETag's quotes as `&#34;`), which the parser leaves as they are. */
function decodeCharRefs(s: string): string {
  return s.replace(/&#(x[0-9a-fA-F]{1,6}|[0-9]{1,7});/g, (m, n: string) => {
    const code = n.startsWith('x') ? Number.parseInt(n.slice(1), 16) : Number(n);
    return code > 0 && code <= 0x10ffff ? String.fromCodePoint(code) : m;
  });
}

function parseComplete(body: Buffer): CompletedPart[] {
  const doc = parseXmlBody(body, 'CompleteMultipartUpload');
  const raw = doc['Part'];
  if (!Array.isArray(raw) || raw.length === 0) throw new S3Error('MalformedXML', 'CompleteMultipartUpload must list at least one <Part>');
  if (raw.length > MAX_PART_NUMBER) throw new S3Error('MalformedXML', `CompleteMultipartUpload lists ${raw.length} parts; at most ${MAX_PART_NUMBER}`);
  return raw.map((p, i) => {
    const part = p as Record<string, unknown>;
    const n = typeof part['PartNumber'] === 'string' ? part['PartNumber'].trim() : '';
    const etag = typeof part['ETag'] === 'string' ? decodeCharRefs(part['ETag']) : '';
    if (!/^\d{1,5}$/.test(n) || etag === '') throw new S3Error('MalformedXML', `part ${i + 1} of CompleteMultipartUpload needs a PartNumber and an ETag`);
    const partNumber = Number(n);
    if (partNumber < 1 || partNumber > MAX_PART_NUMBER) throw new S3Error('InvalidArgument', `part number ${partNumber} is outside 1..${MAX_PART_NUMBER}`);
    return { partNumber, etag };
  });
}

export function multipartRoutes(mp: S3Multipart): S3Route[] {
  const create = wrap(async (ctx) => {
    const bucket = bucketName(ctx);
    const key = objectKey(ctx);
    const up = await mp.create(bucket, key, {
      ...(header(ctx, 'content-type') !== undefined ? { contentType: header(ctx, 'content-type')! } : {}),
      userMeta: userMetaOf(ctx),
      headers: storedHeadersOf(ctx),
      initiator: { id: ctx.principal.accessKeyId, name: ctx.principal.name },
      ...requestedAclField(ctx),
    });
    return { body: xmlDocument('InitiateMultipartUploadResult', el('Bucket', bucket), el('Key', key), el('UploadId', up.uploadId)) };
  });

  const uploadPart = wrap(async (ctx) => {
    const bucket = bucketName(ctx);
    const key = objectKey(ctx);
    const n = partNumberOf(ctx);
    const md5 = contentMd5(ctx);
    const size = ctx.bodyLength;
    const body: Readable = ctx.body();
    const part = await mp.uploadPart(bucket, key, uploadIdOf(ctx), n, body, { ...(md5 ? { expectedMd5: md5 } : {}), ...(size !== undefined ? { expectedSize: size } : {}) });
    return { headers: { ETag: quoteEtag(part.etag) } };
  });

  const uploadPartCopy = wrap(async (ctx) => {
    const bucket = bucketName(ctx);
    const key = objectKey(ctx);
    const n = partNumberOf(ctx);
    const source = copySource(ctx);
    if (!ctx.may(source.bucket, 'read')) throw new S3Error('AccessDenied', `this access key may not read bucket '${source.bucket}'`);
    const rangeText = header(ctx, 'x-amz-copy-source-range');
    let range: { start: number; end: number } | undefined;
    if (rangeText !== undefined) {
      // The range is checked against the source's size before any byte is read.
      const entry = await ctx.objects.headObject(source.bucket, source.key);
      if (entry === null) throw new S3Error('NoSuchKey', `no object '${source.key.slice(0, 200)}' in bucket '${source.bucket}' to copy from`);
      range = parseCopyRange(rangeText, entry.size);
    }
    const part = await mp.uploadPartCopy(bucket, key, uploadIdOf(ctx), n, { ...source, ...(range ? { range } : {}) });
    return { body: xmlDocument('CopyPartResult', el('LastModified', isoDate(part.mtime)), el('ETag', quoteEtag(part.etag))) };
  });

  const complete = wrap(async (ctx) => {
    const bucket = bucketName(ctx);
    const key = objectKey(ctx);
    const parts = parseComplete(await ctx.readBody(MAX_COMPLETE_BODY_BYTES));
    const done = await mp.complete(bucket, key, uploadIdOf(ctx), parts);
    return {
      body: xmlDocument('CompleteMultipartUploadResult', el('Location', `/${bucket}/${key}`), el('Bucket', bucket), el('Key', key), el('ETag', quoteEtag(done.etag))),
    };
  });

  const abort = wrap(async (ctx) => {
    await mp.abort(bucketName(ctx), objectKey(ctx), uploadIdOf(ctx));
    return { status: 204 };
  });

  const listParts = wrap(async (ctx) => {
    const bucket = bucketName(ctx);
    const key = objectKey(ctx);
    const markerText = ctx.query.get('part-number-marker') ?? '0';
    if (!/^\d{1,5}$/.test(markerText)) throw new S3Error('InvalidArgument', 'part-number-marker must be a part number');
    const limit = countParam(ctx.query, 'max-parts', { max: MAX_MULTIPART_PAGE });
    const r = await mp.listParts(bucket, key, uploadIdOf(ctx), { marker: Number(markerText), limit });
    const enc = encoder(ctx);
    return {
      body: xmlDocument(
        'ListPartsResult',
        el('Bucket', bucket),
        el('Key', enc(key)),
        el('UploadId', r.upload.uploadId),
        person(r.upload, 'Initiator'),
        person(r.upload, 'Owner'),
        el('StorageClass', 'STANDARD'),
        el('PartNumberMarker', markerText),
        el('NextPartNumberMarker', r.next ?? (r.parts.length > 0 ? r.parts[r.parts.length - 1]!.partNumber : 0)),
        el('MaxParts', limit),
        el('IsTruncated', r.truncated),
        r.parts.map((p: PartView) => el('Part', el('PartNumber', p.partNumber), el('LastModified', isoDate(p.mtime)), el('ETag', quoteEtag(p.etag)), el('Size', p.size))),
      ),
    };
  });

  const listUploads = wrap(async (ctx) => {
    const bucket = bucketName(ctx);
    const prefix = ctx.query.get('prefix') ?? '';
    const delimiter = ctx.query.get('delimiter') ?? '';
    const keyMarker = ctx.query.get('key-marker') ?? '';
    const uploadIdMarker = ctx.query.get('upload-id-marker') ?? '';
    const limit = countParam(ctx.query, 'max-uploads', { max: MAX_MULTIPART_PAGE });
    const enc = encoder(ctx);
    const uploads: UploadView[] = [];
    const prefixes: string[] = [];
    let truncated = false;
    let after = { keyMarker, uploadIdMarker };
    let lastKey = '';
    let lastId = '';
    // Keys under one common prefix count once; pages are read until `limit` entries are found.
    outer: for (let rounds = 0; rounds < MAX_LIST_ROUNDS; rounds++) {
      const page = await mp.listUploads(bucket, { ...(prefix ? { prefix } : {}), ...(after.keyMarker ? { keyMarker: after.keyMarker } : {}), ...(after.uploadIdMarker ? { uploadIdMarker: after.uploadIdMarker } : {}), limit: MAX_MULTIPART_PAGE });
      for (const u of page.uploads) {
        const cut = delimiter ? u.key.indexOf(delimiter, prefix.length) : -1;
        const common = cut >= 0 ? u.key.slice(0, cut + delimiter.length) : undefined;
        if (common !== undefined && prefixes[prefixes.length - 1] === common) continue;
        if (uploads.length + prefixes.length >= limit) {
          truncated = true;
          break outer;
        }
        if (common !== undefined) prefixes.push(common);
        else uploads.push(u);
        lastKey = u.key;
        lastId = u.uploadId;
      }
      if (!page.truncated) break;
      const last = page.uploads[page.uploads.length - 1]!;
      after = { keyMarker: last.key, uploadIdMarker: last.uploadId };
    }
    return {
      body: xmlDocument(
        'ListMultipartUploadsResult',
        el('Bucket', bucket),
        el('KeyMarker', enc(keyMarker)),
        el('UploadIdMarker', uploadIdMarker),
        el('NextKeyMarker', enc(truncated ? lastKey : '')),
        el('NextUploadIdMarker', truncated ? lastId : ''),
        delimiter ? el('Delimiter', enc(delimiter)) : null,
        el('Prefix', enc(prefix)),
        el('MaxUploads', limit),
        el('IsTruncated', truncated),
        uploads.map((u) => el('Upload', el('Key', enc(u.key)), el('UploadId', u.uploadId), person(u, 'Initiator'), person(u, 'Owner'), el('StorageClass', 'STANDARD'), el('Initiated', isoDate(u.createdAt)))),
        prefixes.map((p): XmlChild => el('CommonPrefixes', el('Prefix', enc(p)))),
      ),
    };
  });

  /** GetObject and HeadObject with ?partNumber: the bytes of one part as it was uploaded. */
  const getPart = (read: boolean) =>
    wrap(async (ctx) => {
      const bucket = bucketName(ctx);
      const key = objectKey(ctx);
      const n = partNumberOf(ctx);
      const r = await mp.partRange(bucket, key, n).catch((e: unknown) => (multipartFault(e) !== undefined ? Promise.reject(e) : whatIsMissing(ctx, e, bucket, key)));
      const size = r.end - r.start + 1;
      const headers: Record<string, string | number> = { ...objectHeaders(r.entry), 'x-amz-mp-parts-count': r.count, 'content-length': size };
      if (size > 0) headers['content-range'] = `bytes ${r.start}-${r.end}/${r.entry.size}`;
      if (!read || size === 0) return { status: 206, headers };
      const { stream } = await ctx.objects.openObject(bucket, key, { start: r.start, end: r.end });
      return { status: 206, headers, body: stream };
    });

  return [
    { method: 'GET', target: 'object', query: ['partNumber'], access: 'read', name: 'GetObjectPart', handle: getPart(true) },
    { method: 'HEAD', target: 'object', query: ['partNumber'], access: 'read', name: 'HeadObjectPart', handle: getPart(false) },
    { method: 'POST', target: 'object', query: ['uploads'], access: 'write', name: 'CreateMultipartUpload', handle: create },
    { method: 'PUT', target: 'object', query: ['partNumber', 'uploadId'], access: 'write', name: 'UploadPart', handle: uploadPart },
    { method: 'PUT', target: 'object', query: ['partNumber', 'uploadId'], header: 'x-amz-copy-source', access: 'write', name: 'UploadPartCopy', handle: uploadPartCopy },
    { method: 'POST', target: 'object', query: ['uploadId'], access: 'write', name: 'CompleteMultipartUpload', handle: complete },
    { method: 'DELETE', target: 'object', query: ['uploadId'], access: 'write', name: 'AbortMultipartUpload', handle: abort },
    { method: 'GET', target: 'object', query: ['uploadId'], access: 'read', name: 'ListParts', handle: listParts },
    { method: 'GET', target: 'bucket', query: ['uploads'], access: 'read', name: 'ListMultipartUploads', handle: listUploads },
  ];
}

/** Pages of uploads one ListMultipartUploads reads while folding keys into common prefixes. */
const MAX_LIST_ROUNDS = 16;

