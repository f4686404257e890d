/** Identity, membership (gossip, failure detection) and placement. */
export * from './clock.js';
export * from './identity.js';
export * from './membership.js';
export { restartIncarnation } from './membership-rules.js';
export * from './placement.js';
export { AdvertisedCapacity, capacityToTell } from './advertised-capacity.js';
export * from './zone.js';
export * from './repair-plan.js';
export * from './node-caller.js';
export * from './quorum.js';
export * from './secret-rotation.js';
