/**
 * Bounds the NBD face enforces on what clients send. Each has a test that crosses it.
 */

/** Largest READ/WRITE/CACHE/WRITE_ZEROES length (advertised as the maximum block size). 2^25 is
 *  the largest payload the spec says a client may expect every server to accept. */
export const MAX_PAYLOAD_BYTES = 32 << 20;
/** Largest option data the server reads into memory during the handshake; the longest legal
 *  option (a meta-context request with a few 4 KiB queries) fits with room to spare. */
export const MAX_OPTION_BYTES = 64 << 10;
/** Oversized option data up to this length is discarded unread and answered NBD_REP_ERR_TOO_BIG;
 *  beyond it the client is hostile or confused and is disconnected. */
export const MAX_DISCARDED_OPTION_BYTES = 16 << 20;
/** Options one connection may send before it must pick an export. */
export const MAX_OPTIONS_PER_HANDSHAKE = 256;
/** Queries in one NBD_OPT_{LIST,SET}_META_CONTEXT. */
export const MAX_META_QUERIES = 64;
/** Time allowed from accept to the end of option haggling. */
export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 30_000;
/** Requests one connection may have in flight; more wait unread in the socket (TCP backpressure). */
export const DEFAULT_MAX_IN_FLIGHT = 64;
/** Payload bytes (write data received, read data not yet flushed to the socket) one connection
 *  may hold; bounds memory per client at roughly this plus one request. */
export const DEFAULT_MAX_IN_FLIGHT_BYTES = 64 << 20;
/** Concurrent client connections; more are accepted and closed at once. */
export const DEFAULT_MAX_CONNECTIONS = 256;
/** Payload bytes in flight across every connection together: the server's memory for request
 *  data is this, not per-connection bytes times connections (64 MiB × 256 would be 16 GiB). */
export const DEFAULT_MAX_TOTAL_IN_FLIGHT_BYTES = 256 << 20;
/** A client connection with no request in flight and no traffic for this long is closed. A
 *  kernel nbd-client mount that may sit idle longer needs --nbd-idle-timeout 0. */
export const DEFAULT_IDLE_TIMEOUT_MS = 30 * 60_000;
export const MAX_IDLE_TIMEOUT_MS = 7 * 24 * 3_600_000;
/** How long close() waits for in-flight requests before dropping connections. */
export const DEFAULT_CLOSE_GRACE_MS = 5_000;
/** Size of the shared zero buffer used to honour WRITE_ZEROES with NO_HOLE. */
export const ZERO_FILL_CHUNK_BYTES = 1 << 20;
