/**
 * GetBucketAcl, PutBucketAcl, GetObjectAcl and PutObjectAcl. Reading an ACL needs read on the
 * bucket; changing a bucket's needs the owner right on it; changing an object's needs read and
 * write (a key that may read the bytes and write the key could publish them anyway, by reading
 * and writing them again with x-amz-acl; a write-only key must not publish what it cannot read).
 */
import { TesseraError } from '../errors.js';
import { aclDocument, MAX_ACL_BODY_BYTES, parseAclDocument, storedAcl, type AclOwner, type CannedAcl } from './acl.js';
import { bucketOwner, objectOwner, requestedAcl } from './acl-access.js';
import { bucketName, objectKey, requireBucket, whatIsMissing } from './common.js';
import { S3Error } from './errors.js';
import type { S3Context, S3Route } from './handler.js';

/** The ACL a PutBucketAcl or PutObjectAcl sets: from x-amz-acl or from the body, not both. */
async function aclToSet(ctx: S3Context, owner: AclOwner): Promise<CannedAcl> {
  const fromHeader = requestedAcl(ctx);
  const body = await ctx.readBody(MAX_ACL_BODY_BYTES);
  if (fromHeader !== undefined && body.length > 0) throw new S3Error('InvalidRequest', 'give the ACL either as x-amz-acl or as an AccessControlPolicy body, not both');
  if (fromHeader !== undefined) return fromHeader;
  if (body.length === 0) throw new S3Error('MalformedACLError', 'give the ACL as x-amz-acl or as an AccessControlPolicy body');
  return parseAclDocument(body, owner);
}

async function requireObject(ctx: S3Context) {
  const bucket = bucketName(ctx);
  const key = objectKey(ctx);
  const entry = await ctx.objects.headObject(bucket, key).catch((e: unknown) => whatIsMissing(ctx, e, bucket, key));
  if (entry === null) return whatIsMissing(ctx, new TesseraError('NOT_FOUND', 'no such key'), bucket, key);
  return entry;
}

export function aclRoutes(): S3Route[] {
  return [
    {
      method: 'GET', target: 'bucket', query: ['acl'], access: 'read', name: 'GetBucketAcl',
      handle: async (ctx) => {
        const b = await requireBucket(ctx);
        return { body: aclDocument(bucketOwner(b), b.acl) };
      },
    },
    {
      method: 'PUT', target: 'bucket', query: ['acl'], access: 'owner', name: 'PutBucketAcl',
      handle: async (ctx) => {
        const b = await requireBucket(ctx);
        const acl = await aclToSet(ctx, bucketOwner(b));
        await ctx.objects.setBucketAcl(b.name, storedAcl(acl));
        return {};
      },
    },
    {
      method: 'GET', target: 'object', query: ['acl'], access: 'read', name: 'GetObjectAcl',
      handle: async (ctx) => {
        const o = await requireObject(ctx);
        return { body: aclDocument(objectOwner(o), o.acl) };
      },
    },
    {
      method: 'PUT', target: 'object', query: ['acl'], access: 'write', name: 'PutObjectAcl',
      handle: async (ctx) => {
        const bucket = bucketName(ctx);
        if (!ctx.may(bucket, 'read')) throw new S3Error('AccessDenied', `access key ${ctx.principal.accessKeyId} may not change ACLs in bucket '${bucket}': that needs read as well as write`);
        const { key, acl: _old, ...record } = await requireObject(ctx);
        const acl = storedAcl(await aclToSet(ctx, objectOwner({ key, ...record })));
        // The record is written again as it was read, with the new ACL and the same Last-Modified.
        // Racing a PUT of the same key, the later write wins, as between two PUTs.
        await ctx.objects.recordObject(bucket, key, { ...record, ...(acl ? { acl } : {}) });
        return {};
      },
    },
  ];
}
