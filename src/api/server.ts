/**
 * The node's HTTP API. Routes are a table of (method, path pattern) → handler; the services
 * behind them are passed in, so this module knows HTTP and nothing of how the node works.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { timingSafeEqual } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TesseraError, notFound } from '../errors.js';
import type { Logger } from '../log.js';
import { isLoopbackHost, sendError, sendJson } from './http-util.js';
import type { PeerView, StatusView } from './types.js';

export interface ApiServices {
  status(): StatusView;
  peers(): PeerView[];
}

export interface ApiRequest {
  req: IncomingMessage;
  res: ServerResponse;
  params: Record<string, string>;
  url: URL;
}

export interface Route {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE' | 'HEAD';
  /** Path with `:name` segments. */
  path: string;
  /** Writes always need the token; reads too, unless the API was started with open reads on loopback. */
  write?: boolean;
  /** An upload or download: counted against the cap on concurrent transfers. */
  transfer?: boolean;
  handle(r: ApiRequest): Promise<void> | void;
}

interface CompiledRoute extends Route {
  regex: RegExp;
  names: string[];
}

function compile(route: Route): CompiledRoute {
  const names: string[] = [];
  const pattern = route.path.replace(/:([a-zA-Z]+)/g, (_m, name: string) => {
    names.push(name);
    return '([^/]+)';
  });
  return { ...route, regex: new RegExp(`^${pattern}$`), names };
}

function tokenMatches(header: string | undefined, token: string): boolean {
  if (!header?.startsWith('Bearer ')) return false;
  const given = Buffer.from(header.slice('Bearer '.length).trim());
  const want = Buffer.from(token);
  return given.length === want.length && timingSafeEqual(given, want);
}

export function coreRoutes(services: ApiServices): Route[] {
  return [
    { method: 'GET', path: '/api/v1/status', handle: ({ res }) => sendJson(res, 200, services.status()) },
    { method: 'GET', path: '/api/v1/peers', handle: ({ res }) => sendJson(res, 200, services.peers()) },
  ];
}

/** Where `npm run build` puts the bundled dashboard (dist/dashboard, beside dist/src). */
export const DASHBOARD_DIR = fileURLToPath(new URL('../../dashboard/', import.meta.url));
/** The dashboard is a handful of small files; anything bigger in that folder is not served. */
const MAX_STATIC_FILE_BYTES = 4 << 20;
const STATIC_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.map': 'application/json; charset=utf-8',
};
/**
 * The page loads only its own files and talks only to this API; the token lives in the page's
 * storage, so no framing, no foreign scripts and no referrer leave it exposed.
 */
const DASHBOARD_HEADERS = {
  'content-security-policy': "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-cache',
};
const HTTP_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'OPTIONS']);

interface StaticFile {
  body: Buffer;
  type: string;
}

/** Reads the built dashboard once: a fixed set of files, so no request path ever reaches the disk. */
function loadStatic(dir: string): Map<string, StaticFile> {
  const files = new Map<string, StaticFile>();
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return files;
  }
  for (const name of names) {
    const type = STATIC_TYPES[extname(name)];
    if (!type || !/^[\w.-]+$/.test(name)) continue;
    const body = readFileSync(join(dir, name));
    if (body.length <= MAX_STATIC_FILE_BYTES) files.set(name, { body, type });
  }
  return files;
}

/** Host names a loopback-bound API answers to; anything else is a DNS-rebinding attempt. */
function loopbackHostHeader(host: string | undefined): boolean {
  if (host === undefined) return true; // HTTP/1.0 clients send none, and no browser omits it
  const name = host.startsWith('[') ? host.slice(0, host.indexOf(']') + 1) : host.replace(/:\d+$/, '');
  return name === 'localhost' || name === '[::1]' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(name);
}

export interface ApiServerOptions {
  host: string;
  port: number;
  token: string;
  routes: Route[];
  logger: Logger;
  /** Origin allowed to call the API from a browser page of another origin; none by default. */
  cors?: string;
  /** Told about every finished request, by route pattern (never the raw path: file ids are capabilities). */
  observe?(method: string, route: string, status: number, seconds: number): void;
  /** Folder of the built dashboard; default DASHBOARD_DIR; null serves none. */
  dashboardDir?: string | null;
  /** Serve HTTPS with this certificate and key (PEM). */
  tls?: { cert: string; key: string };
  /** Let reads through without the token; only on loopback (the node refuses it elsewhere). */
  openReads?: boolean;
  /** A connection with no bytes moving either way for this long is closed (a stalled download). */
  idleTimeoutMs?: number;
  /** Uploads and downloads in progress at once; beyond it a transfer is answered 503. */
  maxTransfers?: number;
}

