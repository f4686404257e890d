/**
 * The node's HTTP API. Routes are a table of (method, path pattern) → handler; the services
 * behind them are passed in, so this module knows HTTP and nothing of how the node works.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { timingSafeEqual } from 'node:crypto';
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
  /** Writes always need the token; reads only when the API listens beyond loopback. */
  write?: boolean;
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

export class ApiServer {
  private readonly server: Server;
  private readonly routes: CompiledRoute[];
  private readonly requireTokenForReads: boolean;

  constructor(private readonly opts: { host: string; port: number; token: string; routes: Route[]; logger: Logger }) {
    this.routes = opts.routes.map(compile);
    this.requireTokenForReads = !isLoopbackHost(opts.host);
    this.server = createServer((req, res) => {
      this.dispatch(req, res).catch((err) => sendError(res, err));
    });
    // A slow or idle client must not hold sockets forever.
    this.server.headersTimeout = 30_000;
    this.server.requestTimeout = 0; // streaming uploads and downloads may take long; idle sockets time out below
    this.server.keepAliveTimeout = 5_000;
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

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private async dispatch(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://api');
    const method = req.method === 'HEAD' ? 'GET' : req.method;
    let pathMatched = false;
    for (const route of this.routes) {
      const m = route.regex.exec(url.pathname);
      if (!m) continue;
      pathMatched = true;
      if (route.method !== method && route.method !== req.method) continue;
      if ((route.write || this.requireTokenForReads) && !tokenMatches(req.headers.authorization, this.opts.token)) {
        throw new TesseraError('AUTH', 'missing or wrong API token: send "Authorization: Bearer TOKEN" (the token is in DATA/api-token)');
      }
      const params: Record<string, string> = {};
      route.names.forEach((name, i) => {
        params[name] = decodeURIComponent(m[i + 1] ?? '');
      });
      await route.handle({ req, res, params, url });
      return;
    }
    if (pathMatched) throw new TesseraError('BAD_INPUT', `method ${req.method} is not allowed on ${url.pathname}`);
    throw notFound(`no API route ${url.pathname}`);
  }
}
