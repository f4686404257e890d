/** Control-section schemas of the frames this layer sends, with the bounds a peer must respect. */
import { z } from 'zod';
import { EXIT_CODES, TesseraError, type ErrorCode } from '../errors.js';

export const MAX_METHOD_CHARS = 128;
export const MAX_ERROR_MESSAGE_CHARS = 4096;
export const MAX_CAPABILITIES = 64;
export const MAX_CAPABILITY_CHARS = 64;
export const MAX_ADDR_CHARS = 256;
export const MAX_CLUSTER_ID_CHARS = 128;

export interface RequestControl {
  m: string;
  b: unknown;
}

const notMatching = (where: string, msg: string) => new TesseraError('BAD_INPUT', `control message does not match its schema at ${where}: ${msg}`);

const isPlainMap = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);

/**
 * Request and response controls are checked by hand: they come with every call, and a schema
 * parse of these two-key maps was 2 % of a storage node's CPU under small block reads.
 */
export function checkRequestControl(v: unknown): RequestControl {
  if (!isPlainMap(v)) throw notMatching('body', 'expected a map');
  const m = v.m;
  if (typeof m !== 'string' || m.length < 1 || m.length > MAX_METHOD_CHARS) throw notMatching('m', `expected a method name of 1 to ${MAX_METHOD_CHARS} characters`);
  return { m, b: v.b };
}

export function checkResponseControl(v: unknown): { b: unknown } {
  if (!isPlainMap(v)) throw notMatching('body', 'expected a map');
  return { b: v.b };
}

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