/** Time for a client to send a request's headers. */
export const API_HEADERS_TIMEOUT_MS = 15_000;
/** Time to receive a whole request, body included: an upload of many GiB must fit. */
export const API_REQUEST_TIMEOUT_MS = 60 * 60_000;
/**
 * An idle kept-alive connection is closed after this long. Clients close theirs sooner
 * (src/client's CLIENT_IDLE_SOCKET_MS) so that the node rarely closes one a request is coming on.
 */
export const API_KEEP_ALIVE_TIMEOUT_MS = 5_000;
/** A connection that moves no byte for this long is closed. */
export const DEFAULT_API_IDLE_TIMEOUT_MS = 30_000;
/** Uploads and downloads served at once; each holds a window of chunks in memory. */
export const DEFAULT_API_MAX_TRANSFERS = 16;

export class ApiServer {
  private readonly server: Server;
  private readonly routes: CompiledRoute[];
  private readonly requireTokenForReads: boolean;
  private readonly loopback: boolean;
  private readonly maxTransfers: number;
  private transfers = 0;
  private readonly staticFiles: Map<string, StaticFile>;
  private readonly sockets = new Set<Socket>();
  /** Bytes of sockets already closed; live sockets are added at read time. */
  private closedBytes = { in: 0, out: 0 };

  constructor(private readonly opts: ApiServerOptions) {
    this.routes = opts.routes.map(compile);
    this.loopback = isLoopbackHost(opts.host);
    this.requireTokenForReads = !(opts.openReads === true && this.loopback);
    this.maxTransfers = opts.maxTransfers ?? DEFAULT_API_MAX_TRANSFERS;
    this.staticFiles = opts.dashboardDir === null ? new Map() : loadStatic(opts.dashboardDir ?? DASHBOARD_DIR);
    const onRequest = (req: IncomingMessage, res: ServerResponse) => this.onRequest(req, res);
    this.server = opts.tls
      ? createHttpsServer({ cert: opts.tls.cert, key: opts.tls.key, minVersion: 'TLSv1.2' }, onRequest)
      : createServer(onRequest);
    this.server.on('connection', (socket: Socket) => {
      this.sockets.add(socket);
      socket.once('close', () => {
        this.sockets.delete(socket);
        this.closedBytes.in += socket.bytesRead;
        this.closedBytes.out += socket.bytesWritten;
      });
    });
    // A slow or idle client must not hold sockets (or a download's buffers) forever.
    this.server.headersTimeout = API_HEADERS_TIMEOUT_MS;
    this.server.requestTimeout = API_REQUEST_TIMEOUT_MS;
    this.server.keepAliveTimeout = API_KEEP_ALIVE_TIMEOUT_MS;
    this.server.timeout = opts.idleTimeoutMs ?? DEFAULT_API_IDLE_TIMEOUT_MS;
    this.server.on('timeout', (socket: Socket) => {
      this.opts.logger.info({ remote: socket.remoteAddress, idleMs: this.server.timeout }, 'closing an API connection that moved no data');
      socket.destroy();
    });
  }

