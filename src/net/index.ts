export * from './types.js';
export * from './credentials.js';
export * from './addr.js';
export { Transport, type TransportOptions, DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_PENDING_HANDSHAKES } from './transport.js';
export { DEFAULT_CALL_TIMEOUT_MS, DEFAULT_MAX_IN_FLIGHT, DEFAULT_MAX_INBOUND_HANDLERS } from './connection.js';
export { DEFAULT_HANDSHAKE_TIMEOUT_MS } from './handshake.js';
export type { CallOptions, CallResult, IncomingRequest, PeerHello, Reply, RequestHandler, TransportCounters } from './types.js';
export { Semaphore } from './semaphore.js';
export { toErrorCode } from './messages.js';
