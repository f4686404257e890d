/**
 * AWS Signature Version 4 as S3 uses it: the canonical request, the string to sign, the signing
 * key and the signature, for requests signed in the Authorization header and for presigned URLs.
 * Pure functions over the request's parts; no I/O.
 */
import { createHash, createHmac } from 'node:crypto';
import { S3Error } from './errors.js';

export const SIGV4_ALGORITHM = 'AWS4-HMAC-SHA256';
export const UNSIGNED_PAYLOAD = 'UNSIGNED-PAYLOAD';
export const STREAMING_SIGNED = 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD';
export const STREAMING_SIGNED_TRAILER = 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER';
export const STREAMING_UNSIGNED_TRAILER = 'STREAMING-UNSIGNED-PAYLOAD-TRAILER';
export const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
/** An Authorization header is a few hundred bytes; one far longer is not one. */
export const MAX_AUTH_HEADER_CHARS = 4096;
/** Headers a request may sign; S3 clients sign fewer than twenty. */
export const MAX_SIGNED_HEADERS = 64;
/** S3's limit on a presigned URL's lifetime: seven days. */
export const MAX_PRESIGNED_EXPIRES_S = 7 * 24 * 3600;

export interface Credential {
  readonly accessKeyId: string;
  /** yyyymmdd */
  readonly date: string;
  readonly region: string;
  readonly service: string;
}

export const credentialScope = (c: Credential): string => `${c.date}/${c.region}/${c.service}/aws4_request`;

export function sha256Hex(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

function hmac(key: Buffer | string, data: string): Buffer {
  return createHmac('sha256', key).update(data, 'utf8').digest();
}

export function signingKey(secret: string, date: string, region: string, service: string): Buffer {
  return hmac(hmac(hmac(hmac(`AWS4${secret}`, date), region), service), 'aws4_request');
}

export function signString(key: Buffer, stringToSign: string): string {
  return createHmac('sha256', key).update(stringToSign, 'utf8').digest('hex');
}

const ALL_UNRESERVED = /^[A-Za-z0-9\-._~]*$/;
const ALL_UNRESERVED_OR_SLASH = /^[A-Za-z0-9\-._~/]*$/;

/** RFC 3986 percent-encoding as SigV4 specifies: unreserved characters kept, everything else %XX in upper case. */
export function uriEncode(s: string, encodeSlash = true): string {
  // Most paths and query values need no encoding at all: every request signs its path.
  if ((encodeSlash ? ALL_UNRESERVED : ALL_UNRESERVED_OR_SLASH).test(s)) return s;
  let out = '';
  for (const b of Buffer.from(s, 'utf8')) {
    const c = String.fromCharCode(b);
    if (/[A-Za-z0-9\-._~]/.test(c) || (!encodeSlash && c === '/')) out += c;
    else out += `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

function decodePercent(s: string, what: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    throw new S3Error('InvalidArgument', `${what} is not valid percent-encoding`);
  }
}

/** The path as S3 canonicalises it: each segment decoded once and encoded again (S3 does not collapse `.` or `//`). */
export function canonicalUri(rawPath: string): string {
  if (rawPath === '') return '/';
  return rawPath.split('/').map((seg) => uriEncode(decodePercent(seg, 'the request path'))).join('/');
}

/** Query pairs as sent: split on & and the first =, percent-decoded (a '+' stays a '+', as SigV4 signs it). */
export function parseRawQuery(rawQuery: string): Array<[string, string]> {
  if (rawQuery === '') return [];
  return rawQuery.split('&').filter((p) => p !== '').map((p) => {
    const i = p.indexOf('=');
    const k = i < 0 ? p : p.slice(0, i);
    const v = i < 0 ? '' : p.slice(i + 1);
    return [decodePercent(k, 'a query parameter name'), decodePercent(v, 'a query parameter value')];
  });
}

export function canonicalQuery(pairs: ReadonlyArray<readonly [string, string]>, omit?: string): string {
  const enc = pairs.filter(([k]) => k !== omit).map(([k, v]) => [uriEncode(k), uriEncode(v)] as const);
  enc.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0));
  return enc.map(([k, v]) => `${k}=${v}`).join('&');
}

/** Header values as signed: several values joined by ',', each trimmed with inner runs of spaces collapsed. */
export function canonicalHeaderValue(values: readonly string[]): string {
  return values.map((v) => v.trim().replace(/\s+/g, ' ')).join(',');
}

export interface CanonicalRequestParts {
  method: string;
  rawPath: string;
  query: ReadonlyArray<readonly [string, string]>;
  /** Lower-case header name → every value the request carried. */
  headers: Readonly<Record<string, readonly string[] | undefined>>;
  signedHeaders: readonly string[];
  payloadHash: string;
  /** Query parameter left out of the canonical query (X-Amz-Signature of a presigned URL). */
  omitQuery?: string;
}

export function canonicalRequest(p: CanonicalRequestParts): string {
  const headerLines = p.signedHeaders.map((h) => {
    const v = p.headers[h];
    if (v === undefined) throw new S3Error('AuthorizationHeaderMalformed', `the signature names header '${h.slice(0, 64)}', which the request does not carry`);
    return `${h}:${canonicalHeaderValue(v)}\n`;
  });
  return [p.method, canonicalUri(p.rawPath), canonicalQuery(p.query, p.omitQuery), headerLines.join(''), p.signedHeaders.join(';'), p.payloadHash].join('\n');
}

export function stringToSign(amzDate: string, scope: string, canonical: string): string {
  return [SIGV4_ALGORITHM, amzDate, scope, sha256Hex(canonical)].join('\n');
}

/** `yyyymmddThhmmssZ` → milliseconds since the epoch. */
export function parseAmzDate(s: string): number {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(s);
  if (!m) throw new S3Error('AccessDenied', `the request time '${s.slice(0, 32)}' is not in the yyyymmddThhmmssZ form`);
  const t = Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6]));
  if (!Number.isFinite(t)) throw new S3Error('AccessDenied', `the request time '${s}' is not a date`);
  return t;
}

