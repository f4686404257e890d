/** ListObjects (V1), ListObjectsV2 and ListObjectVersions (as an unversioned bucket answers). */
import type { ObjectEntry } from '../tables/index.js';
import { objectOwner, requireListRead } from './acl-access.js';
import { bucketName, countParam, isoDate, quoteEtag, requireBucket } from './common.js';
import { S3Error } from './errors.js';
import type { S3Context, S3Route } from './handler.js';
import { listKeys, MAX_LIST_KEYS, type ListResult } from './listing.js';
import { uriEncode } from './sigv4.js';
import { el, xmlDocument, type Xml } from './xml.js';

/** Continuation tokens are opaque to clients: a version byte and the key to continue after. */
const TOKEN_VERSION = 1;
const MAX_TOKEN_CHARS = 2048;

function encodeToken(after: string): string {
  return Buffer.concat([Buffer.from([TOKEN_VERSION]), Buffer.from(after, 'utf8')]).toString('base64url');
}

function decodeToken(t: string): string {
  const b = t.length <= MAX_TOKEN_CHARS && /^[A-Za-z0-9_-]+={0,2}$/.test(t) ? Buffer.from(t, 'base64url') : Buffer.alloc(0);
  if (b.length < 1 || b[0] !== TOKEN_VERSION) throw new S3Error('InvalidArgument', 'the continuation-token is not one this endpoint gave; start the listing again');
  return b.subarray(1).toString('utf8');
}

interface ListParams {
  prefix: string;
  delimiter: string;
  encode: (s: string) => string;
  encodingType: string | undefined;
}

function params(ctx: S3Context): ListParams {
  const et = ctx.query.get('encoding-type') ?? undefined;
  if (et !== undefined && et !== 'url') throw new S3Error('InvalidArgument', `encoding-type '${et.slice(0, 20)}' is not supported; the only value is url`);
  return {
    prefix: ctx.query.get('prefix') ?? '',
    delimiter: ctx.query.get('delimiter') ?? '',
    encode: et === 'url' ? (s) => uriEncode(s, false) : (s) => s,
    encodingType: et,
  };
}

async function run(ctx: S3Context, p: ListParams, after: string, maxKeys: number): Promise<ListResult> {
  const bucket = bucketName(ctx);
  const b = await requireBucket(ctx, bucket);
  if (!ctx.may(bucket, 'read')) requireListRead(ctx, b);
  return listKeys((o) => ctx.objects.listObjects(bucket, o), { prefix: p.prefix, delimiter: p.delimiter, after, maxKeys });
}

/** The elements every listing carries in the same order. */
const common = (p: ListParams, maxKeys: number, r: ListResult): Xml[] => [
  el('MaxKeys', maxKeys),
  ...(p.delimiter !== '' ? [el('Delimiter', p.encode(p.delimiter))] : []),
  ...(p.encodingType ? [el('EncodingType', p.encodingType)] : []),
  el('IsTruncated', r.truncated),
];

const owner = (o: ObjectEntry) => {
  const who = objectOwner(o);
  return el('Owner', el('ID', who.id), el('DisplayName', who.name));
};

/** Owners (access key ids and names) are shown only to callers whose own scope covers the bucket, not to those an ACL lets in. */
const showOwners = (ctx: S3Context, asked: boolean) => asked && ctx.bucket !== undefined && ctx.may(ctx.bucket, 'read');

function contentsOf(items: ObjectEntry[], p: ListParams, withOwner: boolean): Xml[] {
  return items.map((o) => el('Contents',
    el('Key', p.encode(o.key)),
    el('LastModified', isoDate(o.mtime)),
    el('ETag', quoteEtag(o.etag)),
    el('Size', o.size),
    el('StorageClass', 'STANDARD'),
    withOwner ? owner(o) : null));
}

const prefixesOf = (r: ListResult, p: ListParams): Xml[] => r.commonPrefixes.map((cp) => el('CommonPrefixes', el('Prefix', p.encode(cp))));

