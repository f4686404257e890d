/**
 * The shape of erasure coding a chunk may have, without the native coder: boundaries that only
 * check a request (the CLI, the API) load this and not the library.
 */
import { badInput } from '../errors.js';

/** Most data shards per chunk; more would spread a chunk over more nodes than a cluster has. */
export const MAX_EC_DATA_SHARDS = 16;
/** Most parity shards per chunk (the native library's own limit is 6). */
export const MAX_EC_PARITY_SHARDS = 6;
/** Most shards in total, so a chunk's shards can sit on distinct nodes of a modest cluster. */
export const MAX_EC_SHARDS = 20;

export function checkErasureParams(k: number, m: number): void {
  if (!Number.isInteger(k) || k < 1 || k > MAX_EC_DATA_SHARDS) {
    throw badInput(`erasure coding needs 1..${MAX_EC_DATA_SHARDS} data shards, not ${k}`);
  }
  if (!Number.isInteger(m) || m < 1 || m > MAX_EC_PARITY_SHARDS) {
    throw badInput(`erasure coding needs 1..${MAX_EC_PARITY_SHARDS} parity shards, not ${m}`);
  }
  if (k + m > MAX_EC_SHARDS) throw badInput(`erasure coding ${k}+${m} has ${k + m} shards; the limit is ${MAX_EC_SHARDS}`);
}
