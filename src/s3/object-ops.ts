/**
 * Object operations: HeadObject, GetObject (Range, conditionals, response-* overrides),
 * PutObject (Content-MD5, x-amz-meta-*), CopyObject (zero-copy: the new record names the same
 * file, or carries the same sealed bytes when the object is inline), DeleteObject and DeleteObjects.
 */
import { createHash } from 'node:crypto';
import { TesseraError } from '../errors.js';
import { MAX_OBJECT_KEY_BYTES, MAX_STORED_HEADER_CHARS, MAX_USER_METADATA_BYTES, STORED_HEADER_NAMES, userMetaBytes, type ObjectEntry } from '../tables/index.js';
import { isAnonymous, requireObjectRead, writeAccess } from './acl-access.js';
import { bucketName, header, httpDate, isoDate, objectKey, quoteEtag, requireBucket, whatIsMissing } from './common.js';
import { checkConditions, parseRange } from './conditions.js';
import { S3Error } from './errors.js';
import type { S3Context, S3Route } from './handler.js';
import { el, MAX_XML_BODY_BYTES, parseXmlBody, xmlDocument } from './xml.js';

/** S3's limit on a single PUT; larger objects go up in parts. */
export const MAX_SINGLE_PUT_BYTES = 5 * 1024 ** 3;
/** Keys one DeleteObjects request names at most, as S3. */
export const MAX_DELETE_KEYS = 1000;
/** Deletions of one DeleteObjects request run this many at a time. */
const DELETE_CONCURRENCY = 16;
export const DEFAULT_CONTENT_TYPE = 'binary/octet-stream';
const META_PREFIX = 'x-amz-meta-';

const RESPONSE_OVERRIDES: Record<string, string> = {
  'response-content-type': 'content-type',
  'response-content-language': 'content-language',
  'response-expires': 'expires',
  'response-cache-control': 'cache-control',
  'response-content-disposition': 'content-disposition',
  'response-content-encoding': 'content-encoding',
};

function checkKey(key: string): void {
  const n = Buffer.byteLength(key, 'utf8');
  if (n > MAX_OBJECT_KEY_BYTES) throw new S3Error('KeyTooLongError', `the key is ${n} bytes; S3 keys are at most ${MAX_OBJECT_KEY_BYTES} bytes of UTF-8`);
}

export function userMetaOf(ctx: S3Context): Record<string, string> {
  const meta: Record<string, string> = {};
  for (const [name, v] of Object.entries(ctx.headers)) {
    if (!name.startsWith(META_PREFIX) || v === undefined) continue;
    meta[name.slice(META_PREFIX.length)] = Array.isArray(v) ? v.join(',') : v;
  }
  const n = userMetaBytes(meta);
  if (n > MAX_USER_METADATA_BYTES) throw new S3Error('MetadataTooLarge', `x-amz-meta-* headers hold ${n} bytes; S3 allows ${MAX_USER_METADATA_BYTES}`);
  return meta;
}

/** Cache-Control, Expires and the other headers an object keeps, as the request gives them. */
export function storedHeadersOf(ctx: S3Context): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of STORED_HEADER_NAMES) {
    const v = header(ctx, name);
    if (v === undefined) continue;
    if (v.length > MAX_STORED_HEADER_CHARS) throw new S3Error('InvalidArgument', `the ${name} header is ${v.length} characters; at most ${MAX_STORED_HEADER_CHARS} are kept`);
    out[name] = v;
  }
  return out;
}

/** The record's optional headers field: left out when there are none, as records written before it. */
const storedHeadersField = (h: Readonly<Record<string, string>> | undefined) => (h && Object.keys(h).length > 0 ? { headers: h } : {});

