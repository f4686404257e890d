/** Bounds and defaults of self-healing: repair, rebalance, drain, scrub and erasure-coded stripes. */

/** A dead member's copies are recreated only after it has stayed dead this long (a blip costs nothing). */
export const DEFAULT_REPAIR_GRACE_MS = 5 * 60_000;
export const MAX_REPAIR_GRACE_MS = 7 * 24 * 3600_000;
/** Bytes per second one node spends recreating, moving or rebuilding copies. */
export const DEFAULT_REPAIR_RATE_BYTES = 64 << 20;
export const MIN_RATE_BYTES = 64 << 10;
export const MAX_RATE_BYTES = 16 * 2 ** 30;
/** A full reconcile pass runs at least this often even when membership is quiet. */
export const DEFAULT_REPAIR_INTERVAL_MS = 60_000;
export const MIN_REPAIR_INTERVAL_MS = 100;
export const MAX_REPAIR_INTERVAL_MS = 24 * 3600_000;
/** Local chunks examined together: one has-query per target node per batch. */
export const REPAIR_BATCH_CHUNKS = 256;
/** Copies one node pushes at once. */
export const REPAIR_CONCURRENCY = 4;
/** Nodes past a stripe's k+m targets that are asked for its shards (shards left behind by a join or drain). */
export const STRIPE_PROBE_EXTRA = 4;
/** Owners (committed uploads) sent along with a copy, so the new holder keeps it for the same files. */
export const MAX_OWNERS_PER_CHUNK = 64;
/** Most copies a chunk may ask for: replicas (16) or all shards of a stripe (20). */
export const MAX_HEAL_COPIES = 20;

/** Scrub re-reads every local chunk at this rate; a full pass then waits `interval` before the next. */
export const DEFAULT_SCRUB_RATE_BYTES = 32 << 20;
export const DEFAULT_SCRUB_INTERVAL_MS = 24 * 3600_000;
export const MIN_SCRUB_INTERVAL_MS = 1_000;
export const MAX_SCRUB_INTERVAL_MS = 30 * 24 * 3600_000;
/** Bad chunk ids one scrub report lists; the counts cover all of them. */
export const MAX_SCRUB_REPORT_IDS = 64;

/** Largest stripe descriptor accepted: 20 shard ids and a few numbers fit far below this. */
export const MAX_STRIPE_DESCRIPTOR_BYTES = 2048;
