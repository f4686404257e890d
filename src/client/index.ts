/**
 * The typed client for a node's HTTP API: what the CLI uses, and what `import { connect } from
 * 'tessera'` gives a program.
 */
import { request, type IncomingMessage } from 'node:http';
import { TesseraError, type ErrorCode } from '../errors.js';
import type { ApiErrorBody, PeerView, StatusView } from '../api/types.js';
import type { CheckReport, ReplaceResult, VolumeView } from '../api/volume-routes.js';

export const DEFAULT_API = '127.0.0.1:7401';
/** Largest JSON response the client will buffer; file bodies are streamed instead. */
const MAX_JSON_RESPONSE_BYTES = 16 << 20;
const DEFAULT_TIMEOUT_MS = 30_000;

export interface ConnectOptions {
  /** host:port of a node's API; default `TESSERA_API` or 127.0.0.1:7401. */
  api?: string;
  /** Bearer token (DATA/api-token); default `TESSERA_TOKEN`. */
  token?: string;
  timeoutMs?: number;
}

export interface RequestOptions {
  method?: string;
  body?: unknown;
  headers?: Record<string, string>;
}

export function parseHostPort(addr: string, what: string): { host: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:]+)\]|([^:\s]+)):(\d{1,5})$/.exec(addr.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || !(port >= 0 && port <= 65535)) throw new TesseraError('BAD_INPUT', `${what} '${addr}' is not HOST:PORT (for example 127.0.0.1:7401)`);
  return { host: (m[1] ?? m[2]) as string, port };
}

export class TesseraClient {
  readonly host: string;
  readonly port: number;
  private readonly token: string | undefined;
  private readonly timeoutMs: number;

  constructor(opts: ConnectOptions = {}) {
    const api = opts.api ?? process.env.TESSERA_API ?? DEFAULT_API;
    ({ host: this.host, port: this.port } = parseHostPort(api, 'API address'));
    this.token = opts.token ?? process.env.TESSERA_TOKEN;
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  }

  get address(): string {
    return `${this.host}:${this.port}`;
  }

  status(): Promise<StatusView> {
    return this.json<StatusView>('/api/v1/status');
  }

  peers(): Promise<PeerView[]> {
    return this.json<PeerView[]>('/api/v1/peers');
  }

  volumes(): Promise<VolumeView[]> {
    return this.json<VolumeView[]>('/api/v1/volumes');
  }

  volume(name: string): Promise<VolumeView> {
    return this.json<VolumeView>(`/api/v1/volumes/${encodeURIComponent(name)}`);
  }

  /** size in bytes; members or nodes (ids or unique prefixes) choose the member nodes. */
  createVolume(req: { name: string; size: number; layout: 'raid0' | 'raid1' | 'raid5' | 'raid6'; members?: number; nodes?: string[]; unitSize?: number }): Promise<VolumeView> {
    return this.json<VolumeView>('/api/v1/volumes', { method: 'POST', body: req });
  }

  removeVolume(name: string): Promise<{ removed: string }> {
    return this.json(`/api/v1/volumes/${encodeURIComponent(name)}`, { method: 'DELETE' });
  }

  /** Rebuilds the member on node `oldNode` onto `newNode`; answered by the volume's master. */
  replaceVolumeMember(name: string, oldNode: string, newNode: string): Promise<ReplaceResult> {
    return this.json<ReplaceResult>(`/api/v1/volumes/${encodeURIComponent(name)}/replace`, { method: 'POST', body: { old: oldNode, new: newNode } });
  }

  checkVolume(name: string, opts: { repair?: boolean } = {}): Promise<CheckReport> {
    return this.json<CheckReport>(`/api/v1/volumes/${encodeURIComponent(name)}/check`, { method: 'POST', body: opts.repair ? { repair: true } : {} });
  }

  /** Sends a request and returns the raw response stream (status already checked). */
  async raw(path: string, opts: RequestOptions & { bodyStream?: NodeJS.ReadableStream } = {}): Promise<IncomingMessage> {
    const headers: Record<string, string> = { ...opts.headers };
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    let payload: Buffer | undefined;
    if (opts.body !== undefined) {
      payload = Buffer.from(JSON.stringify(opts.body));
      headers['content-type'] = 'application/json';
      headers['content-length'] = String(payload.length);
    }
    const res = await new Promise<IncomingMessage>((resolve, reject) => {
      const req = request({ host: this.host, port: this.port, path, method: opts.method ?? 'GET', headers }, resolve);
      req.setTimeout(this.timeoutMs, () => req.destroy(new TesseraError('TIMEOUT', `node API at ${this.address} did not answer within ${this.timeoutMs} ms`)));
      req.on('error', (err: NodeJS.ErrnoException) => {
        if (err instanceof TesseraError) reject(err);
        else if (err.code === 'ECONNREFUSED') reject(new TesseraError('UNAVAILABLE', `no tessera node answers at ${this.address}: is 'tessera node' running there? (set --api or TESSERA_API)`));
        else reject(new TesseraError('UNAVAILABLE', `cannot reach the node API at ${this.address}: ${err.message}`));
      });
      if (opts.bodyStream) opts.bodyStream.pipe(req);
      else req.end(payload);
    });
    res.setTimeout(0);
    if (res.statusCode !== undefined && res.statusCode >= 400) throw await errorFrom(res);
    return res;
  }

  async json<T>(path: string, opts: RequestOptions = {}): Promise<T> {
    const res = await this.raw(path, opts);
    return JSON.parse((await readBounded(res)).toString('utf8')) as T;
  }
}

async function readBounded(res: IncomingMessage): Promise<Buffer> {
  const parts: Buffer[] = [];
  let total = 0;
  for await (const chunk of res as AsyncIterable<Buffer>) {
    total += chunk.length;
    if (total > MAX_JSON_RESPONSE_BYTES) {
      res.destroy();
      throw new TesseraError('TOO_LARGE', `node API response is over ${MAX_JSON_RESPONSE_BYTES} bytes`);
    }
    parts.push(chunk);
  }
  return Buffer.concat(parts);
}

async function errorFrom(res: IncomingMessage): Promise<TesseraError> {
  let body: ApiErrorBody | undefined;
  try {
    body = JSON.parse((await readBounded(res)).toString('utf8')) as ApiErrorBody;
  } catch {
    /* not JSON: fall through to the status line */
  }
  if (body?.error?.code && body.error.message) return new TesseraError(body.error.code as ErrorCode, body.error.message);
  return new TesseraError('INTERNAL', `node API answered HTTP ${res.statusCode}`);
}

export function connect(opts: ConnectOptions = {}): TesseraClient {
  return new TesseraClient(opts);
}
