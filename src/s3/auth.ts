/**
 * Authenticates an S3 request: finds its signature (Authorization header or presigned query),
 * checks the time, looks the access key up and recomputes the signature. What it returns says
 * how the body must be checked as it streams (declared SHA-256, aws-chunked signatures, or
 * nothing for UNSIGNED-PAYLOAD). No I/O beyond the key lookup it is given.
 */
import { timingSafeEqual } from 'node:crypto';
import { S3Error } from './errors.js';
import {
  SIGV4_ALGORITHM, STREAMING_SIGNED, STREAMING_SIGNED_TRAILER, STREAMING_UNSIGNED_TRAILER, UNSIGNED_PAYLOAD, MAX_PRESIGNED_EXPIRES_S,
  canonicalRequest, credentialScope, parseAmzDate, parseAuthorizationHeader, parseCredential, parseRawQuery, parseSignedHeaders,
  signString, signingKey, stringToSign, type Credential,
} from './sigv4.js';

/** S3 refuses a request whose time is further than this from the server's. */
export const MAX_CLOCK_SKEW_MS = 15 * 60_000;
/**
 * Signing keys kept (four HMACs each to derive, and the same for every request of a key on one
 * day). The region is the client's to choose, so the cache is bounded and emptied when full.
 */
export const MAX_CACHED_SIGNING_KEYS = 64;
const signingKeys = new Map<string, Buffer>();

/** signingKey(), remembered per secret, day, region and service. */
export function cachedSigningKey(secret: string, c: Credential): Buffer {
  const id = `${c.date}\0${c.region}\0${c.service}\0${secret}`;
  let key = signingKeys.get(id);
  if (key === undefined) {
    if (signingKeys.size >= MAX_CACHED_SIGNING_KEYS) signingKeys.clear();
    key = signingKey(secret, c.date, c.region, c.service);
    signingKeys.set(id, key);
  }
  return key;
}

/** How many signing keys are cached now (for tests of the bound). */
export const cachedSigningKeys = (): number => signingKeys.size;

export interface SignedRequest {
  method: string;
  rawPath: string;
  rawQuery: string;
  /** Lower-case name → every value (IncomingMessage.headersDistinct). */
  headers: Readonly<Record<string, readonly string[] | undefined>>;
}

export type PayloadCheck =
  | { kind: 'unsigned' }
  | { kind: 'sha256'; hex: string }
  | { kind: 'streaming'; signed: boolean; trailer: boolean };

export interface Authenticated<P> {
  principal: P;
  credential: Credential;
  payload: PayloadCheck;
  /** What aws-chunked signatures chain from. */
  signingKey: Buffer;
  seedSignature: string;
  amzDate: string;
}

export interface KeyLookup<P> {
  (accessKeyId: string): Promise<{ secret: string; principal: P } | null>;
}

function one(h: SignedRequest['headers'], name: string): string | undefined {
  const v = h[name];
  return v === undefined || v.length === 0 ? undefined : v[0];
}

function payloadCheck(declared: string | undefined, presigned: boolean): PayloadCheck {
  if (declared === undefined) {
    if (presigned) return { kind: 'unsigned' };
    throw new S3Error('InvalidRequest', 'missing x-amz-content-sha256: a SigV4 request must declare its payload hash (or UNSIGNED-PAYLOAD)');
  }
  if (declared === UNSIGNED_PAYLOAD) return { kind: 'unsigned' };
  if (declared === STREAMING_SIGNED) return { kind: 'streaming', signed: true, trailer: false };
  if (declared === STREAMING_SIGNED_TRAILER) return { kind: 'streaming', signed: true, trailer: true };
  if (declared === STREAMING_UNSIGNED_TRAILER) return { kind: 'streaming', signed: false, trailer: true };
  if (/^[0-9a-f]{64}$/.test(declared)) return { kind: 'sha256', hex: declared };
  throw new S3Error('InvalidArgument', `x-amz-content-sha256 '${declared.slice(0, 80)}' is neither a hex SHA-256 nor one of the payload modes S3 defines`);
}

function signaturesEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

function requestTime(h: SignedRequest['headers']): { ms: number; amzDate: string } {
  const amz = one(h, 'x-amz-date');
  if (amz !== undefined) return { ms: parseAmzDate(amz), amzDate: amz };
  const date = one(h, 'date');
  const ms = date === undefined ? NaN : Date.parse(date);
  if (!Number.isFinite(ms)) throw new S3Error('AccessDenied', 'the request carries neither x-amz-date nor a valid Date header');
  return { ms, amzDate: new Date(ms).toISOString().replace(/[-:]|\.\d{3}/g, '') };
}

