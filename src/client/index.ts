/**
 * The typed client for a node's HTTP API: what the CLI uses, and what `import { connect } from
 * 'tessera'` gives a program.
 */
import type { Agent as HttpAgent, ClientRequest, IncomingMessage, RequestOptions as HttpRequestOptions } from 'node:http';
import { createRequire } from 'node:module';
import { connect as connectTcp, type OnReadOpts, type Socket } from 'node:net';
import type { connect as connectTls, ConnectionOptions, PeerCertificate } from 'node:tls';
import type { Readable } from 'node:stream';
import { TesseraError, type ErrorCode } from '../errors.js';
import { download, type DownloadInfo, type DownloadSink } from './download.js';
import { downloadInRanges, type RangeRequest } from './ranges.js';
// Types only: a get must not open the upload code (test/integration/cli-startup.test.ts counts the
// files a get opens); a put loads it when it pumps a file.
import type { PieceReader } from './upload-source.js';
import type { BucketEntry, ObjectEntry, ObjectRecord, RedundancyPolicy, ApiErrorBody, DrainStateView, FileListView, FileStatView, PeerView, PutResultView, RepairStatusView, RmResultView, ScrubReportView, StatusView } from '../api/types.js';
import type { CheckReport, ReplaceResult, VolumeView } from '../api/volume-routes.js';

export const DEFAULT_API = '127.0.0.1:7401';
/** Largest JSON response the client will buffer; file bodies are streamed instead. */
const MAX_JSON_RESPONSE_BYTES = 16 << 20;
const DEFAULT_TIMEOUT_MS = 30_000;
/** How long an upload cut short by the node waits for the answer that says why, before reporting the broken pipe. */
const UPLOAD_ANSWER_GRACE_MS = 1_000;
const requireBuiltin = createRequire(import.meta.url);

/**
 * node:http, loaded on the first request that goes through it: a download reads its own socket
 * and needs none.
 */
let httpModule: typeof import('node:http') | undefined;
function httpSide(): typeof import('node:http') {
  httpModule ??= requireBuiltin('node:http') as typeof import('node:http');
  return httpModule;
}

/**
 * node:https and node:tls, with node:crypto under them, loaded on the first HTTPS request:
 * required at the top they cost every client command's start, and a plain HTTP API needs none.
 */
let tlsModules: { https: typeof import('node:https'); connect: typeof connectTls } | undefined;
function tlsSide(): NonNullable<typeof tlsModules> {
  if (!tlsModules) {
    const https = requireBuiltin('node:https') as typeof import('node:https');
    const tls = requireBuiltin('node:tls') as typeof import('node:tls');
    tlsModules = { https, connect: tls.connect };
  }
  return tlsModules;
}

/**
 * A kept-alive connection idle this long is closed by the client, before the node's API closes it
 * (its keepAliveTimeout, API_KEEP_ALIVE_TIMEOUT_MS, is 5 s): a request then rarely goes out on a
 * connection the node is closing, and the one that does is resent (see resend.ts).
 */
export const CLIENT_IDLE_SOCKET_MS = 4_000;
/** Idle connections one client keeps open to its node; more in flight are closed when done. */
export const MAX_IDLE_SOCKETS = 64;

/** Whether a request may go on a kept-alive connection, or needs a connection of its own. */
type Connection = 'pooled' | 'fresh';

/**
 * How the client trusts a node's HTTPS API: a pinned certificate (the self-signed one `init`
 * made, read from the data directory), or, with neither field, the system's CAs and host name.
 */
export interface ApiTlsTrust {
  /** PEM of the certificate to pin; it is the only one trusted. */
  certPem?: string;
  /** Its SHA-256 fingerprint (AA:BB:...); a node presenting another is refused. */
  fingerprint256?: string;
}

export interface ConnectOptions {
  /** host:port of a node's API; default `TESSERA_API` or 127.0.0.1:7401. */
  api?: string;
  /** Bearer token (DATA/api-token); default `TESSERA_TOKEN`. */
  token?: string;
  timeoutMs?: number;
  /** Speak HTTPS (also chosen by an `https://` prefix on `api`). */
  tls?: ApiTlsTrust;
}