function md5Of(ctx: S3Context): Buffer | undefined {
  const v = header(ctx, 'content-md5');
  if (v === undefined) return undefined;
  const b = /^[A-Za-z0-9+/]{22}==$/.test(v.trim()) ? Buffer.from(v.trim(), 'base64') : Buffer.alloc(0);
  if (b.length !== 16) throw new S3Error('InvalidDigest', 'The Content-MD5 you specified is not valid: give the base64 of the 16-byte MD5');
  return b;
}

export function objectHeaders(o: ObjectEntry): Record<string, string | number> {
  const h: Record<string, string | number> = {
    etag: quoteEtag(o.etag),
    'last-modified': httpDate(o.mtime),
    'accept-ranges': 'bytes',
    'content-type': o.contentType || DEFAULT_CONTENT_TYPE,
  };
  for (const [k, v] of Object.entries(o.headers ?? {})) h[k] = v;
  for (const [k, v] of Object.entries(o.userMeta)) h[META_PREFIX + k] = v;
  return h;
}

function notModifiedHeaders(o: ObjectEntry): Record<string, string | number> {
  const h: Record<string, string | number> = { etag: quoteEtag(o.etag), 'last-modified': httpDate(o.mtime) };
  for (const name of ['cache-control', 'expires']) if (o.headers?.[name] !== undefined) h[name] = o.headers[name];
  return h;
}

function conditionsOf(ctx: S3Context, prefix = '') {
  return {
    ifMatch: header(ctx, `${prefix}if-match`),
    ifNoneMatch: header(ctx, `${prefix}if-none-match`),
    ifModifiedSince: header(ctx, `${prefix}if-modified-since`),
    ifUnmodifiedSince: header(ctx, `${prefix}if-unmodified-since`),
  };
}

async function getOrHead(ctx: S3Context, read: boolean): Promise<{ status: number; headers: Record<string, string | number>; pieces?: AsyncIterable<Buffer> }> {
  const bucket = bucketName(ctx);
  const key = objectKey(ctx);
  const entry = await ctx.objects.headObject(bucket, key).catch((e: unknown) => whatIsMissing(ctx, e, bucket, key));
  // Outside the caller's scope, the ACL decides before anything about the object is told.
  if (!ctx.may(bucket, 'read')) await requireObjectRead(ctx, bucket, entry);
  // As S3: a stranger's link must not make a public object be served as, say, text/html.
  if (isAnonymous(ctx.principal) && Object.keys(RESPONSE_OVERRIDES).some((q) => ctx.query.has(q))) {
    throw new S3Error('InvalidRequest', 'Request specific response headers cannot be used for anonymous GET requests; sign the request to override response headers');
  }
  if (entry === null) return whatIsMissing(ctx, new TesseraError('NOT_FOUND', 'no such key'), bucket, key);
  try {
    checkConditions(conditionsOf(ctx), entry.etag, entry.mtime, true);
  } catch (e) {
    // RFC 9110: a 304 carries the validators (ETag, Last-Modified) a 200 would have, so caches can refresh.
    if (e instanceof S3Error && e.code === 'NotModified') return { status: 304, headers: notModifiedHeaders(entry) };
    throw e;
  }
  const range = parseRange(header(ctx, 'range'), entry.size);
  const headers = objectHeaders(entry);
  for (const [q, h] of Object.entries(RESPONSE_OVERRIDES)) {
    const v = ctx.query.get(q);
    if (v !== null) headers[h] = v;
  }
  const length = range ? range.end - range.start + 1 : entry.size;
  headers['content-length'] = length;
  if (range) headers['content-range'] = `bytes ${range.start}-${range.end}/${entry.size}`;
  if (!read) return { status: range ? 206 : 200, headers };
  // The bytes of the entry just read, so they match the headers even if the key is written meanwhile.
  const pieces = await ctx.objects.readEntry(entry, range).catch((e: unknown) => whatIsMissing(ctx, e, bucket, key));
  return { status: range ? 206 : 200, headers, pieces };
}

