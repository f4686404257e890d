/**
 * Reed–Solomon erasure coding of one chunk into k data shards and m parity shards, over the
 * native @ronomon/reed-solomon (it runs in libuv's thread pool, so the event loop stays free).
 * Shards carry no checksums of their own: callers verify each shard by its id before decoding.
 */
import { createRequire } from 'node:module';
import { MAX_CHUNK_BYTES } from '../limits.js';
import { TesseraError, badInput, tooLarge, unavailable } from '../errors.js';
import { checkErasureParams } from './erasure-limits.js';

export { MAX_EC_DATA_SHARDS, MAX_EC_PARITY_SHARDS, MAX_EC_SHARDS, checkErasureParams } from './erasure-limits.js';

/** The library works on shards whose size is a multiple of 8 bytes. */
export const SHARD_ALIGN_BYTES = 8;

interface NativeReedSolomon {
  MAX_K: number;
  MAX_M: number;
  create(k: number, m: number): Buffer;
  encode(
    context: Buffer,
    sources: number,
    targets: number,
    buffer: Buffer,
    bufferOffset: number,
    bufferSize: number,
    parity: Buffer,
    parityOffset: number,
    paritySize: number,
    callback: (error?: Error) => void,
  ): void;
}

const native = createRequire(import.meta.url)('@ronomon/reed-solomon') as NativeReedSolomon;
// Contexts are immutable and safe to share between concurrent calls; at most 16 × 6 exist.
const contexts = new Map<number, Buffer>();

export interface ErasureParams {
  readonly k: number;
  readonly m: number;
}

export interface EncodedShards {
  /** k data shards then m parity shards, all `shardSize` bytes; they share one allocation. */
  readonly shards: Buffer[];
  readonly shardSize: number;
  /** Zero bytes appended after the data to fill the last data shard. */
  readonly padding: number;
}

function contextFor(k: number, m: number): Buffer {
  const slot = k * 64 + m;
  let context = contexts.get(slot);
  if (context === undefined) {
    context = native.create(k, m);
    contexts.set(slot, context);
  }
  return context;
}

/** Size of each shard for `dataBytes` of chunk split k ways. */
export function shardSizeFor(dataBytes: number, k: number): number {
  const raw = Math.max(1, Math.ceil(dataBytes / k));
  return Math.ceil(raw / SHARD_ALIGN_BYTES) * SHARD_ALIGN_BYTES;
}

function runEncode(k: number, m: number, sources: number, targets: number, block: Buffer, shardSize: number): Promise<void> {
  return new Promise((resolve, reject) => {
    native.encode(contextFor(k, m), sources, targets, block, 0, shardSize * k, block, shardSize * k, shardSize * m, (error) => {
      if (error) reject(new TesseraError('INTERNAL', `Reed–Solomon ${k}+${m} failed: ${error.message}`, undefined, { cause: error }));
      else resolve();
    });
  });
}

function maskOf(from: number, to: number): number {
  let mask = 0;
  for (let i = from; i < to; i++) mask |= 1 << i;
  return mask;
}

/** Splits `data` into k data shards (zero-padded to an aligned size) and computes m parity shards. */
export async function encodeShards(data: Uint8Array, { k, m }: ErasureParams): Promise<EncodedShards> {
  checkErasureParams(k, m);
  if (data.length === 0) throw badInput('cannot erasure-code an empty chunk');
  if (data.length > MAX_CHUNK_BYTES) throw tooLarge(`chunk is ${data.length} bytes; the limit is ${MAX_CHUNK_BYTES}`);
  const shardSize = shardSizeFor(data.length, k);
  const block = Buffer.allocUnsafeSlow(shardSize * (k + m));
  block.set(data, 0);
  block.fill(0, data.length, shardSize * k);
  await runEncode(k, m, maskOf(0, k), maskOf(k, k + m), block, shardSize);
  return { shards: splitBlock(block, shardSize, k + m), shardSize, padding: shardSize * k - data.length };
}

