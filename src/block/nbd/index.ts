export { NbdServer, type NbdServerOptions, type NbdListenTarget, type NbdAddress } from './server.js';
export type { NbdCounters } from './counters.js';
export type { NbdCommandName } from './protocol.js';
export { MAX_PAYLOAD_BYTES } from './limits.js';
