/** Block volumes: the cluster's volume service, its records, and the device the NBD face serves. */
export * from './device.js';
export * from './volume-node.js';
export * from './volumes.js';
export type { CheckReport } from './volume/index.js';
