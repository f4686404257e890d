/**
 * The S3 endpoint: an HTTP(S) server that authenticates each request (SigV4), finds its bucket,
 * key and operation, checks the key may do it, runs the operation's handler and writes its
 * answer or S3's XML error. Operations are a route table passed in; this module knows none.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { pipeline, Readable } from 'node:stream';
import { TesseraError } from '../errors.js';
import type { Logger } from '../log.js';
import { ANONYMOUS } from './acl-access.js';
import { authenticate, isSigned, type Authenticated } from './auth.js';
import { objectLength, verifiedBody } from './body.js';
import { S3Error, toS3Error } from './errors.js';
import { matchRoute, type S3Context, type S3Method, type S3Principal, type S3Response, type S3Route } from './handler.js';
import type { S3Objects } from './objects.js';
import { KeyCache, principalMay, principalOf, type StoredKey } from './principal.js';
import { addressOf } from './routing.js';
import { credentialScope } from './sigv4.js';
import { errorDocument } from './xml.js';
import { sendPieces } from '../http-pieces.js';

/** Time for a client to send a request's headers. */
export const S3_HEADERS_TIMEOUT_MS = 15_000;
/** Time to receive a whole request: a 5 GiB single PUT must fit. */
export const S3_REQUEST_TIMEOUT_MS = 60 * 60_000;
/** A connection that moves no byte for this long is closed. */
export const DEFAULT_S3_IDLE_TIMEOUT_MS = 60_000;
/** Requests served at once; each streaming one holds a window of chunks in memory. Beyond it: 503 SlowDown. */
export const DEFAULT_S3_MAX_REQUESTS = 64;
/** Object bodies up to this size are gathered and sent with the headers in one write. */
export const SMALL_BODY_BYTES = 64 << 10;
/** The request line's path and query; S3 keys are at most 1 KiB, so 8 KiB leaves room for encoding and presigned queries. */
export const MAX_S3_URL_CHARS = 8192;

/**
 * S3 sub-resources (query parameters that select another operation on the same path). A request
 * naming one that no route handles is answered NotImplemented rather than served as the plain
 * operation it would otherwise look like.
 */
export const S3_SUBRESOURCES = [
  'accelerate', 'acl', 'analytics', 'attributes', 'cors', 'encryption', 'intelligent-tiering', 'inventory', 'legal-hold', 'lifecycle',
  'logging', 'metrics', 'notification', 'object-lock', 'ownershipControls', 'policy', 'policyStatus', 'publicAccessBlock', 'replication',
  'requestPayment', 'restore', 'retention', 'select', 'tagging', 'torrent', 'website', 'uploads', 'uploadId', 'partNumber', 'delete',
  'location', 'versioning', 'versions', 'renameObject',
];

const METHODS = new Set<S3Method>(['GET', 'HEAD', 'PUT', 'POST', 'DELETE']);
/** Statuses whose answers carry no body, so no Content-Length either. */
const BODILESS_STATUS = new Set([204, 304]);

export interface S3ServerOptions {
  host: string;
  port: number;
  routes: readonly S3Route[];
  objects: S3Objects;
  /** Looks an access key up (the node's access key table). */
  loadKey(accessKeyId: string): Promise<StoredKey | null>;
  logger: Logger;
  /** Serve virtual-host style requests for BUCKET.DOMAIN. */
  domain?: string;
  tls?: { cert: string; key: string };
  idleTimeoutMs?: number;
  maxRequests?: number;
  now?: () => number;
  observe?(operation: string, status: number, seconds: number): void;
}

function firstHeader(h: IncomingHttpHeaders, name: string): string | undefined {
  const v = h[name];
  return Array.isArray(v) ? v[0] : v;
}

export class S3Server {
  private readonly server: Server;
  private readonly keys: KeyCache;
  private readonly now: () => number;
  private readonly maxRequests: number;
  private inFlight = 0;
  /** Request ids: a random prefix per server and a counter, unique without a random draw per request. */
  private readonly idPrefix = randomBytes(4).toString('hex').toUpperCase();
  private requests = 0;

