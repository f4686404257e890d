/**
 * What the S3 face needs of the object service (files/ ObjectService): buckets and objects whose
 * bodies stream through the file service. A narrowed type, so handlers can be exercised with an
 * in-memory one; the node passes the real service.
 */
import type { ObjectService } from '../files/index.js';

export type S3Objects = Pick<ObjectService,
  'createBucket' | 'getBucket' | 'setBucketAcl' | 'removeBucket' | 'listBuckets' | 'putObject' | 'headObject' | 'openObject' | 'readEntry' | 'removeObject' | 'listObjects' | 'recordObject'>;
export type { ObjectWriteOptions } from '../files/index.js';