export function copySource(ctx: S3Context): { bucket: string; key: string } {
  let v = header(ctx, 'x-amz-copy-source') ?? '';
  const q = v.indexOf('?');
  if (q >= 0) {
    const version = new URLSearchParams(v.slice(q + 1)).get('versionId');
    if (version !== null && version !== 'null') throw new S3Error('InvalidArgument', 'tessera buckets are unversioned: a copy source versionId other than null does not exist');
    v = v.slice(0, q);
  }
  let s: string;
  try {
    s = decodeURIComponent(v);
  } catch {
    throw new S3Error('InvalidArgument', 'x-amz-copy-source is not valid percent-encoding');
  }
  if (s.startsWith('/')) s = s.slice(1);
  const slash = s.indexOf('/');
  if (slash <= 0 || slash === s.length - 1) throw new S3Error('InvalidArgument', 'x-amz-copy-source must be BUCKET/KEY');
  return { bucket: s.slice(0, slash), key: s.slice(slash + 1) };
}

async function deleteObjects(ctx: S3Context) {
  const bucket = bucketName(ctx);
  await requireBucket(ctx, bucket);
  const body = await ctx.readBody(MAX_XML_BODY_BYTES);
  const md5 = md5Of(ctx);
  if (md5 && !createHash('md5').update(body).digest().equals(md5)) throw new S3Error('BadDigest', 'The Content-MD5 you specified did not match what was received');
  const doc = parseXmlBody(body, 'Delete');
  const objects = (doc.Object ?? []) as unknown[];
  if (!Array.isArray(objects) || objects.length === 0 || objects.length > MAX_DELETE_KEYS) {
    throw new S3Error('MalformedXML', `a DeleteObjects body names 1 to ${MAX_DELETE_KEYS} <Object> elements`);
  }
  const keys = objects.map((o) => {
    const k = (o as { Key?: unknown } | null)?.Key;
    if (typeof k !== 'string' || k === '') throw new S3Error('MalformedXML', 'every <Object> of a DeleteObjects body has a <Key>');
    return k;
  });
  const quiet = String(doc.Quiet ?? '').trim() === 'true';
  const results: Array<{ key: string; error?: S3Error }> = new Array(keys.length);
  let next = 0;
  const worker = async () => {
    while (next < keys.length) {
      const i = next++;
      const key = keys[i]!;
      try {
        checkKey(key);
        await ctx.objects.removeObject(bucket, key);
        results[i] = { key };
      } catch (e) {
        const err = e instanceof S3Error ? e : new S3Error(e instanceof TesseraError && e.code === 'BAD_INPUT' ? 'InvalidArgument' : 'InternalError', (e as Error).message);
        results[i] = { key, error: err };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(DELETE_CONCURRENCY, keys.length) }, worker));
  return {
    body: xmlDocument('DeleteResult', results.map((r) => r.error
      ? el('Error', el('Key', r.key), el('Code', r.error.code), el('Message', r.error.message))
      : quiet ? null : el('Deleted', el('Key', r.key)))),
  };
}