function splitBlock(block: Buffer, shardSize: number, count: number): Buffer[] {
  const shards: Buffer[] = [];
  for (let i = 0; i < count; i++) shards.push(block.subarray(i * shardSize, (i + 1) * shardSize));
  return shards;
}

type MaybeShard = Uint8Array | null | undefined;

/** Checks the shard array and returns the common shard size and which shards are present. */
function survey(shards: readonly MaybeShard[], k: number, m: number): { shardSize: number; present: number; count: number } {
  checkErasureParams(k, m);
  if (shards.length !== k + m) throw badInput(`expected ${k + m} shard slots for ${k}+${m}, got ${shards.length}`);
  let shardSize = -1;
  let present = 0;
  let count = 0;
  for (let i = 0; i < shards.length; i++) {
    const shard = shards[i];
    if (shard === null || shard === undefined) continue;
    if (shardSize === -1) shardSize = shard.length;
    if (shard.length !== shardSize) throw badInput(`shard ${i} is ${shard.length} bytes but shards before it are ${shardSize}`);
    present |= 1 << i;
    count++;
  }
  if (count < k) throw unavailable(`only ${count} of ${k + m} shards are available; ${k} are needed to rebuild the chunk`);
  if (shardSize === 0 || shardSize % SHARD_ALIGN_BYTES !== 0) {
    throw badInput(`shard size ${shardSize} is not a positive multiple of ${SHARD_ALIGN_BYTES}`);
  }
  if (shardSize * k > MAX_CHUNK_BYTES + k * SHARD_ALIGN_BYTES) {
    throw tooLarge(`shards of ${shardSize} bytes make a chunk over the ${MAX_CHUNK_BYTES}-byte limit`);
  }
  return { shardSize, present, count };
}

/**
 * Rebuilds the original `dataBytes` of a chunk from any k of its k+m shards (missing ones as
 * null/undefined). When every data shard is present nothing is decoded: they are just joined.
 */
export async function decodeShards(shards: readonly MaybeShard[], { k, m }: ErasureParams, dataBytes: number): Promise<Buffer> {
  const { shardSize, present } = survey(shards, k, m);
  if (!Number.isSafeInteger(dataBytes) || dataBytes < 1 || shardSizeFor(dataBytes, k) !== shardSize) {
    throw badInput(`chunk size ${dataBytes} does not match ${k} shards of ${shardSize} bytes`);
  }
  const dataMask = maskOf(0, k);
  const missingData = dataMask & ~present;
  if (missingData === 0) {
    const out = Buffer.allocUnsafeSlow(dataBytes);
    for (let i = 0; i < k; i++) {
      const shard = shards[i] as Uint8Array;
      const at = i * shardSize;
      if (at >= dataBytes) break;
      out.set(shard.subarray(0, Math.min(shardSize, dataBytes - at)), at);
    }
    return out;
  }
  const block = Buffer.allocUnsafeSlow(shardSize * (k + m));
  for (let i = 0; i < k + m; i++) {
    const shard = shards[i];
    if (shard !== null && shard !== undefined) block.set(shard, i * shardSize);
  }
  await runEncode(k, m, present, missingData, block, shardSize);
  return block.subarray(0, dataBytes);
}

/** Returns all k+m shards, recomputing any missing data or parity shard (for repair). */
export async function rebuildShards(shards: readonly MaybeShard[], { k, m }: ErasureParams): Promise<Buffer[]> {
  const { shardSize, present } = survey(shards, k, m);
  const block = Buffer.allocUnsafeSlow(shardSize * (k + m));
  for (let i = 0; i < k + m; i++) {
    const shard = shards[i];
    if (shard !== null && shard !== undefined) block.set(shard, i * shardSize);
  }
  const missing = maskOf(0, k + m) & ~present;
  if (missing !== 0) await runEncode(k, m, present, missing, block, shardSize);
  return splitBlock(block, shardSize, k + m);
}