  constructor(private readonly o: S3ServerOptions) {
    this.now = o.now ?? Date.now;
    this.keys = new KeyCache(o.loadKey, this.now);
    this.maxRequests = o.maxRequests ?? DEFAULT_S3_MAX_REQUESTS;
    const onRequest = (req: IncomingMessage, res: ServerResponse) => this.onRequest(req, res, false);
    this.server = o.tls ? createHttpsServer({ cert: o.tls.cert, key: o.tls.key, minVersion: 'TLSv1.2' }, onRequest) : createServer(onRequest);
    // A client that sends Expect: 100-continue is told to send its body only once the request
    // is authenticated and allowed; a refused upload costs it no bytes.
    this.server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => this.onRequest(req, res, true));
    this.server.headersTimeout = S3_HEADERS_TIMEOUT_MS;
    this.server.requestTimeout = S3_REQUEST_TIMEOUT_MS;
    this.server.keepAliveTimeout = 5_000;
    this.server.timeout = o.idleTimeoutMs ?? DEFAULT_S3_IDLE_TIMEOUT_MS;
    this.server.on('timeout', (socket: Socket) => socket.destroy());
  }

  get scheme(): 'http' | 'https' {
    return this.o.tls ? 'https' : 'http';
  }

  async start(): Promise<string> {
    await new Promise<void>((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException) => {
        reject(err.code === 'EADDRINUSE'
          ? new TesseraError('CONFLICT', `S3 address ${this.o.host}:${this.o.port} is already in use; choose another --s3 port`)
          : new TesseraError('IO', `cannot listen for S3 on ${this.o.host}:${this.o.port}: ${err.message}`));
      };
      this.server.once('error', onError);
      this.server.listen(this.o.port, this.o.host, () => {
        this.server.off('error', onError);
        resolve();
      });
    });
    const a = this.server.address() as AddressInfo;
    return `${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private nextRequestId(): string {
    this.requests = (this.requests + 1) % 2 ** 32;
    return this.idPrefix + this.requests.toString(16).toUpperCase().padStart(8, '0');
  }

  private onRequest(req: IncomingMessage, res: ServerResponse, expectContinue: boolean): void {
    const started = process.hrtime.bigint();
    const requestId = this.nextRequestId();
    const state = { operation: 'unmatched', resource: '/' };
    res.setHeader('x-amz-request-id', requestId);
    res.setHeader('server', 'tessera');
    this.inFlight++;
    res.once('close', () => {
      this.inFlight--;
      const status = res.writableFinished ? res.statusCode : 0;
      this.o.observe?.(state.operation, status, Number(process.hrtime.bigint() - started) / 1e9);
      this.o.logger.debug({ op: state.operation, status }, 's3 request');
    });
    this.dispatch(req, res, expectContinue, requestId, state).catch((err: unknown) => this.sendError(req, res, err, state.resource, requestId));
  }

  private sendError(req: IncomingMessage, res: ServerResponse, err: unknown, resource: string, requestId: string): void {
    const e = toS3Error(err);
    if (e.code === 'InternalError') this.o.logger.warn({ err, requestId }, 's3 request failed');
    if (res.headersSent) {
      res.destroy();
      return;
    }
    // An error before the body was read: the rest of the body is not wanted (the connection closes after the answer).
    if (!req.readableEnded) res.setHeader('connection', 'close');
    if (e.code === 'NotModified') {
      res.writeHead(304);
      res.end();
      return;
    }
    const body = req.method === 'HEAD' ? '' : errorDocument(e.code, e.message, resource, requestId);
    res.writeHead(e.status, { 'content-type': 'application/xml', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  }

  private async dispatch(req: IncomingMessage, res: ServerResponse, expectContinue: boolean, requestId: string, state: { operation: string; resource: string }): Promise<void> {
    const url = req.url ?? '/';
    if (url.length > MAX_S3_URL_CHARS) throw new S3Error('InvalidRequest', `the request URL is ${url.length} characters, over ${MAX_S3_URL_CHARS}`);
    const method = req.method as S3Method;
    // A CORS preflight: tessera keeps no CORS configuration, so it is refused as S3 refuses one for a bucket without it.
    if (req.method === 'OPTIONS') {
      if (firstHeader(req.headers, 'origin') === undefined) throw new S3Error('BadRequest', 'Insufficient information. Origin request header needed.');
      throw new S3Error('AccessDenied', 'CORSResponse: CORS is not enabled; tessera keeps no CORS configuration');
    }
    if (!METHODS.has(method)) throw new S3Error('MethodNotAllowed', `method ${String(req.method).slice(0, 16)} is not an S3 method`);
    if (this.inFlight > this.maxRequests) {
      res.setHeader('retry-after', '1');
      throw new S3Error('SlowDown', `this node is serving ${this.maxRequests} S3 requests, its limit; retry shortly`);
    }
    const q = url.indexOf('?');
    const rawPath = q < 0 ? url : url.slice(0, q);
    const rawQuery = q < 0 ? '' : url.slice(q + 1);
    state.resource = rawPath;
    const addr = addressOf(rawPath, firstHeader(req.headers, 'host'), this.o.domain);
    const signed = { method, rawPath, rawQuery, headers: req.headersDistinct };
    // An unsigned request is anonymous: it may only read what an ACL makes public (checked below and in the handler).
    const auth: Authenticated<S3Principal> | undefined = !isSigned(signed) ? undefined : await authenticate(signed, this.now(), async (id) => {
      const k = await this.keys.get(id);
      return k === null ? null : { secret: k.secretKey, principal: principalOf(k) };
    });
    const query = new URLSearchParams(rawQuery);
    const route = matchRoute(this.o.routes, method, addr.target, query, req.headers);
    const unhandled = S3_SUBRESOURCES.find((s) => query.has(s) && !(route?.query ?? []).includes(s));
    if (route === undefined || unhandled !== undefined) {
      throw new S3Error('NotImplemented', `${method} ${addr.target === 'service' ? 'on the service' : `on ${addr.target === 'bucket' ? 'a bucket' : 'an object'}`}${unhandled ? ` with ?${unhandled}` : ''} is outside what tessera's S3 face serves (no ACLs, policies, versioning or lifecycle)`);
    }
    state.operation = route.name;
    const principal = auth?.principal ?? ANONYMOUS;
    if (auth === undefined && route.aclRead !== true) {
      throw new S3Error('AccessDenied', `anonymous requests may only read objects and list buckets that an ACL makes public; sign the ${route.name} request with an access key (tessera s3 key create)`);
    }
    if (route.access !== 'none' && addr.bucket !== undefined && route.aclRead !== true && !principalMay(principal, addr.bucket, route.access)) {
      throw new S3Error('AccessDenied', `access key ${principal.accessKeyId} may not ${route.access} bucket '${addr.bucket}'`);
    }
    let bodyTaken = false;
    const body = (): Readable => {
      if (bodyTaken) throw new TesseraError('INTERNAL', 'the request body was read twice');
      if (auth === undefined) throw new S3Error('AccessDenied', 'an anonymous request carries no body tessera reads');
      bodyTaken = true;
      if (expectContinue) res.writeContinue();
      return verifiedBody(req, req.headers, auth.payload, {
        signingKey: auth.signingKey,
        seedSignature: auth.seedSignature,
        amzDate: auth.amzDate,
        scope: credentialScope(auth.credential),
      });
    };
    const ctx: S3Context = {
      req,
      method,
      bucket: addr.bucket,
      key: addr.key,
      query,
      headers: req.headers,
      principal,
      objects: this.o.objects,
      requestId,
      bodyLength: auth === undefined ? undefined : objectLength(req.headers, auth.payload),
      body,
      readBody: async (maxBytes) => {
        const parts: Buffer[] = [];
        let n = 0;
        for await (const c of body() as AsyncIterable<Buffer>) {
          n += c.length;
          if (n > maxBytes) throw new S3Error('MalformedXML', `the request body is over the ${maxBytes}-byte limit for this operation`);
          parts.push(c);
        }
        return Buffer.concat(parts);
      },
      may: (bucket, access) => principalMay(principal, bucket, access),
    };
    const out: S3Response = (await route.handle(ctx)) ?? {};
    await this.send(req, res, out);
  }

  private async send(req: IncomingMessage, res: ServerResponse, out: S3Response): Promise<void> {
    const headers: Record<string, string | number> = { ...out.headers };
    if (out.pieces !== undefined) {
      const length = Number(headers['content-length']);
      if (Number.isSafeInteger(length) && length <= SMALL_BODY_BYTES) {
        // A small body goes out with its headers in one write, not as a header write and a body write.
        const parts: Buffer[] = [];
        for await (const p of out.pieces) parts.push(Buffer.from(p));
        res.writeHead(out.status ?? 200, headers);
        res.end(Buffer.concat(parts));
        return;
      }
      // Written as the native API writes downloads: one piece at a time, each once the socket took the one before.
      await sendPieces(res, out.status ?? 200, headers, out.pieces);
      return;
    }
    const b = out.body;
    if (typeof b === 'string' || Buffer.isBuffer(b)) {
      const bytes = typeof b === 'string' ? Buffer.from(b, 'utf8') : b;
      headers['content-length'] ??= bytes.length;
      if (typeof b === 'string') headers['content-type'] ??= 'application/xml';
      res.writeHead(out.status ?? 200, headers);
      res.end(req.method === 'HEAD' ? undefined : bytes);
      return;
    }
    if (b === undefined || req.method === 'HEAD') {
      if (b instanceof Readable) b.destroy();
      if (b === undefined && headers['content-length'] === undefined && !BODILESS_STATUS.has(out.status ?? 200)) headers['content-length'] = 0;
      res.writeHead(out.status ?? 200, headers);
      res.end();
      return;
    }
    res.writeHead(out.status ?? 200, headers);
    await new Promise<void>((resolve) => {
      pipeline(b, res, (err) => {
        // A failure mid-body cannot be reported in the body any more: the connection is cut, so the client sees a short read.
        if (err) {
          this.o.logger.warn({ err: err.message }, 's3 response body failed');
          res.destroy();
        }
        resolve();
      });
    });
  }
}
