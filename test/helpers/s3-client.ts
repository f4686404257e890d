/**
 * A minimal SigV4 S3 client for tests that must send what real clients will not: tampered
 * streaming chunks, wrong digests, skewed clocks, malformed XML. Signs with tessera's own
 * SigV4 functions, which the unit tests check against AWS's published examples and botocore.
 */
import { createHash } from 'node:crypto';
import { request } from 'node:http';
import { canonicalRequest, credentialScope, EMPTY_SHA256, signingKey, signString, stringToSign, parseRawQuery } from '../../src/s3/sigv4.js';

export interface S3Creds {
  /** host:port as the Host header names it. */
  endpoint: string;
  /** host:port to connect to, when the Host header names another (virtual-host style). */
  connect?: string;
  accessKeyId: string;
  secret: string;
  region?: string;
}

export interface S3Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

export interface SignedRequestOptions {
  method: string;
  /** Raw (already encoded) path, e.g. /bucket/key. */
  path: string;
  query?: string;
  headers?: Record<string, string>;
  body?: Buffer;
  /** x-amz-content-sha256; default the body's SHA-256. */
  payloadHash?: string;
  date?: Date;
}

/** The signing key changes once a day per secret and region; SDKs keep it, and so does this client (a load generator). */
const signingKeys = new Map<string, Buffer>();
function cachedSigningKey(secret: string, date: string, region: string): Buffer {
  const id = `${secret}\0${date}\0${region}`;
  let key = signingKeys.get(id);
  if (key === undefined) {
    if (signingKeys.size >= 64) signingKeys.clear();
    key = signingKey(secret, date, region, 's3');
    signingKeys.set(id, key);
  }
  return key;
}

export function amzDate(d: Date): string {
  return d.toISOString().replace(/[-:]|\.\d{3}/g, '');
}

/** Signs a request as a client would; returns the headers to send and what chunk signatures chain from. */
export function sign(c: S3Creds, o: SignedRequestOptions): { headers: Record<string, string>; seed: string; key: Buffer; scope: string; date: string } {
  const date = amzDate(o.date ?? new Date());
  const region = c.region ?? 'us-east-1';
  const payloadHash = o.payloadHash ?? (o.body ? createHash('sha256').update(o.body).digest('hex') : EMPTY_SHA256);
  const headers: Record<string, string> = { host: c.endpoint, 'x-amz-date': date, 'x-amz-content-sha256': payloadHash };
  for (const [k, v] of Object.entries(o.headers ?? {})) headers[k.toLowerCase()] = v;
  const signed = Object.keys(headers).sort();
  const cred = { accessKeyId: c.accessKeyId, date: date.slice(0, 8), region, service: 's3' };
  const scope = credentialScope(cred);
  const canonical = canonicalRequest({
    method: o.method, rawPath: o.path, query: parseRawQuery(o.query ?? ''),
    headers: Object.fromEntries(Object.entries(headers).map(([k, v]) => [k, [v]])), signedHeaders: signed, payloadHash,
  });
  const key = cachedSigningKey(c.secret, cred.date, region);
  const seed = signString(key, stringToSign(date, scope, canonical));
  headers.authorization = `AWS4-HMAC-SHA256 Credential=${c.accessKeyId}/${scope},SignedHeaders=${signed.join(';')},Signature=${seed}`;
  return { headers, seed, key, scope, date };
}

export function send(c: S3Creds, method: string, path: string, query: string | undefined, headers: Record<string, string>, body?: Buffer): Promise<S3Reply> {
  const to = c.connect ?? c.endpoint;
  const [host, port] = [to.slice(0, to.lastIndexOf(':')), Number(to.slice(to.lastIndexOf(':') + 1))];
  return new Promise((resolve, reject) => {
    const req = request({ host, port, method, path: query ? `${path}?${query}` : path, headers: { ...headers, ...(body ? { 'content-length': String(body.length) } : {}) } }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (b: Buffer) => parts.push(b));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(parts) }));
      res.on('error', reject);
    });
    req.setTimeout(60_000, () => req.destroy(new Error(`${method} ${path} timed out`)));
    req.on('error', reject);
    req.end(body);
  });
}

export function s3(c: S3Creds, o: SignedRequestOptions): Promise<S3Reply> {
  const { headers } = sign(c, { ...o, headers: { ...o.headers, ...(o.body ? { 'content-length': String(o.body.length) } : {}) } });
  return send(c, o.method, o.path, o.query, headers, o.body);
}

/** A STREAMING-AWS4-HMAC-SHA256-PAYLOAD body of `data` in chunks of `chunk` bytes; `tamper` alters the data after signing. */
export function signedChunkedPut(c: S3Creds, path: string, data: Buffer, chunk: number, tamper?: (b: Buffer) => void): { headers: Record<string, string>; body: Buffer } {
  const build = (chunkSig: (d: Buffer) => string, alter?: (b: Buffer) => void): Buffer => {
    const parts: Buffer[] = [];
    for (let i = 0; i < data.length; i += chunk) {
      const d = Buffer.from(data.subarray(i, i + chunk));
      const sig = chunkSig(d);
      alter?.(d);
      parts.push(Buffer.from(`${d.length.toString(16)};chunk-signature=${sig}\r\n`), d, Buffer.from('\r\n'));
    }
    parts.push(Buffer.from(`0;chunk-signature=${chunkSig(Buffer.alloc(0))}\r\n\r\n`));
    return Buffer.concat(parts);
  };
  // Signatures are fixed-length, so a body signed with placeholders has the real body's length.
  const length = build(() => '0'.repeat(64)).length;
  const s = sign(c, {
    method: 'PUT', path, payloadHash: 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD',
    headers: { 'content-encoding': 'aws-chunked', 'x-amz-decoded-content-length': String(data.length), 'content-length': String(length) },
  });
  let prev = s.seed;
  const body = build((d) => {
    prev = signString(s.key, ['AWS4-HMAC-SHA256-PAYLOAD', s.date, s.scope, prev, EMPTY_SHA256, createHash('sha256').update(d).digest('hex')].join('\n'));
    return prev;
  }, tamper);
  const { 'content-length': _omit, ...headers } = s.headers;
  return { headers, body };
}