/** Whether the request carries a signature at all (header or presigned query); one without is anonymous. */
export function isSigned(req: Pick<SignedRequest, 'headers' | 'rawQuery'>): boolean {
  // A Signature V2 presigned URL (AWSAccessKeyId=…) is a signature too: refused as such, not served as anonymous.
  return one(req.headers, 'authorization') !== undefined || parseRawQuery(req.rawQuery).some(([k]) => k === 'X-Amz-Signature' || k === 'AWSAccessKeyId');
}

export async function authenticate<P>(req: SignedRequest, now: number, lookup: KeyLookup<P>): Promise<Authenticated<P>> {
  const query = parseRawQuery(req.rawQuery);
  const q = (name: string) => query.find(([k]) => k === name)?.[1];
  const header = one(req.headers, 'authorization');
  const presigned = header === undefined && q('X-Amz-Signature') !== undefined;
  if (header === undefined && !presigned && q('AWSAccessKeyId') !== undefined) throw new S3Error('AccessDenied', 'Signature Version 2 presigned URLs are not supported: presign with Signature Version 4');
  if (header === undefined && !presigned) throw new S3Error('AccessDenied', 'anonymous requests are not allowed: sign the request with an access key (tessera s3 key create)');

  let credential: Credential;
  let signedHeaders: string[];
  let signature: string;
  let amzDate: string;
  if (presigned) {
    if (q('X-Amz-Algorithm') !== SIGV4_ALGORITHM) throw new S3Error('AuthorizationHeaderMalformed', `X-Amz-Algorithm must be ${SIGV4_ALGORITHM}`);
    credential = parseCredential(q('X-Amz-Credential') ?? '');
    signedHeaders = parseSignedHeaders(q('X-Amz-SignedHeaders') ?? '');
    signature = q('X-Amz-Signature') ?? '';
    amzDate = q('X-Amz-Date') ?? '';
    const signedAt = parseAmzDate(amzDate);
    const expires = q('X-Amz-Expires') ?? '';
    // A presigned URL with no lifetime, a negative one or one over a week grants nothing: 403, as for an expired one.
    if (!/^\d{1,7}$/.test(expires) || Number(expires) < 1 || Number(expires) > MAX_PRESIGNED_EXPIRES_S) {
      throw new S3Error('AccessDenied', `X-Amz-Expires must be a number of seconds from 1 to ${MAX_PRESIGNED_EXPIRES_S}; presign the URL again`);
    }
    if (now > signedAt + Number(expires) * 1000) throw new S3Error('AccessDenied', 'Request has expired: the presigned URL was valid until ' + new Date(signedAt + Number(expires) * 1000).toISOString());
    if (signedAt - now > MAX_CLOCK_SKEW_MS) throw new S3Error('AccessDenied', 'Request is not valid yet: the presigned URL is dated in the future');
  } else {
    const parsed = parseAuthorizationHeader(header!);
    credential = parsed.credential;
    signedHeaders = parsed.signedHeaders;
    signature = parsed.signature;
    const t = requestTime(req.headers);
    amzDate = t.amzDate;
    if (Math.abs(now - t.ms) > MAX_CLOCK_SKEW_MS) {
      throw new S3Error('RequestTimeTooSkewed', `the request time ${new Date(t.ms).toISOString()} is more than 15 minutes from the server's ${new Date(now).toISOString()}; set the client's clock`);
    }
  }
  if (!amzDate.startsWith(credential.date)) throw new S3Error('SignatureDoesNotMatch', `the credential's date ${credential.date} is not the request's date ${amzDate.slice(0, 8)}`);

  const payloadDeclared = one(req.headers, 'x-amz-content-sha256');
  const payload = payloadCheck(payloadDeclared, presigned);
  const found = await lookup(credential.accessKeyId);
  if (found === null) throw new S3Error('InvalidAccessKeyId', `the access key '${credential.accessKeyId.slice(0, 64)}' does not exist on this cluster (tessera s3 key ls)`);

  const key = cachedSigningKey(found.secret, credential);
  const canonical = canonicalRequest({
    method: req.method,
    rawPath: req.rawPath,
    query,
    headers: req.headers,
    signedHeaders,
    payloadHash: presigned ? (payloadDeclared ?? UNSIGNED_PAYLOAD) : payloadDeclared!,
    ...(presigned ? { omitQuery: 'X-Amz-Signature' } : {}),
  });
  const expected = signString(key, stringToSign(amzDate, credentialScope(credential), canonical));
  if (!signaturesEqual(expected, signature)) {
    throw new S3Error('SignatureDoesNotMatch', 'the request signature does not match the one computed with this access key\'s secret; check the secret and the signing method');
  }
  return { principal: found.principal, credential, payload, signingKey: key, seedSignature: signature, amzDate };
}