export function parseCredential(s: string): Credential {
  const parts = s.split('/');
  if (parts.length !== 5 || parts[4] !== 'aws4_request' || !/^\d{8}$/.test(parts[1]!) || parts[0] === '' || parts[2] === '') {
    throw new S3Error('AuthorizationHeaderMalformed', `the credential '${s.slice(0, 128)}' is not ACCESSKEY/yyyymmdd/region/s3/aws4_request`);
  }
  if (parts[3] !== 's3') throw new S3Error('AuthorizationHeaderMalformed', `the credential is scoped to service '${parts[3]!.slice(0, 32)}'; this endpoint is s3`);
  return { accessKeyId: parts[0]!, date: parts[1]!, region: parts[2]!, service: parts[3]! };
}

export function parseSignedHeaders(s: string): string[] {
  const list = s.split(';');
  if (list.length > MAX_SIGNED_HEADERS) throw new S3Error('AuthorizationHeaderMalformed', `the request signs ${list.length} headers, over the limit of ${MAX_SIGNED_HEADERS}`);
  if (list.some((h) => !/^[a-z0-9!#$%&'*+.^_`|~-]{1,128}$/.test(h))) throw new S3Error('AuthorizationHeaderMalformed', 'SignedHeaders must be lower-case header names separated by ;');
  if (!list.includes('host')) throw new S3Error('AuthorizationHeaderMalformed', 'the signed headers must include host');
  return list;
}

export interface AuthorizationHeader {
  credential: Credential;
  signedHeaders: string[];
  signature: string;
}

export function parseAuthorizationHeader(h: string): AuthorizationHeader {
  if (h.length > MAX_AUTH_HEADER_CHARS) throw new S3Error('AuthorizationHeaderMalformed', `the Authorization header is ${h.length} characters, over ${MAX_AUTH_HEADER_CHARS}`);
  if (!h.startsWith(`${SIGV4_ALGORITHM} `)) {
    throw new S3Error('AuthorizationHeaderMalformed', `only ${SIGV4_ALGORITHM} (Signature Version 4) is supported; configure the client for SigV4`);
  }
  const fields = new Map<string, string>();
  for (const part of h.slice(SIGV4_ALGORITHM.length + 1).split(',')) {
    const i = part.indexOf('=');
    if (i > 0) fields.set(part.slice(0, i).trim(), part.slice(i + 1).trim());
  }
  const cred = fields.get('Credential');
  const signed = fields.get('SignedHeaders');
  const sig = fields.get('Signature');
  if (!cred || !signed || !sig) throw new S3Error('AuthorizationHeaderMalformed', 'the Authorization header must carry Credential, SignedHeaders and Signature');
  if (!/^[0-9a-f]{64}$/.test(sig)) throw new S3Error('AuthorizationHeaderMalformed', 'the signature must be 64 lower-case hex digits');
  return { credential: parseCredential(cred), signedHeaders: parseSignedHeaders(signed), signature: sig };
}