export function objectRoutes(): S3Route[] {
  return [
    { method: 'HEAD', target: 'object', access: 'read', aclRead: true, name: 'HeadObject', handle: (ctx) => getOrHead(ctx, false) },
    { method: 'GET', target: 'object', access: 'read', aclRead: true, name: 'GetObject', handle: (ctx) => getOrHead(ctx, true) },
    {
      method: 'PUT', target: 'object', access: 'write', name: 'PutObject',
      handle: async (ctx) => {
        const bucket = bucketName(ctx);
        const key = objectKey(ctx);
        checkKey(key);
        const size = ctx.bodyLength;
        if (size === undefined && header(ctx, 'transfer-encoding') === undefined) throw new S3Error('MissingContentLength', 'You must provide the Content-Length HTTP header');
        if (size !== undefined && size > MAX_SINGLE_PUT_BYTES) throw new S3Error('EntityTooLarge', `a single PUT carries at most ${MAX_SINGLE_PUT_BYTES} bytes; upload larger objects in parts`);
        const expectedMd5 = md5Of(ctx);
        const userMeta = userMetaOf(ctx);
        // A missing bucket fails the put before its body is read, and is named by whatIsMissing.
        const entry = await ctx.objects.putObject(bucket, key, ctx.body(), {
          contentType: header(ctx, 'content-type') ?? DEFAULT_CONTENT_TYPE,
          userMeta,
          headers: storedHeadersOf(ctx),
          access: writeAccess(ctx),
          ...(expectedMd5 ? { expectedMd5 } : {}),
          ...(size !== undefined ? { expectedSize: size } : {}),
        }).catch((e: unknown) => whatIsMissing(ctx, e, bucket, key));
        return { headers: { etag: quoteEtag(entry.etag) } };
      },
    },
    {
      method: 'PUT', target: 'object', header: 'x-amz-copy-source', access: 'write', name: 'CopyObject',
      handle: async (ctx) => {
        const bucket = bucketName(ctx);
        const key = objectKey(ctx);
        checkKey(key);
        const src = copySource(ctx);
        if (!ctx.may(src.bucket, 'read')) throw new S3Error('AccessDenied', `access key ${ctx.principal.accessKeyId} may not read bucket '${src.bucket}'`);
        await requireBucket(ctx, bucket);
        const source = await ctx.objects.headObject(src.bucket, src.key).catch((e: unknown) => whatIsMissing(ctx, e, src.bucket, src.key));
        if (source === null) return whatIsMissing(ctx, new TesseraError('NOT_FOUND', 'no such key'), src.bucket, src.key);
        checkConditions(conditionsOf(ctx, 'x-amz-copy-source-'), source.etag, source.mtime, false);
        const directive = (header(ctx, 'x-amz-metadata-directive') ?? 'COPY').toUpperCase();
        if (directive !== 'COPY' && directive !== 'REPLACE') throw new S3Error('InvalidArgument', `x-amz-metadata-directive '${directive.slice(0, 20)}' is neither COPY nor REPLACE`);
        if (directive === 'COPY' && src.bucket === bucket && src.key === key) {
          throw new S3Error('InvalidRequest', "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata");
        }
        const mtime = Date.now();
        // Zero-copy: the new key names the source's file; the object service counts the reference.
        await ctx.objects.recordObject(bucket, key, {
          fileId: source.fileId,
          size: source.size,
          etag: source.etag,
          checksums: source.checksums,
          contentType: directive === 'REPLACE' ? header(ctx, 'content-type') ?? DEFAULT_CONTENT_TYPE : source.contentType,
          userMeta: directive === 'REPLACE' ? userMetaOf(ctx) : source.userMeta,
          mtime,
          ...storedHeadersField(directive === 'REPLACE' ? storedHeadersOf(ctx) : source.headers),
          // An inline object's sealed bytes are the copy (they are not bound to the key).
          ...(source.inline !== undefined ? { inline: source.inline } : {}),
          // As S3: a copy belongs to the key that made it, with the ACL it asked for (not the source's).
          ...writeAccess(ctx),
        });
        return { body: xmlDocument('CopyObjectResult', el('LastModified', isoDate(mtime)), el('ETag', quoteEtag(source.etag))) };
      },
    },
    {
      method: 'DELETE', target: 'object', access: 'write', name: 'DeleteObject',
      handle: async (ctx) => {
        const bucket = bucketName(ctx);
        const key = objectKey(ctx);
        checkKey(key);
        await ctx.objects.removeObject(bucket, key).catch((e: unknown) => whatIsMissing(ctx, e, bucket, key));
        return { status: 204 };
      },
    },
    { method: 'POST', target: 'bucket', query: ['delete'], access: 'write', name: 'DeleteObjects', handle: deleteObjects },
  ];
}
