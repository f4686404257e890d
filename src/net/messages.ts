/** Control-section schemas of the frames this layer sends, with the bounds a peer must respect. */
import { z } from 'zod';
import { EXIT_CODES, type ErrorCode } from '../errors.js';

export const MAX_METHOD_CHARS = 128;
export const MAX_ERROR_MESSAGE_CHARS = 4096;
export const MAX_CAPABILITIES = 64;
export const MAX_CAPABILITY_CHARS = 64;
export const MAX_ADDR_CHARS = 256;
export const MAX_CLUSTER_ID_CHARS = 128;

export const requestControl = z.object({ m: z.string().min(1).max(MAX_METHOD_CHARS), b: z.unknown() });
export const responseControl = z.object({ b: z.unknown() });
export const errorControl = z.object({ c: z.string().max(32), m: z.string().max(MAX_ERROR_MESSAGE_CHARS) });

/**
 * The version is read leniently (any integer) so a peer of another version is answered with a
 * clear "version X vs Y" instead of a schema error.
 */
export const helloControl = z.object({
  v: z.number().int(),
  id: z.string().max(64),
  cluster: z.string().max(MAX_CLUSTER_ID_CHARS),
  caps: z.array(z.string().max(MAX_CAPABILITY_CHARS)).max(MAX_CAPABILITIES),
  addr: z.string().max(MAX_ADDR_CHARS),
});

const KNOWN_CODES: ReadonlySet<string> = new Set(Object.keys(EXIT_CODES));

/** A code from a peer is trusted only if this node knows it. */
export function toErrorCode(c: string): ErrorCode {
  return KNOWN_CODES.has(c) ? (c as ErrorCode) : 'INTERNAL';
}

export function truncateMessage(m: string): string {
  return m.length <= MAX_ERROR_MESSAGE_CHARS ? m : `${m.slice(0, MAX_ERROR_MESSAGE_CHARS - 1)}…`;
}