export function listRoutes(): S3Route[] {
  return [
    {
      method: 'GET', target: 'bucket', query: ['list-type'], access: 'read', aclRead: true, name: 'ListObjectsV2',
      handle: async (ctx) => {
        if (ctx.query.get('list-type') !== '2') throw new S3Error('InvalidArgument', 'list-type must be 2');
        const p = params(ctx);
        const maxKeys = countParam(ctx.query, 'max-keys', { max: MAX_LIST_KEYS });
        const token = ctx.query.get('continuation-token');
        const startAfter = ctx.query.get('start-after') ?? '';
        // An empty token is no token (S3 lists from the start, and echoes it back).
        const after = token !== null && token !== '' ? decodeToken(token) : startAfter;
        const r = await run(ctx, p, after, maxKeys);
        const fetchOwner = showOwners(ctx, ctx.query.get('fetch-owner') === 'true');
        return {
          body: xmlDocument('ListBucketResult',
            el('Name', ctx.bucket),
            el('Prefix', p.encode(p.prefix)),
            startAfter !== '' ? el('StartAfter', p.encode(startAfter)) : null,
            token !== null ? el('ContinuationToken', token) : null,
            r.truncated && r.next !== undefined ? el('NextContinuationToken', encodeToken(r.next)) : null,
            el('KeyCount', r.contents.length + r.commonPrefixes.length),
            common(p, maxKeys, r),
            contentsOf(r.contents, p, fetchOwner),
            prefixesOf(r, p)),
        };
      },
    },
    {
      method: 'GET', target: 'bucket', access: 'read', aclRead: true, name: 'ListObjects',
      handle: async (ctx) => {
        const p = params(ctx);
        const maxKeys = countParam(ctx.query, 'max-keys', { max: MAX_LIST_KEYS });
        const marker = ctx.query.get('marker') ?? '';
        const r = await run(ctx, p, marker, maxKeys);
        return {
          body: xmlDocument('ListBucketResult',
            el('Name', ctx.bucket),
            // V1 leaves Prefix as given even with encoding-type=url (clients decode only Marker, NextMarker, Delimiter and keys).
            el('Prefix', p.prefix),
            el('Marker', p.encode(marker)),
            // S3 gives NextMarker only with a delimiter; without, clients continue from the last key.
            r.truncated && r.next !== undefined && p.delimiter !== '' ? el('NextMarker', p.encode(r.next)) : null,
            common(p, maxKeys, r),
            contentsOf(r.contents, p, showOwners(ctx, true)),
            prefixesOf(r, p)),
        };
      },
    },
    {
      method: 'GET', target: 'bucket', query: ['versions'], access: 'read', name: 'ListObjectVersions',
      handle: async (ctx) => {
        const p = params(ctx);
        const maxKeys = countParam(ctx.query, 'max-keys', { max: MAX_LIST_KEYS });
        const marker = ctx.query.get('key-marker') ?? '';
        const r = await run(ctx, p, marker, maxKeys);
        return {
          body: xmlDocument('ListVersionsResult',
            el('Name', ctx.bucket),
            el('Prefix', p.encode(p.prefix)),
            el('KeyMarker', p.encode(marker)),
            el('VersionIdMarker', ''),
            r.truncated && r.next !== undefined ? [el('NextKeyMarker', p.encode(r.next)), el('NextVersionIdMarker', 'null')] : null,
            common(p, maxKeys, r),
            r.contents.map((o) => el('Version',
              el('Key', p.encode(o.key)), el('VersionId', 'null'), el('IsLatest', true), el('LastModified', isoDate(o.mtime)),
              el('ETag', quoteEtag(o.etag)), el('Size', o.size), el('StorageClass', 'STANDARD'), owner(o))),
            prefixesOf(r, p)),
        };
      },
    },
  ];
}
