export { NbdServer, type NbdServerOptions, type NbdListenTarget, type NbdAddress } from './server.js';
export type { NbdCounters } from './counters.js';
export type { NbdCommandName } from './protocol.js';
export { MAX_PAYLOAD_BYTES } from './limits.js';
export { checkTlsPolicy, parsePskFile, NBD_TLS_MODES, type NbdTls, type NbdTlsMode, type NbdTlsCredentials } from './tls.js';
export { DEFAULT_IDLE_TIMEOUT_MS, MAX_IDLE_TIMEOUT_MS } from './limits.js';
