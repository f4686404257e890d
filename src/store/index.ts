/** The node's local storage: chunk stores (disk, memory), the volume extent store, metadata (LMDB). */
export * from './chunk-store.js';
export * from './memory-store.js';
export * from './extent-store.js';
export * from './metadata.js';
export * from './open-disk.js';
export { fsError } from './fs-util.js';
export { lmdbAddonStatus, type LmdbAddonChoice } from './lmdb-addon.js';
