/** The HTTP API face: server, routes, metrics, events, and the JSON shapes it speaks. */
export * from './server.js';
export * from './files-routes.js';
export * from './volume-routes.js';
export * from './bucket-routes.js';
export * from './metrics.js';
export * from './events.js';
export * from './openapi.js';
export * from './http-util.js';
export * from './types.js';
export * from './s3-key-routes.js';
