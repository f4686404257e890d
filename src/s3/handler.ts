/**
 * The shape every S3 operation is written in: a handler gets the parsed, authenticated request
 * and returns what to send. Routes are registered as a table (method, what the path names, the
 * query parameters that select the operation), so operations live in modules of their own and
 * the server knows none of them.
 */
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import type { Readable } from 'node:stream';
import type { S3Objects } from './objects.js';

export type S3Method = 'GET' | 'HEAD' | 'PUT' | 'POST' | 'DELETE';
/** What the request path names: the service (no bucket), a bucket, or an object in a bucket. */
export type S3Target = 'service' | 'bucket' | 'object';
/** What an access key must hold on the request's bucket; 'none' only for the service (ListBuckets filters itself). */
export type S3Access = 'read' | 'write' | 'owner' | 'none';

/** What an authenticated key may do. `buckets` null: every bucket, and creating buckets. */
export interface S3Principal {
  readonly accessKeyId: string;
  readonly name: string;
  readonly buckets: ReadonlyMap<string, ReadonlySet<Exclude<S3Access, 'none'>>> | null;
}

export interface S3Context {
  readonly req: IncomingMessage;
  readonly method: S3Method;
  readonly bucket: string | undefined;
  readonly key: string | undefined;
  readonly query: URLSearchParams;
  readonly headers: IncomingHttpHeaders;
  readonly principal: S3Principal;
  readonly objects: S3Objects;
  /** Bytes of object data the body carries (Content-Length, or x-amz-decoded-content-length of an aws-chunked body), when the request says. */
  readonly bodyLength: number | undefined;
  /** Identifies the request in the error document and the log. */
  readonly requestId: string;
  /**
   * The request body, already checked against its signature as it streams: a chunk whose
   * signature, checksum or declared SHA-256 is wrong makes the stream fail with an S3Error
   * before that chunk is passed on. Call once.
   */
  body(): Readable;
  /** A small body (XML) read whole, at most `maxBytes`, through the same checks. */
  readBody(maxBytes: number): Promise<Buffer>;
  /** Whether the principal may do `access` on `bucket` (throws nothing). */
  may(bucket: string, access: Exclude<S3Access, 'none'>): boolean;
}

export interface S3Response {
  status?: number;
  headers?: Record<string, string | number>;
  /** XML text, bytes, or a stream (object bodies); none for an empty body. */
  body?: string | Buffer | Readable;
  /** An object body whose pieces are each valid only until the next is asked for (ObjectService.readObject). */
  pieces?: AsyncIterable<Buffer>;
}

export type S3Handler = (ctx: S3Context) => Promise<S3Response | void>;

export interface S3Route {
  readonly method: S3Method;
  readonly target: S3Target;
  /** Query parameters that must all be present (e.g. ['uploadId']); the route with the most that match wins. */
  readonly query?: readonly string[];
  /** A header that must be present (e.g. 'x-amz-copy-source' for CopyObject and UploadPartCopy). */
  readonly header?: string;
  readonly access: S3Access;
  /**
   * Also served to callers whose key scope does not cover the bucket, anonymous ones included:
   * the handler then serves only what the bucket's or object's ACL grants (acl-access.ts), and
   * finds such callers by `ctx.may(bucket, 'read')` being false.
   */
  readonly aclRead?: boolean;
  /** The operation's S3 name, for logs and metrics. */
  readonly name: string;
  readonly handle: S3Handler;
}

/** Picks the route for a request: method and target match, every named query parameter and header present; most specific first. */
export function matchRoute(routes: readonly S3Route[], method: S3Method, target: S3Target, query: URLSearchParams, headers: IncomingHttpHeaders): S3Route | undefined {
  let best: S3Route | undefined;
  let bestScore = -1;
  for (const r of routes) {
    if (r.method !== method || r.target !== target) continue;
    if (r.query && !r.query.every((q) => query.has(q))) continue;
    if (r.header && headers[r.header] === undefined) continue;
    const score = (r.query?.length ?? 0) * 2 + (r.header ? 1 : 0);
    if (score > bestScore) {
      best = r;
      bestScore = score;
    }
  }
  return best;
}
