/** The S3 face's public surface for the composition root. */
export * from './handler.js';
export * from './errors.js';
export * from './xml.js';
export type { S3Objects, ObjectWriteOptions } from './objects.js';
export { multipartRoutes, type S3Multipart } from './multipart-routes.js';