  async start(): Promise<string> {
    await new Promise<void>((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException) => {
        reject(err.code === 'EADDRINUSE'
          ? new TesseraError('CONFLICT', `API address ${this.opts.host}:${this.opts.port} is already in use; choose another --api port`)
          : new TesseraError('IO', `cannot listen for the API on ${this.opts.host}:${this.opts.port}: ${err.message}`));
      };
      this.server.once('error', onError);
      this.server.listen(this.opts.port, this.opts.host, () => {
        this.server.off('error', onError);
        resolve();
      });
    });
    const a = this.server.address() as AddressInfo;
    return `${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`;
  }

  /** Bytes through the API so far, request and response, headers included. */
  bytes(): { in: number; out: number } {
    let i = this.closedBytes.in;
    let o = this.closedBytes.out;
    for (const s of this.sockets) {
      i += s.bytesRead;
      o += s.bytesWritten;
    }
    return { in: i, out: o };
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private onRequest(req: IncomingMessage, res: ServerResponse): void {
    const started = process.hrtime.bigint();
    const state = { route: 'unmatched' };
    res.once('close', () => {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      const method = HTTP_METHODS.has(req.method ?? '') ? (req.method as string) : 'OTHER';
      // A response cut short (client gone, stream failed) has no status the client saw.
      const status = res.writableFinished ? res.statusCode : 0;
      this.opts.observe?.(method, state.route, status, seconds);
      this.opts.logger.debug({ method, route: state.route, status, ms: Math.round(seconds * 1000) }, 'api request');
    });
    this.dispatch(req, res, state).catch((err) => sendError(res, err));
  }

  private corsHeaders(req: IncomingMessage, res: ServerResponse): boolean {
    const origin = req.headers.origin;
    if (!this.opts.cors || origin !== this.opts.cors) return false;
    res.setHeader('access-control-allow-origin', origin);
    res.setHeader('vary', 'Origin');
    res.setHeader('access-control-expose-headers', 'content-range, content-length, accept-ranges, x-tessera-file-id, x-tessera-size');
    return true;
  }

  private serveStatic(req: IncomingMessage, res: ServerResponse, pathname: string): boolean {
    if (req.method !== 'GET' && req.method !== 'HEAD') return false;
    const name = pathname === '/' ? 'index.html' : pathname.startsWith('/assets/') ? pathname.slice('/assets/'.length) : undefined;
    if (name === undefined) return false;
    const file = this.staticFiles.get(name);
    if (!file) {
      if (pathname !== '/') return false;
      throw new TesseraError('UNAVAILABLE', 'the dashboard is not built: run `npm run build` (it bundles src/api/dashboard into dist/dashboard)');
    }
    res.writeHead(200, { 'content-type': file.type, 'content-length': file.body.length, ...DASHBOARD_HEADERS });
    res.end(file.body);
    return true;
  }

  /** The scheme clients must use. */
  get scheme(): 'http' | 'https' {
    return this.opts.tls ? 'https' : 'http';
  }

  /** Uploads and downloads in progress. */
  get transfersInProgress(): number {
    return this.transfers;
  }

  private async dispatch(req: IncomingMessage, res: ServerResponse, state: { route: string }): Promise<void> {
    if (this.loopback && !loopbackHostHeader(req.headers.host)) {
      // A page elsewhere could point its own host name at 127.0.0.1 and read an API that trusts loopback.
      throw new TesseraError('AUTH', `the API listens on loopback and answers only to localhost or 127.0.0.1, not Host '${String(req.headers.host).slice(0, 100)}'`);
    }
    const url = new URL(req.url ?? '/', 'http://api');
    const cors = this.corsHeaders(req, res);
    if (req.method === 'OPTIONS' && cors) {
      state.route = 'preflight';
      res.writeHead(204, {
        'access-control-allow-methods': 'GET, HEAD, PUT, POST, DELETE',
        'access-control-allow-headers': 'authorization, content-type, range',
        'access-control-max-age': '600',
      });
      res.end();
      return;
    }
    if (this.serveStatic(req, res, url.pathname)) {
      state.route = 'dashboard';
      return;
    }
    const method = req.method === 'HEAD' ? 'GET' : req.method;
    let pathMatched = false;
    for (const route of this.routes) {
      const m = route.regex.exec(url.pathname);
      if (!m) continue;
      pathMatched = true;
      if (route.method !== method && route.method !== req.method) continue;
      state.route = route.path;
      if ((route.write || this.requireTokenForReads) && !tokenMatches(req.headers.authorization, this.opts.token)) {
        throw new TesseraError('AUTH', 'missing or wrong API token: send "Authorization: Bearer TOKEN" (the token is in DATA/api-token; the CLI reads it with --data DIR)');
      }
      if (route.transfer) {
        if (this.transfers >= this.maxTransfers) {
          res.setHeader('retry-after', '1');
          throw new TesseraError('UNAVAILABLE', `this node is serving ${this.transfers} uploads and downloads, its limit; retry shortly or use another node`);
        }
        this.transfers++;
        res.once('close', () => this.transfers--);
      }
      const params: Record<string, string> = {};
      route.names.forEach((name, i) => {
        try {
          params[name] = decodeURIComponent(m[i + 1] ?? '');
        } catch {
          throw new TesseraError('BAD_INPUT', `path segment :${name} is not valid percent-encoding`);
        }
      });
      await route.handle({ req, res, params, url });
      return;
    }
    if (pathMatched) throw new TesseraError('BAD_INPUT', `method ${req.method} is not allowed on ${url.pathname}`);
    throw notFound(`no API route ${url.pathname}`);
  }
}
