/** Small pieces the S3 operations share: bucket lookup, S3's names for missing things, dates and ETags. */
import { TesseraError } from '../errors.js';
import type { BucketEntry } from '../tables/index.js';
import { S3Error } from './errors.js';
import type { S3Context } from './handler.js';

export function bucketName(ctx: S3Context): string {
  if (ctx.bucket === undefined) throw new S3Error('InvalidRequest', 'this operation needs a bucket');
  return ctx.bucket;
}

export function objectKey(ctx: S3Context): string {
  if (ctx.key === undefined) throw new S3Error('InvalidRequest', 'this operation needs an object key');
  return ctx.key;
}

/** Bucket names S3 refuses are InvalidBucketName, not the generic InvalidArgument. */
function badName(e: unknown, bucket: string): never {
  if (e instanceof TesseraError && e.code === 'BAD_INPUT') throw new S3Error('InvalidBucketName', `'${bucket.slice(0, 80)}' is not a valid bucket name: ${e.message}`);
  throw e;
}

export async function requireBucket(ctx: S3Context, bucket = bucketName(ctx)): Promise<BucketEntry> {
  let b: BucketEntry | null;
  try {
    b = await ctx.objects.getBucket(bucket);
  } catch (e) {
    badName(e, bucket);
  }
  if (b === null) throw new S3Error('NoSuchBucket', `bucket '${bucket}' does not exist`);
  return b;
}

/** A NOT_FOUND from the object service, named: NoSuchBucket when the bucket is gone, else NoSuchKey. */
export async function whatIsMissing(ctx: S3Context, err: unknown, bucket: string, key: string): Promise<never> {
  if (err instanceof TesseraError && err.code === 'NOT_FOUND') {
    await requireBucket(ctx, bucket);
    throw new S3Error('NoSuchKey', `no object '${key.slice(0, 200)}' in bucket '${bucket}'`);
  }
  if (err instanceof TesseraError && err.code === 'BAD_INPUT' && /bucket name/.test(err.message)) badName(err, bucket);
  throw err;
}

export const quoteEtag = (etag: string): string => `"${etag}"`;
export const httpDate = (ms: number): string => new Date(ms).toUTCString();
/** S3's XML timestamps carry milliseconds: 2009-10-12T17:50:30.000Z. */
export const isoDate = (ms: number): string => new Date(ms).toISOString();

export function header(ctx: S3Context, name: string): string | undefined {
  const v = ctx.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/**
 * A count from the query (max-keys, max-buckets, max-parts, max-uploads): `max` when absent. S3
 * clamps a larger count to its maximum; `refuseAbove` refuses it instead, and `min` refuses a
 * smaller one.
 */
export function countParam(q: URLSearchParams, name: string, o: { max: number; min?: number; refuseAbove?: boolean }): number {
  const text = q.get(name);
  if (text === null || text === '') return o.max;
  const min = o.min ?? 0;
  const n = /^\d{1,10}$/.test(text) ? Number(text) : Number.NaN;
  if (!(n >= min) || (o.refuseAbove === true && n > o.max)) {
    throw new S3Error('InvalidArgument', `${name} '${text.slice(0, 20)}' is not a whole number from ${min} to ${o.max}`);
  }
  return Math.min(n, o.max);
}
