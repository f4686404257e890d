/**
 * Service and bucket operations: ListBuckets, CreateBucket (with a redundancy policy),
 * DeleteBucket, HeadBucket, GetBucketLocation, GetBucketVersioning (unversioned).
 */
import { TesseraError } from '../errors.js';
import { parsePolicy, type RedundancyPolicy } from '../content/index.js';
import type { BucketEntry } from '../tables/index.js';
import { requestedAclField } from './acl-access.js';
import { bucketName, countParam, header, isoDate, requireBucket } from './common.js';
import { S3Error } from './errors.js';
import type { S3Route } from './handler.js';
import { el, parseXmlBody, xmlDocument } from './xml.js';

/** Header naming a new bucket's redundancy: `3` (replicas) or `4+2` (erasure coding), as `tessera put` takes. */
export const REDUNDANCY_HEADER = 'x-tessera-redundancy';
/** Buckets ListBuckets returns at most (S3's own default quota is far lower). */
export const MAX_LISTED_BUCKETS = 10_000;
/** CreateBucketConfiguration is a LocationConstraint and little else. */
export const MAX_CREATE_BUCKET_BODY_BYTES = 16 << 10;

async function allBuckets(list: (token?: string) => Promise<{ items: BucketEntry[]; token: string | null }>): Promise<BucketEntry[]> {
  const out: BucketEntry[] = [];
  let token: string | undefined;
  do {
    const page = await list(token);
    out.push(...page.items);
    token = page.token ?? undefined;
  } while (token !== undefined && out.length < MAX_LISTED_BUCKETS);
  return out.slice(0, MAX_LISTED_BUCKETS);
}

/** A ListBuckets continuation token is the last name given, base64url; a bucket name is at most 63 characters. */
function bucketTokenAfter(t: string): string {
  const name = t.length <= 88 && /^[A-Za-z0-9_-]+$/.test(t) ? Buffer.from(t, 'base64url').toString('utf8') : '';
  if (!/^[a-z0-9.-]{1,63}$/.test(name)) throw new S3Error('InvalidArgument', 'the continuation-token is not one this endpoint gave; start the listing again');
  return name;
}

function policyFrom(text: string | undefined): RedundancyPolicy | undefined {
  if (text === undefined) return undefined;
  try {
    return parsePolicy(text.trim());
  } catch (e) {
    throw new S3Error('InvalidArgument', `${REDUNDANCY_HEADER}: ${(e as Error).message}`);
  }
}

export function bucketRoutes(): S3Route[] {
  return [
    {
      method: 'GET', target: 'service', access: 'none', name: 'ListBuckets',
      handle: async (ctx) => {
        const max = countParam(ctx.query, 'max-buckets', { max: MAX_LISTED_BUCKETS, min: 1, refuseAbove: true });
        const token = ctx.query.get('continuation-token');
        const after = token !== null && token !== '' ? bucketTokenAfter(token) : '';
        const prefix = ctx.query.get('prefix') ?? '';
        const visible = (await allBuckets((t) => ctx.objects.listBuckets({ limit: 1000, ...(t ? { token: t } : {}) })))
          .filter((b) => (ctx.principal.buckets === null || ctx.principal.buckets.has(b.name)) && b.name > after && b.name.startsWith(prefix));
        const buckets = visible.slice(0, max);
        const more = visible.length > max;
        return {
          body: xmlDocument('ListAllMyBucketsResult',
            // As S3: the owner named is the one asking.
            el('Owner', el('ID', ctx.principal.accessKeyId), el('DisplayName', ctx.principal.name)),
            el('Buckets', buckets.map((b) => el('Bucket', el('Name', b.name), el('CreationDate', isoDate(b.createdAt))))),
            more ? el('ContinuationToken', Buffer.from(buckets[buckets.length - 1]!.name).toString('base64url')) : null,
            ctx.query.has('prefix') ? el('Prefix', prefix) : null),
        };
      },
    },
    {
      method: 'PUT', target: 'bucket', access: 'owner', name: 'CreateBucket',
      handle: async (ctx) => {
        const name = bucketName(ctx);
        // Only a key for every bucket creates buckets, or a key scoped as the owner of this name.
        const policy = policyFrom(header(ctx, REDUNDANCY_HEADER));
        const aclField = requestedAclField(ctx);
        const body = await ctx.readBody(MAX_CREATE_BUCKET_BODY_BYTES);
        if (body.length > 0) parseXmlBody(body, 'CreateBucketConfiguration');
        try {
          await ctx.objects.createBucket(name, policy, ctx.principal.accessKeyId, { ownerName: ctx.principal.name, ...aclField });
        } catch (e) {
          if (e instanceof TesseraError && e.code === 'CONFLICT') {
            const existing = await ctx.objects.getBucket(name);
            // As S3 in us-east-1 (the region tessera reports): creating your own bucket again succeeds and changes nothing.
            if (existing?.owner === ctx.principal.accessKeyId) return { headers: { location: `/${name}` } };
            if (existing?.owner !== undefined) throw new S3Error('BucketAlreadyExists', `bucket '${name}' belongs to another access key; choose another name`);
            throw new S3Error('BucketAlreadyOwnedByYou', `bucket '${name}' already exists`);
          }
          if (e instanceof TesseraError && e.code === 'BAD_INPUT') throw new S3Error('InvalidBucketName', e.message);
          throw e;
        }
        return { headers: { location: `/${name}` } };
      },
    },
    {
      method: 'DELETE', target: 'bucket', access: 'owner', name: 'DeleteBucket',
      handle: async (ctx) => {
        const name = bucketName(ctx);
        try {
          await ctx.objects.removeBucket(name);
        } catch (e) {
          if (e instanceof TesseraError && e.code === 'CONFLICT') throw new S3Error('BucketNotEmpty', `bucket '${name}' is not empty; delete its objects first`);
          if (e instanceof TesseraError && e.code === 'NOT_FOUND') throw new S3Error('NoSuchBucket', `bucket '${name}' does not exist`);
          throw e;
        }
        return { status: 204 };
      },
    },
    {
      method: 'HEAD', target: 'bucket', access: 'read', name: 'HeadBucket',
      handle: async (ctx) => {
        await requireBucket(ctx);
        return {};
      },
    },
    {
      method: 'GET', target: 'bucket', query: ['location'], access: 'read', name: 'GetBucketLocation',
      handle: async (ctx) => {
        await requireBucket(ctx);
        // Empty is us-east-1 to every client; tessera accepts any region name in signatures.
        return { body: xmlDocument('LocationConstraint') };
      },
    },
    {
      method: 'GET', target: 'bucket', query: ['versioning'], access: 'read', name: 'GetBucketVersioning',
      handle: async (ctx) => {
        await requireBucket(ctx);
        return { body: xmlDocument('VersioningConfiguration') };
      },
    },
  ];
}
