/** Bounds and defaults of the files layer. Every count or length a peer or user sends is checked against one of these. */

/** Chunks a put or get keeps in flight at once; memory is about this × chunk size per transfer. */
export const DEFAULT_WINDOW_CHUNKS = 16;
export const MAX_WINDOW_CHUNKS = 64;
/** Chunks whose placement and dedup check travel together in one batched claim. */
export const CLAIM_BATCH_CHUNKS = 4;
/** Ids in one batched has/claim request: 32 bytes each keeps the request far below the control limit. */
export const MAX_IDS_PER_REQUEST = 1024;
/** How long one chunk transfer to or from one holder may take before that holder counts as failed. */
export const CHUNK_CALL_TIMEOUT_MS = 30_000;
/** Control calls (claims, commits, tombstones). */
export const CONTROL_CALL_TIMEOUT_MS = 10_000;
/**
 * Holders that must take a removal or an erasure-coded file's commit before it
 * succeeds: anti-entropy spreads them to every node later, and two keep one through the loss of a
 * node until then.
 */
export const SPREAD_QUORUM = 2;
/** Grace period before a chunk with no references is deleted. */
export const DEFAULT_GC_GRACE_MS = 10 * 60_000;
export const MAX_GC_GRACE_MS = 30 * 24 * 3600_000;
/** Unreferenced chunks one sweep deletes at most; the next sweep continues. */
export const GC_SWEEP_BATCH = 2048;
/** A put that stopped sending to a node for this long is presumed dead there (if no peer saw it commit). */
export const DEFAULT_PENDING_UPLOAD_TTL_MS = 15 * 60_000;
/** How often a node pulls tombstones from a peer even when membership is quiet. */
export const DEFAULT_ANTI_ENTROPY_INTERVAL_MS = 30_000;

/** Records in one page of a tombstone listing (or of old name records being migrated), and the bytes they may take. */
export const MAX_LIST_PAGE_RECORDS = 512;
export const MAX_LIST_PAGE_BYTES = 160 << 10;
/** Pages of tombstones one anti-entropy pull walks per peer. */
export const MAX_LIST_PAGES = 2_000;
/** Per-chunk detail returned by stat; counts still cover every chunk. */
export const MAX_STAT_CHUNKS = 4096;

/** Default byte budget of the ciphertext cache a node keeps for the gets it serves. */
export const DEFAULT_CACHE_BYTES = 32 << 20;
/** Drop refs in transactions of this many entries, so one huge file cannot make one huge commit. */
export const REF_TXN_BATCH = 1024;