export interface RequestOptions {
  method?: string;
  body?: unknown;
  headers?: Record<string, string>;
}

export type { DownloadInfo, DownloadSink, PieceReader };

/** A source the client reads into its own buffers (a file), not one that yields pieces. */
function isPieceReader(source: unknown): source is PieceReader {
  return typeof source === 'object' && source !== null && typeof (source as PieceReader).readInto === 'function';
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
  private readonly tls: ApiTlsTrust | undefined;
  /** Kept-alive connections to the node, made on the first pooled request. */
  private pool: HttpAgent | undefined;

  constructor(opts: ConnectOptions = {}) {
    const given = opts.api ?? process.env.TESSERA_API ?? DEFAULT_API;
    const scheme = /^(https?):\/\//.exec(given)?.[1];
    const api = scheme ? given.slice(scheme.length + 3).replace(/\/$/, '') : given;
    ({ host: this.host, port: this.port } = parseHostPort(api, 'API address'));
    this.tls = opts.tls ?? (scheme === 'https' ? {} : undefined);
    this.token = opts.token ?? process.env.TESSERA_TOKEN;
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  }

  get address(): string {
    return `${this.tls ? 'https://' : ''}${this.host}:${this.port}`;
  }

  /** TLS options that trust the node's certificate as configured: pinned, or the system's CAs. */
  private tlsTrust(t: ApiTlsTrust): { ca?: string; checkServerIdentity?: (host: string, cert: PeerCertificate) => Error | undefined } {
    const pinned = t.fingerprint256;
    return {
      ...(t.certPem !== undefined ? { ca: t.certPem } : {}),
      ...(pinned !== undefined
        ? {
            checkServerIdentity: (_host: string, cert: PeerCertificate) =>
              cert.fingerprint256 === pinned
                ? undefined
                : new TesseraError('AUTH', `the node API at ${this.address} presented certificate ${cert.fingerprint256}, not the pinned ${pinned}; check --api, or the data directory's api-cert.pem`),
          }
        : {}),
    };
  }

  /**
   * One HTTP or HTTPS request; with a pinned certificate, a node presenting another is refused
   * before the token is sent. Pooled requests share this client's kept-alive connections: the
   * pool is the client's own, so a connection checked against one client's pin never carries
   * another client's request.
   */
  private send(o: HttpRequestOptions, connection: Connection, onResponse?: (res: IncomingMessage) => void): ClientRequest {
    const t = this.tls;
    if (t === undefined) {
      const http = httpSide();
      const agent = connection === 'fresh' ? false : (this.pool ??= new http.Agent(POOL_OPTIONS));
      return http.request({ ...o, agent }, onResponse);
    }
    const { https } = tlsSide();
    const agent = connection === 'fresh' ? false : (this.pool ??= new https.Agent(POOL_OPTIONS));
    return https.request({ ...o, agent, ...this.tlsTrust(t) }, onResponse);
  }

  /** Closes this client's idle kept-alive connections (they close by themselves after CLIENT_IDLE_SOCKET_MS). */
  close(): void {
    this.pool?.destroy();
    this.pool = undefined;
  }

  /** A raw connection for a download, read with `onread`; TLS with the same trust as every request. */
  private openStream(onread: OnReadOpts): Socket {
    const t = this.tls;
    if (t === undefined) return connectTcp({ host: this.host, port: this.port, onread });
    // tls.connect takes `onread` as net.connect does (the TLS socket reads decrypted bytes into it);
    // @types/node leaves it out of ConnectionOptions.
    return tlsSide().connect({ host: this.host, port: this.port, onread, ...this.tlsTrust(t) } as ConnectionOptions);
  }

  status(): Promise<StatusView> {
    return this.json<StatusView>('/api/v1/status');
  }

  repair(): Promise<RepairStatusView> {
    return this.json<RepairStatusView>('/api/v1/repair');
  }

  /** Runs a scrub pass on this node now and reports what it found and repaired. */
  scrub(): Promise<ScrubReportView> {
    return this.json<ScrubReportView>('/api/v1/scrub', { method: 'POST', body: {} });
  }

  /** Starts draining a node (this one by default), or cancels it. */
  drain(node?: string, opts: { cancel?: boolean } = {}): Promise<DrainStateView> {
    return this.json<DrainStateView>('/api/v1/drain', { method: 'POST', body: { ...(node ? { node } : {}), ...(opts.cancel ? { cancel: true } : {}) } });
  }

  drainState(node?: string): Promise<DrainStateView> {
    return this.json<DrainStateView>(`/api/v1/drain${node ? `?node=${encodeURIComponent(node)}` : ''}`);
  }

  /** Ids of the chunks a node stores. */
  chunks(): Promise<{ ids: string[]; truncated: boolean }> {
    return this.json<{ ids: string[]; truncated: boolean }>('/api/v1/chunks');
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

  buckets(opts: TableListQuery = {}): Promise<{ buckets: BucketView[]; token: string | null }> {
    return this.json(`/api/v1/buckets${listQuery(opts)}`);
  }

  createBucket(name: string, policy?: RedundancyPolicy): Promise<BucketView> {
    return this.json<BucketView>('/api/v1/buckets', { method: 'POST', body: { name, ...(policy ? { policy } : {}) } });
  }

  removeBucket(name: string): Promise<{ removed: string }> {
    return this.json(`/api/v1/buckets/${encodeURIComponent(name)}`, { method: 'DELETE' });
  }

  /** One page of a bucket's object records in key order; pass `token` back for the next. */
  listObjects(bucket: string, opts: TableListQuery = {}): Promise<{ objects: ObjectView[]; token: string | null }> {
    return this.json(`/api/v1/buckets/${encodeURIComponent(bucket)}/objects${listQuery(opts)}`);
  }

  putObjectRecords(bucket: string, objects: ReadonlyArray<{ key: string; record: ObjectRecord }>): Promise<{ written: number }> {
    return this.json(`/api/v1/buckets/${encodeURIComponent(bucket)}/objects`, { method: 'PUT', body: { objects } });
  }

  objectRecord(bucket: string, key: string): Promise<ObjectView> {
    return this.json<ObjectView>(`/api/v1/buckets/${encodeURIComponent(bucket)}/object?key=${encodeURIComponent(key)}`);
  }

  removeObjectRecord(bucket: string, key: string): Promise<{ removed: string }> {
    return this.json(`/api/v1/buckets/${encodeURIComponent(bucket)}/object?key=${encodeURIComponent(key)}`, { method: 'DELETE' });
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
    const method = opts.method ?? 'GET';
    const o = { host: this.host, port: this.port, path, method, headers };
    // A streamed body cannot be written twice, so it goes on a connection of its own: a kept-alive
    // one might be closing under it.
    const bodyStream = opts.bodyStream;
    let res: IncomingMessage | undefined;
    for (let resends = 0; res === undefined; resends++) {
      const connection: Connection = bodyStream || resends > 0 ? 'fresh' : 'pooled';
      const attempt = await this.attempt(o, connection, (req) => (bodyStream ? bodyStream.pipe(req) : req.end(payload)));
      if ('res' in attempt) res = attempt.res;
      // The rule is loaded only when an attempt fails: every client command's start pays for each module it opens.
      else if (!(await import('./resend.js')).mayResend({ method, code: attempt.err.code, reusedSocket: attempt.reusedSocket, answerStarted: attempt.answerStarted, replayable: !bodyStream, resends })) {
        throw attempt.err instanceof TesseraError ? attempt.err : this.connectionError(attempt.err);
      }
    }
    res.setTimeout(0);
    if (res.statusCode !== undefined && res.statusCode >= 400) throw await errorFrom(res);
    return res;
  }

  /**
   * One attempt at a request: its response, or the error with what is known about how far the
   * attempt got (whether its connection was a reused one, whether any byte of an answer came).
   */
  private attempt(
    o: HttpRequestOptions,
    connection: Connection,
    write: (req: ClientRequest) => void,
  ): Promise<{ res: IncomingMessage } | { err: NodeJS.ErrnoException; reusedSocket: boolean; answerStarted: boolean }> {
    return new Promise((resolve) => {
      const req = this.send(o, connection, (res) => resolve({ res }));
      let readBefore = 0;
      let socket: Socket | undefined;
      req.once('socket', (s: Socket) => {
        socket = s;
        readBefore = s.bytesRead;
      });
      req.setTimeout(this.timeoutMs, () => req.destroy(new TesseraError('TIMEOUT', `node API at ${this.address} did not answer within ${this.timeoutMs} ms`)));
      req.on('error', (err: NodeJS.ErrnoException) =>
        resolve({ err, reusedSocket: req.reusedSocket, answerStarted: socket !== undefined && socket.bytesRead > readBefore }),
      );
      write(req);
    });
  }

  private connectionError(err: NodeJS.ErrnoException): TesseraError {
    if (err.code === 'ECONNREFUSED') return new TesseraError('UNAVAILABLE', `no tessera node answers at ${this.address}: is 'tessera node' running there? (set --api or TESSERA_API)`);
    return new TesseraError('UNAVAILABLE', `cannot reach the node API at ${this.address}: ${err.message}`);
  }

  /**
   * Reads a file (or bytes start..end, both inclusive) by id or name into `sink`, at the speed the
   * node serves it: each connection is read straight into a few large buffers that the sink takes
   * in turn (see download.ts), and a file larger than one window comes as a few byte ranges at
   * once (see ranges.ts). Memory stays within RANGES_IN_FLIGHT × RANGE_BATCHES ×
   * DOWNLOAD_BATCH_BYTES.
   */
  download(
    ref: string,
    sink: DownloadSink,
    opts: { start?: number; end?: number; signal?: AbortSignal; windowBytes?: number; inFlight?: number } = {},
  ): Promise<DownloadInfo> {
    rangeHeader(opts.start, opts.end);
    // Refused before anything is sent, as node:http refuses it: a line break would start a header of its own.
    if (this.token !== undefined && /[\r\n]/.test(this.token)) throw new TesseraError('BAD_INPUT', 'the authorization header may not hold a line break; check the token');
    return downloadInRanges({
      ref,
      sink,
      address: this.address,
      fetch: (req) => this.fetchOne(req),
      ...(opts.start !== undefined ? { start: opts.start } : {}),
      ...(opts.end !== undefined ? { end: opts.end } : {}),
      ...(opts.signal ? { signal: opts.signal } : {}),
      ...(opts.windowBytes !== undefined ? { windowBytes: opts.windowBytes } : {}),
      ...(opts.inFlight !== undefined ? { inFlight: opts.inFlight } : {}),
    });
  }

  /** One GET of a file or one range of it, on a connection of its own read by download.ts. */
  private fetchOne(req: RangeRequest): Promise<DownloadInfo> {
    const headers: Record<string, string> = { host: this.hostHeader, connection: 'close' };
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    if (req.range) headers.range = rangeHeader(req.range.start, req.range.end) as string;
    for (const [k, v] of Object.entries(headers)) {
      // node:http refuses these too: a line break in a value would start a header of its own.
      if (/[\r\n]/.test(v)) throw new TesseraError('BAD_INPUT', `the ${k} header may not hold a line break; check the token`);
    }
    const head = `GET /api/v1/files/${encodeURIComponent(req.ref)} HTTP/1.1\r\n${Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`;
    return download({
      open: (onread) => this.openStream(onread),
      request: head,
      sink: req.sink,
      signal: req.signal,
      batches: req.batches,
      pool: req.pool,
      idleTimeoutMs: this.timeoutMs,
      connectionError: (err) => this.connectionError(err),
      statusError: (status, body) => {
        const err = errorFromBody(status, body);
        // ranges.ts reads a 416 to a whole-file request as an empty file.
        return status === 416 ? new TesseraError(err.code, err.message, { ...err.details, httpStatus: 416 }) : err;
      },
      address: this.address,
    });
  }

  /** The Host header node:http would send: the API checks it against DNS rebinding. */
  private get hostHeader(): string {
    return `${this.host.includes(':') ? `[${this.host}]` : this.host}:${this.port}`;
  }

  /**
   * Stores a file from a byte stream, streamed to the node as it is read (never buffered whole).
   * A transfer may take as long as it needs; only a connection idle for the client's timeout fails.
   * A PieceReader (a file) is read into a few buffers of the client's, used again and again.
   */
  async put(
    source: NodeJS.ReadableStream | AsyncIterable<Uint8Array> | PieceReader,
    opts: {
      name?: string;
      replicas?: number;
      quorum?: number;
      chunkSize?: number;
      ec?: string;
      signal?: AbortSignal;
      /** The source's exact length, when known (a regular file): sent as Content-Length instead of chunked encoding. */
      size?: number;
    } = {},
  ): Promise<PutResultView> {
    const q = new URLSearchParams();
    if (opts.name !== undefined) q.set('name', opts.name);
    if (opts.ec !== undefined) q.set('ec', opts.ec);
    for (const k of ['replicas', 'quorum', 'chunkSize'] as const) {
      const v = opts[k];
      if (v === undefined) continue;
      if (!Number.isSafeInteger(v) || v < 0) throw new TesseraError('BAD_INPUT', `${k} must be a whole number, not ${v}`);
      q.set(k, String(v));
    }
    const path = `/api/v1/files${q.size > 0 ? `?${q.toString()}` : ''}`;
    if (opts.size !== undefined && (!Number.isSafeInteger(opts.size) || opts.size < 0)) throw new TesseraError('BAD_INPUT', `size must be a whole number of bytes, not ${opts.size}`);
    const res = await this.upload(path, isPieceReader(source) ? source : (source as AsyncIterable<unknown>), opts.signal, opts.size);
    return JSON.parse((await readBounded(res)).toString('utf8')) as PutResultView;
  }

  /** Streams a file (or bytes start..end, both inclusive, like HTTP Range) by id or name. */
  async get(
    ref: string,
    opts: { start?: number; end?: number; signal?: AbortSignal } = {},
  ): Promise<{ fileId: string; size: number; totalSize: number; stream: Readable }> {
    const headers: Record<string, string> = {};
    const range = rangeHeader(opts.start, opts.end);
    if (range) headers.range = range;
    opts.signal?.throwIfAborted();
    const res = await this.raw(`/api/v1/files/${encodeURIComponent(ref)}`, { headers });
    // Idle, not total: a long download never times out while bytes keep arriving.
    res.setTimeout(this.timeoutMs, () => res.destroy(new TesseraError('TIMEOUT', `node API at ${this.address} sent nothing for ${this.timeoutMs} ms`)));
    if (opts.signal) {
      const signal = opts.signal;
      const onAbort = () => res.destroy(new TesseraError('CANCELLED', 'download cancelled'));
      signal.addEventListener('abort', onAbort, { once: true });
      res.once('close', () => signal.removeEventListener('abort', onAbort));
    }
    const size = Number(res.headers['content-length']);
    const totalSize = Number(res.headers['x-tessera-size']);
    const fileId = String(res.headers['x-tessera-file-id'] ?? '');
    if (!Number.isSafeInteger(size) || !Number.isSafeInteger(totalSize) || fileId === '') {
      res.destroy();
      throw new TesseraError('PROTOCOL', `node API at ${this.address} answered a file read without its size or id headers`);
    }
    return { fileId, size, totalSize, stream: res };
  }

  rm(ref: string): Promise<RmResultView> {
    return this.json<RmResultView>(`/api/v1/files/${encodeURIComponent(ref)}`, { method: 'DELETE' });
  }

  /** One page of names in byte order, from `after` (or a page's `token`) on. */
  ls(opts: { prefix?: string; after?: string; token?: string; limit?: number } = {}): Promise<FileListView> {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(opts)) if (v !== undefined) q.set(k, String(v));
    const qs = q.toString();
    return this.json<FileListView>(`/api/v1/files${qs ? `?${qs}` : ''}`);
  }

  stat(ref: string): Promise<FileStatView> {
    return this.json<FileStatView>(`/api/v1/files/${encodeURIComponent(ref)}/stat`);
  }

  /** Writes `source` as a chunked request body, honouring backpressure; stops early if the node answers first (an error). */
  private upload(path: string, source: AsyncIterable<unknown> | PieceReader, signal?: AbortSignal, size?: number): Promise<IncomingMessage> {
    const headers: Record<string, string> = { 'content-type': 'application/octet-stream' };
    if (size !== undefined) headers['content-length'] = String(size);
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    return new Promise<IncomingMessage>((resolve, reject) => {
      let settled = false;
      const fail = (err: TesseraError) => {
        if (settled) return;
        settled = true;
        req.destroy();
        reject(err);
      };
      // A streamed upload cannot be resent, so it never rides a kept-alive connection that may be closing.
      const req = this.send({ host: this.host, port: this.port, path, method: 'PUT', headers }, 'fresh');
      req.setTimeout(this.timeoutMs, () => fail(new TesseraError('TIMEOUT', `node API at ${this.address} made no progress for ${this.timeoutMs} ms`)));
      const onAbort = () => fail(new TesseraError('CANCELLED', 'upload cancelled'));
      signal?.addEventListener('abort', onAbort, { once: true });
      req.on('error', (err: NodeJS.ErrnoException) => {
        if (err instanceof TesseraError) fail(err);
        else if (err.code === 'ECONNREFUSED') fail(new TesseraError('UNAVAILABLE', `no tessera node answers at ${this.address}: is 'tessera node' running there? (set --api or TESSERA_API)`));
        else if (err.code === 'EPIPE' || err.code === 'ECONNRESET') {
          // A node that refuses a put before reading its body answers and closes: the write fails
          // first, but the answer (which names the reason) may still be on its way.
          setTimeout(() => fail(new TesseraError('UNAVAILABLE', `upload to the node API at ${this.address} failed: ${err.message}`)), UPLOAD_ANSWER_GRACE_MS).unref();
        } else fail(new TesseraError('UNAVAILABLE', `upload to the node API at ${this.address} failed: ${err.message}`));
      });
      req.on('response', (res) => {
        signal?.removeEventListener('abort', onAbort);
        res.setTimeout(0);
        if (res.statusCode !== undefined && res.statusCode >= 400) {
          errorFrom(res).then((e) => fail(e), () => fail(new TesseraError('INTERNAL', `node API answered HTTP ${res.statusCode}`)));
          return;
        }
        if (settled) return res.destroy();
        settled = true;
        resolve(res);
      });
      // A source that turns out longer or shorter than the length sent must not pass for the
      // file: the node would store a cut or mis-framed body.
      const changed = (sent: number) =>
        new TesseraError('IO', `the source changed while it was being stored: ${sent} bytes where ${size} were announced; nothing was kept`);
      let sent = 0;
      const countSent = (bytes: number) => {
        sent += bytes;
        if (size !== undefined && sent > size) throw changed(sent);
      };
      const pumpReader = async (reader: PieceReader) => {
        const { pumpPieces } = await import('./upload-source.js');
        const done = await pumpPieces(reader, {
          write: (piece, cb) => req.write(piece, cb),
          stopped: () => settled || req.destroyed,
          onGone: (wake) => {
            req.on('close', wake);
            return () => req.off('close', wake);
          },
        }, countSent);
        if (done === undefined || settled) return;
        if (size !== undefined && sent !== size) throw changed(sent);
        req.end();
      };
      const pump = async () => {
        if (isPieceReader(source)) return pumpReader(source);
        for await (const piece of source) {
          if (settled) return;
          if (!(piece instanceof Uint8Array)) throw new TesseraError('BAD_INPUT', 'upload source must yield bytes (Buffer or Uint8Array), not text; open files without an encoding');
          sent += piece.length;
          if (size !== undefined && sent > size) throw changed(sent);
          if (!req.write(piece)) {
            await new Promise<void>((r) => {
              const done = () => {
                req.off('drain', done);
                req.off('close', done);
                r();
              };
              req.on('drain', done);
              req.on('close', done);
            });
          }
        }
        if (size !== undefined && sent !== size) throw changed(sent);
        if (!settled) req.end();
      };
      pump().catch((err: unknown) =>
        fail(err instanceof TesseraError ? err : new TesseraError('IO', `reading the upload source failed: ${(err as Error)?.message ?? String(err)}`)),
      );
    });
  }

  async json<T>(path: string, opts: RequestOptions = {}): Promise<T> {
    const res = await this.raw(path, opts);
    let body: Buffer;
    try {
      body = await readBounded(res);
    } catch (err) {
      // The answer had begun, so the request is never resent: the caller learns it broke.
      throw err instanceof TesseraError ? err : new TesseraError('UNAVAILABLE', `the connection to the node API at ${this.address} broke during its answer: ${(err as Error).message}`);
    }
    return JSON.parse(body.toString('utf8')) as T;
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

/** The Range header for bytes start..end (both inclusive), or undefined for the whole file. */
function rangeHeader(start: number | undefined, end: number | undefined): string | undefined {
  for (const [k, v] of [['start', start], ['end', end]] as const) {
    if (v !== undefined && (!Number.isSafeInteger(v) || v < 0)) throw new TesseraError('BAD_INPUT', `range ${k} must be a non-negative whole number, not ${v}`);
  }
  if (start !== undefined && end !== undefined && end < start) throw new TesseraError('BAD_INPUT', `range end ${end} is before its start ${start}`);
  return start !== undefined || end !== undefined ? `bytes=${start ?? 0}-${end ?? ''}` : undefined;
}

async function errorFrom(res: IncomingMessage): Promise<TesseraError> {
  let body: Buffer = Buffer.alloc(0);
  try {
    body = await readBounded(res);
  } catch {
    /* too long to be an error body: fall through to the status line */
  }
  return errorFromBody(res.statusCode ?? 0, body);
}

/** The API's JSON error, or one naming the status when the body is not one. */
function errorFromBody(status: number, raw: Buffer): TesseraError {
  let body: ApiErrorBody | undefined;
  try {
    body = JSON.parse(raw.toString('utf8')) as ApiErrorBody;
  } catch {
    /* not JSON: fall through to the status line */
  }
  if (body?.error?.code && body.error.message) return new TesseraError(body.error.code as ErrorCode, body.error.message);
  return new TesseraError('INTERNAL', `node API answered HTTP ${status}`);
}

/** Kept-alive connections, each closed by the client after CLIENT_IDLE_SOCKET_MS idle. */
const POOL_OPTIONS = { keepAlive: true, timeout: CLIENT_IDLE_SOCKET_MS, maxFreeSockets: MAX_IDLE_SOCKETS, scheduling: 'lifo' } as const;

export function connect(opts: ConnectOptions = {}): TesseraClient {
  return new TesseraClient(opts);
}

export interface TableListQuery {
  prefix?: string;
  after?: string;
  token?: string;
  limit?: number;
}

export type BucketView = BucketEntry;
export type ObjectView = ObjectEntry;

function listQuery(q: TableListQuery): string {
  const p = new URLSearchParams();
  if (q.prefix !== undefined) p.set('prefix', q.prefix);
  if (q.after !== undefined) p.set('after', q.after);
  if (q.token !== undefined) p.set('token', q.token);
  if (q.limit !== undefined) p.set('limit', String(q.limit));
  const s = p.toString();
  return s ? `?${s}` : '';
}
