/** The S3 face's public surface for the composition root. */
export * from './handler.js';
export * from './errors.js';
export * from './xml.js';
export type { S3Objects, ObjectWriteOptions } from './objects.js';
export { multipartRoutes, type S3Multipart } from './multipart-routes.js';
export { S3Server, type S3ServerOptions, DEFAULT_S3_MAX_REQUESTS } from './server.js';
export { coreS3Routes } from './routes.js';
export { type StoredKey } from './principal.js';
export { bucketName, objectKey, requireBucket, whatIsMissing, quoteEtag, isoDate, httpDate, header } from './common.js';
export { objectHeaders, userMetaOf, DEFAULT_CONTENT_TYPE } from './object-ops.js';
