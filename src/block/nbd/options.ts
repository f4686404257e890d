/**
 * Parsing of option data received during the handshake. Pure: each function takes the option's
 * bytes (already bounded by MAX_OPTION_BYTES) and returns either the parsed request or the
 * option-reply error to send, with a message naming the problem.
 */
import * as P from './protocol.js';
import { MAX_META_QUERIES } from './limits.js';

export type Parsed<T> = { ok: true; value: T } | { ok: false; reply: number; message: string };

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** A protocol string: valid UTF-8, no NUL, at most 4096 bytes. */
export function decodeString(b: Buffer, what: string): Parsed<string> {
  if (b.length > P.MAX_STRING_BYTES) return invalid(`${what} is ${b.length} bytes; the limit is ${P.MAX_STRING_BYTES}`);
  if (b.includes(0)) return invalid(`${what} contains a NUL byte`);
  try {
    return { ok: true, value: utf8.decode(b) };
  } catch {
    return invalid(`${what} is not valid UTF-8`);
  }
}

export interface InfoRequest {
  name: string;
  /** NBD_INFO_* types the client asked for. */
  requests: number[];
}

/** Data of NBD_OPT_INFO / NBD_OPT_GO: u32 name length, name, u16 count, count × u16. */
export function parseInfoRequest(data: Buffer): Parsed<InfoRequest> {
  if (data.length < 6) return invalid(`option data is ${data.length} bytes; INFO/GO needs at least 6`);
  const nameLen = data.readUInt32BE(0);
  if (nameLen > data.length - 6) return invalid(`export name length ${nameLen} exceeds the option data`);
  const name = decodeString(data.subarray(4, 4 + nameLen), 'export name');
  if (!name.ok) return name;
  const count = data.readUInt16BE(4 + nameLen);
  const rest = data.length - 6 - nameLen;
  if (rest !== count * 2) return invalid(`${count} information requests need ${count * 2} bytes, got ${rest}`);
  const requests: number[] = [];
  for (let i = 0; i < count; i++) requests.push(data.readUInt16BE(6 + nameLen + 2 * i));
  return { ok: true, value: { name: name.value, requests } };
}

export interface MetaContextRequest {
  exportName: string;
  queries: string[];
}

/** Data of NBD_OPT_{LIST,SET}_META_CONTEXT: u32 name length, name, u32 count, count × (u32 len, query). */
export function parseMetaContextRequest(data: Buffer): Parsed<MetaContextRequest> {
  if (data.length < 8) return invalid(`option data is ${data.length} bytes; a meta context request needs at least 8`);
  const nameLen = data.readUInt32BE(0);
  if (nameLen > data.length - 8) return invalid(`export name length ${nameLen} exceeds the option data`);
  const name = decodeString(data.subarray(4, 4 + nameLen), 'export name');
  if (!name.ok) return name;
  let at = 4 + nameLen;
  const count = data.readUInt32BE(at);
  at += 4;
  if (count > MAX_META_QUERIES) {
    return { ok: false, reply: P.REP_ERR_TOO_BIG, message: `${count} meta context queries; the limit is ${MAX_META_QUERIES}` };
  }
  const queries: string[] = [];
  for (let i = 0; i < count; i++) {
    if (data.length - at < 4) return invalid(`meta context query ${i} is truncated`);
    const len = data.readUInt32BE(at);
    at += 4;
    if (len > data.length - at) return invalid(`meta context query ${i} length ${len} exceeds the option data`);
    const q = decodeString(data.subarray(at, at + len), `meta context query ${i}`);
    if (!q.ok) return q;
    at += len;
    queries.push(q.value);
  }
  if (at !== data.length) return invalid(`${data.length - at} bytes follow the last meta context query`);
  return { ok: true, value: { exportName: name.value, queries } };
}

/**
 * Contexts named by the queries. `base:` is a wildcard when listing and selects nothing when
 * setting; unknown namespaces and leaves are ignored, as the spec requires. A query without a
 * namespace is rejected.
 */
export function matchMetaContexts(queries: string[], mode: 'list' | 'set'): Parsed<string[]> {
  if (queries.length === 0) return { ok: true, value: mode === 'list' ? [P.META_BASE_ALLOCATION] : [] };
  const found = new Set<string>();
  for (const q of queries) {
    const colon = q.indexOf(':');
    if (colon <= 0) return invalid(`meta context query "${q}" has no namespace (expected e.g. "${P.META_BASE_ALLOCATION}")`);
    if (q === P.META_BASE_ALLOCATION || (mode === 'list' && q === 'base:')) found.add(P.META_BASE_ALLOCATION);
  }
  return { ok: true, value: [...found] };
}

function invalid(message: string): Parsed<never> {
  return { ok: false, reply: P.REP_ERR_INVALID, message };
}
