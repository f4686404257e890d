/**
 * Where ACLs meet requests: who owns a bucket or an object, what a write records about its
 * writer, and the checks a read runs when the caller's own key scope does not cover the bucket
 * (an anonymous caller, or a key scoped to other buckets). Those reads are served only as far as
 * the bucket's or the object's canned ACL grants READ (acl.ts).
 */
import { asRecordOwner, type BucketEntry, type ObjectEntry, type ObjectRecord, type StoredCannedAcl } from '../tables/index.js';
import { aclFromHeaders, aclGrantsRead, CLUSTER_OWNER, storedAcl, type AclOwner, type CannedAcl, type Requester } from './acl.js';
import { header, requireBucket } from './common.js';
import { S3Error } from './errors.js';
import type { S3Context, S3Principal } from './handler.js';

/** The principal of an unsigned request: no key, no bucket in scope. */
export const ANONYMOUS: S3Principal = { accessKeyId: '', name: 'anonymous', buckets: new Map() };

export const isAnonymous = (p: S3Principal): boolean => p.accessKeyId === '';
const requesterOf = (p: S3Principal): Requester => (isAnonymous(p) ? 'anonymous' : 'authenticated');

export const objectOwner = (o: ObjectEntry): AclOwner => o.owner ?? CLUSTER_OWNER;
export const bucketOwner = (b: BucketEntry): AclOwner => (b.owner !== undefined ? { id: b.owner, name: b.ownerName ?? b.owner } : CLUSTER_OWNER);

/** The ACL a write asks for (x-amz-acl; per-user grant headers are NotImplemented). */
export const requestedAcl = (ctx: S3Context): CannedAcl | undefined => aclFromHeaders((name) => header(ctx, name));

/** The record field for the ACL a write asks for: none for private, so the record reads as before ACLs. */
export function requestedAclField(ctx: S3Context): { acl?: StoredCannedAcl } {
  const acl = storedAcl(requestedAcl(ctx) ?? 'private');
  return acl ? { acl } : {};
}

/** What a PutObject or CopyObject records beside the bytes: the writing key and the requested ACL. */
export function writeAccess(ctx: S3Context): Pick<ObjectRecord, 'owner' | 'acl'> {
  const owner = asRecordOwner({ id: ctx.principal.accessKeyId, name: ctx.principal.name });
  return { ...(owner ? { owner } : {}), ...requestedAclField(ctx) };
}

function denied(ctx: S3Context, what: string): S3Error {
  const who = isAnonymous(ctx.principal) ? 'an anonymous request' : `access key ${ctx.principal.accessKeyId}`;
  return new S3Error('AccessDenied', `${who} may not ${what}: its ACL does not grant READ${isAnonymous(ctx.principal) ? '; sign the request with an access key' : ''}`);
}

/**
 * A GET or HEAD of an object outside the caller's scope: allowed when the object's ACL grants
 * READ. A missing object is NoSuchKey only where the bucket's ACL lets the caller list it (it
 * could see the key is absent anyway); elsewhere AccessDenied, so absence is not told to
 * strangers. A missing bucket is NoSuchBucket, as S3 answers (bucket names are not secret).
 */
export async function requireObjectRead(ctx: S3Context, bucket: string, entry: ObjectEntry | null): Promise<void> {
  const who = requesterOf(ctx.principal);
  if (entry !== null) {
    if (!aclGrantsRead(entry.acl, who)) throw denied(ctx, `read '${entry.key.slice(0, 200)}' in bucket '${bucket}'`);
    return;
  }
  const b = await requireBucket(ctx, bucket);
  if (!aclGrantsRead(b.acl, who)) throw denied(ctx, `read bucket '${bucket}'`);
}

/** A listing of a bucket outside the caller's scope: allowed when the bucket's ACL grants READ. */
export function requireListRead(ctx: S3Context, b: BucketEntry): void {
  if (!aclGrantsRead(b.acl, requesterOf(ctx.principal))) throw denied(ctx, `list bucket '${b.name}'`);
}
