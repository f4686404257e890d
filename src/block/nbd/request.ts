/**
 * Validation of one transmission request against what was negotiated. Pure, so every error
 * number the spec prescribes can be tested without a socket.
 */
import * as P from './protocol.js';
import type { ExportInfo } from './export-info.js';

export interface NbdRequest {
  flags: number;
  type: number;
  handle: Buffer;
  offset: bigint;
  length: number;
}

export interface RequestContext {
  size: number;
  info: ExportInfo;
  structuredReplies: boolean;
  /** True when base:allocation was selected for this export. */
  metaContext: boolean;
}

export interface RequestProblem {
  error: number;
  message: string;
}

/** Commands whose length is bounded by the advertised maximum block size. */
const PAYLOAD_BOUND = new Set([P.CMD_READ, P.CMD_WRITE, P.CMD_CACHE, P.CMD_WRITE_ZEROES]);
/** Commands that address a range of the export. */
const RANGED = new Set([P.CMD_READ, P.CMD_WRITE, P.CMD_TRIM, P.CMD_CACHE, P.CMD_WRITE_ZEROES, P.CMD_BLOCK_STATUS]);

function allowedFlags(type: number, structured: boolean): number {
  // FUA is accepted on every command because SEND_FUA is advertised (the spec says so).
  switch (type) {
    case P.CMD_READ:
      return P.CMD_FLAG_FUA | (structured ? P.CMD_FLAG_DF : 0);
    case P.CMD_WRITE_ZEROES:
      return P.CMD_FLAG_FUA | P.CMD_FLAG_NO_HOLE;
    case P.CMD_BLOCK_STATUS:
      return P.CMD_FLAG_FUA | P.CMD_FLAG_REQ_ONE;
    default:
      return P.CMD_FLAG_FUA;
  }
}

export function checkRequest(req: NbdRequest, ctx: RequestContext): RequestProblem | null {
  const { type, flags, offset, length } = req;
  if (!(type in P.COMMAND_NAMES) || type === P.CMD_DISC) {
    return { error: P.NBD_EINVAL, message: `unknown command ${type}` };
  }
  const unknown = flags & ~allowedFlags(type, ctx.structuredReplies);
  if (unknown) return { error: P.NBD_EINVAL, message: `flags 0x${unknown.toString(16)} are not valid for ${P.COMMAND_NAMES[type as keyof typeof P.COMMAND_NAMES]}` };
  if (type === P.CMD_FLUSH) {
    if (offset !== 0n || length !== 0) return { error: P.NBD_EINVAL, message: 'flush offset and length must be zero' };
    return null;
  }
  if (type === P.CMD_BLOCK_STATUS) {
    if (!ctx.structuredReplies || !ctx.metaContext) {
      return { error: P.NBD_EINVAL, message: 'block status needs structured replies and the base:allocation meta context' };
    }
    if (length === 0) return { error: P.NBD_EINVAL, message: 'block status of zero bytes' };
  }
  if (!RANGED.has(type)) return null;
  if (PAYLOAD_BOUND.has(type) && length > ctx.info.maxBlock) {
    return { error: P.NBD_EINVAL, message: `length ${length} exceeds the maximum block size ${ctx.info.maxBlock}` };
  }
  const min = BigInt(ctx.info.minBlock);
  if (offset % min !== 0n || BigInt(length) % min !== 0n) {
    return { error: P.NBD_EINVAL, message: `offset ${offset} and length ${length} must be multiples of ${ctx.info.minBlock}` };
  }
  if (offset + BigInt(length) > BigInt(ctx.size) || offset > BigInt(ctx.size)) {
    const writes = type === P.CMD_WRITE || type === P.CMD_WRITE_ZEROES;
    return {
      error: writes ? P.NBD_ENOSPC : P.NBD_EINVAL,
      message: `range ${offset}+${length} lies beyond the end of the ${ctx.size}-byte export`,
    };
  }
  return null;
}
