/**
 * What the S3 face needs of the object service (files/ ObjectService): buckets and objects whose
 * bodies stream through the file service. Named here so handlers can be tested with an in-memory
 * one; the node passes the real service.
 */
import type { Readable } from 'node:stream';
import type { RedundancyPolicy } from '../content/index.js';
import type { BucketEntry, ObjectEntry, ObjectRecord, Page } from '../tables/index.js';

export interface ObjectWriteOptions {
  contentType?: string;
  userMeta?: Record<string, string>;
  policy?: RedundancyPolicy;
  /** Content-MD5: checked before the record is written; a mismatch fails with BAD_DIGEST and nothing is listed. */
  expectedMd5?: Buffer;
  expectedSize?: number;
}

export interface S3Objects {
  createBucket(name: string, policy?: RedundancyPolicy): Promise<BucketEntry>;
  getBucket(name: string): Promise<BucketEntry | null>;
  removeBucket(name: string): Promise<void>;
  listBuckets(opts: { limit?: number; token?: string }): Promise<Page<BucketEntry>>;
  putObject(bucket: string, key: string, body: Readable, opts?: ObjectWriteOptions): Promise<ObjectEntry>;
  headObject(bucket: string, key: string): Promise<ObjectEntry | null>;
  openObject(bucket: string, key: string, range?: { start: number; end: number }): Promise<{ entry: ObjectEntry; stream: Readable }>;
  removeObject(bucket: string, key: string): Promise<boolean>;
  listObjects(bucket: string, opts: { prefix?: string; after?: string; limit?: number; token?: string }): Promise<Page<ObjectEntry>>;
  recordObject(bucket: string, key: string, record: ObjectRecord): Promise<void>;
}
