/**
 * What the server advertises for one device: size, transmission flags and block size
 * constraints, derived from the BlockDevice and what the client negotiated.
 */
import type { BlockDevice } from '../index.js';
import { TesseraError } from '../../errors.js';
import * as P from './protocol.js';
import { MAX_PAYLOAD_BYTES } from './limits.js';

/** The spec caps the advertised minimum block size at 64 KiB. */
const MAX_MIN_BLOCK_BYTES = 1 << 16;
const MIN_PREFERRED_BLOCK_BYTES = 512;

export interface ExportInfo {
  size: number;
  flags: number;
  minBlock: number;
  preferredBlock: number;
  maxBlock: number;
}

const isPowerOfTwo = (n: number) => Number.isInteger(n) && n > 0 && (n & (n - 1)) === 0;

function floorPowerOfTwo(n: number): number {
  let p = 1;
  while (p * 2 <= n) p *= 2;
  return p;
}

/** Throws INTERNAL when the device breaks its own contract, so the export is refused, not served wrong. */
export function describeExport(device: BlockDevice, opts: { structuredReplies: boolean; maxPayloadBytes?: number }): ExportInfo {
  const { size, minBlockSize, preferredBlockSize } = device;
  if (!Number.isSafeInteger(size) || size < 0) throw new TesseraError('INTERNAL', `block device reports an invalid size ${size}`);
  if (!isPowerOfTwo(minBlockSize) || minBlockSize > MAX_MIN_BLOCK_BYTES) {
    throw new TesseraError('INTERNAL', `block device minBlockSize ${minBlockSize} is not a power of two ≤ ${MAX_MIN_BLOCK_BYTES}`);
  }
  const maxPayload = opts.maxPayloadBytes ?? MAX_PAYLOAD_BYTES;
  const maxBlock = Math.max(minBlockSize, maxPayload - (maxPayload % minBlockSize));
  // A stripe of three data units is not a power of two; the spec wants one, so round down.
  let preferredBlock = floorPowerOfTwo(Math.max(preferredBlockSize, minBlockSize, MIN_PREFERRED_BLOCK_BYTES));
  if (preferredBlock > maxBlock) preferredBlock = floorPowerOfTwo(maxBlock);
  let flags =
    P.TFLAG_HAS_FLAGS |
    P.TFLAG_SEND_FLUSH |
    P.TFLAG_SEND_FUA |
    P.TFLAG_SEND_TRIM |
    P.TFLAG_SEND_WRITE_ZEROES |
    P.TFLAG_SEND_CACHE;
  if (opts.structuredReplies) flags |= P.TFLAG_SEND_DF;
  if (device.multiConn) flags |= P.TFLAG_CAN_MULTI_CONN;
  return { size, flags, minBlock: minBlockSize, preferredBlock, maxBlock };
}
