/** Every S3 operation this face implements itself; multipart registers its own beside them. */
import { aclRoutes } from './acl-ops.js';
import { bucketRoutes } from './bucket-ops.js';
import type { S3Route } from './handler.js';
import { listRoutes } from './list-ops.js';
import { objectRoutes } from './object-ops.js';

export function coreS3Routes(): S3Route[] {
  return [...bucketRoutes(), ...listRoutes(), ...objectRoutes(), ...aclRoutes()];
}
