/**
 * The NBD face: accepts connections on TCP or a unix socket and serves the volumes of a
 * VolumeProvider. Knows nothing of how the volumes store their blocks.
 */
import { chmod } from 'node:fs/promises';
import net from 'node:net';
import { createSecureContext, type SecureContext, type TlsOptions } from 'node:tls';
import type { VolumeProvider } from '../index.js';
import type { Logger } from '../../log.js';
import { silentLogger } from '../../log.js';
import { TesseraError } from '../../errors.js';
import { SocketReader } from './socket-reader.js';
import { closeQuietly, negotiate } from './handshake.js';
import { Transmission } from './transmission.js';
import { newCounters, snapshotCounters, type NbdCounters } from './counters.js';
import * as L from './limits.js';
import * as P from './protocol.js';
import { InFlightLimiter } from './in-flight.js';
import { RefusalLog } from './refusal-log.js';
import { checkTlsPolicy, startTls, tlsServerOptions, type NbdTls } from './tls.js';

export interface NbdServerOptions {
  provider: VolumeProvider;
  logger?: Logger;
  /** Requests in flight per connection (default DEFAULT_MAX_IN_FLIGHT). */
  maxInFlight?: number;
  /** Payload bytes in flight per connection (default DEFAULT_MAX_IN_FLIGHT_BYTES). */
  maxInFlightBytes?: number;
  /** Largest request length advertised and accepted (default and ceiling MAX_PAYLOAD_BYTES). */
  maxPayloadBytes?: number;
  maxConnections?: number;
  handshakeTimeoutMs?: number;
  closeGraceMs?: number;
  /** Payload bytes in flight across all connections (default DEFAULT_MAX_TOTAL_IN_FLIGHT_BYTES). */
  maxTotalInFlightBytes?: number;
  /** A connection with nothing in flight and no traffic for this long is closed; 0 never. */
  idleTimeoutMs?: number;
  /** TLS mode and credentials (default off). */
  tls?: NbdTls;
  /** Serve TCP beyond loopback without required TLS (the operator said the network is trusted). */
  allowPlaintext?: boolean;
}

export type NbdListenTarget = { host: string; port: number } | { socket: string };
export type NbdAddress = { host: string; port: number } | { socket: string };

interface Conn {
  socket: net.Socket;
  transmission: Transmission | null;
  /** Resolves when the connection has finished and released its device. */
  done: Promise<void>;
}

export class NbdServer {
  private readonly provider: VolumeProvider;
  private readonly logger: Logger;
  private readonly opts: Required<Omit<NbdServerOptions, 'provider' | 'logger' | 'tls' | 'allowPlaintext' | 'idleTimeoutMs'>> & { idleTimeoutMs: number };
  private readonly tls: NbdTls;
  private readonly allowPlaintext: boolean;
  private readonly tlsOptions: TlsOptions | undefined;
  private readonly tlsContext: SecureContext | undefined;
  private readonly shared: InFlightLimiter;
  private readonly refusals: RefusalLog;
  private readonly stats = newCounters();
  private readonly conns = new Set<Conn>();
  private server: net.Server | null = null;
  private closing = false;
  private bound: NbdAddress | null = null;

  constructor(options: NbdServerOptions) {
    this.provider = options.provider;
    this.logger = options.logger ?? silentLogger;
    const positive = (v: number | undefined, d: number, what: string) => {
      const n = v ?? d;
      if (!Number.isSafeInteger(n) || n <= 0) throw new TesseraError('BAD_INPUT', `NBD server option ${what} must be a positive integer, got ${v}`);
      return n;
    };
    const maxPayloadBytes = positive(options.maxPayloadBytes, L.MAX_PAYLOAD_BYTES, 'maxPayloadBytes');
    if (maxPayloadBytes > L.MAX_PAYLOAD_BYTES) {
      throw new TesseraError('TOO_LARGE', `NBD maxPayloadBytes ${maxPayloadBytes} exceeds the ceiling ${L.MAX_PAYLOAD_BYTES}`);
    }
    this.opts = {
      maxInFlight: positive(options.maxInFlight, L.DEFAULT_MAX_IN_FLIGHT, 'maxInFlight'),
      maxInFlightBytes: positive(options.maxInFlightBytes, L.DEFAULT_MAX_IN_FLIGHT_BYTES, 'maxInFlightBytes'),
      maxPayloadBytes,
      maxConnections: positive(options.maxConnections, L.DEFAULT_MAX_CONNECTIONS, 'maxConnections'),
      handshakeTimeoutMs: positive(options.handshakeTimeoutMs, L.DEFAULT_HANDSHAKE_TIMEOUT_MS, 'handshakeTimeoutMs'),
      closeGraceMs: positive(options.closeGraceMs, L.DEFAULT_CLOSE_GRACE_MS, 'closeGraceMs'),
      maxTotalInFlightBytes: positive(options.maxTotalInFlightBytes, L.DEFAULT_MAX_TOTAL_IN_FLIGHT_BYTES, 'maxTotalInFlightBytes'),
      idleTimeoutMs: options.idleTimeoutMs ?? L.DEFAULT_IDLE_TIMEOUT_MS,
    };
    if (!Number.isSafeInteger(this.opts.idleTimeoutMs) || this.opts.idleTimeoutMs < 0 || this.opts.idleTimeoutMs > L.MAX_IDLE_TIMEOUT_MS) {
      throw new TesseraError('BAD_INPUT', `NBD idle timeout must be 0 (never) to ${L.MAX_IDLE_TIMEOUT_MS} ms, got ${options.idleTimeoutMs}`);
    }
    this.shared = new InFlightLimiter(Number.MAX_SAFE_INTEGER, this.opts.maxTotalInFlightBytes);
    this.refusals = new RefusalLog(this.logger);
    this.tls = options.tls ?? { mode: 'off' };
    this.allowPlaintext = options.allowPlaintext === true;
    if (this.tls.mode !== 'off' && this.tls.credentials !== undefined) {
      this.tlsOptions = tlsServerOptions(this.tls.credentials);
      this.tlsContext = createSecureContext(this.tlsOptions);
    }
  }

  /** A copy of the counters, for metrics. */
  get counters(): NbdCounters {
    return snapshotCounters(this.stats);
  }

  get address(): NbdAddress | null {
    return this.bound;
  }

  async listen(target: NbdListenTarget): Promise<NbdAddress> {
    if (this.server) throw new TesseraError('CONFLICT', 'NBD server is already listening');
    checkTlsPolicy(this.tls, 'socket' in target ? null : target.host, this.allowPlaintext);
    const server = net.createServer({ noDelay: true }, (s) => this.accept(s));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException) => {
        this.server = null;
        const where = 'socket' in target ? target.socket : `${target.host}:${target.port}`;
        const fix = err.code === 'EADDRINUSE' ? ' (another process holds it: stop it or choose another address)' : '';
        reject(new TesseraError('IO', `cannot listen for NBD on ${where}: ${err.message}${fix}`, undefined, { cause: err }));
      };
      server.once('error', onError);
      const ready = () => {
        server.off('error', onError);
        server.on('error', (err) => this.logger.error({ err }, 'NBD listener error'));
        resolve();
      };
      if ('socket' in target) listenOwnerOnly(server, target.socket, ready);
      else server.listen(target.port, target.host, ready);
    });
    if ('socket' in target) await chmod(target.socket, SOCKET_MODE);
    const a = server.address();
    this.bound = typeof a === 'string' || a === null ? { socket: 'socket' in target ? target.socket : String(a) } : { host: a.address, port: a.port };
    this.logger.info({ address: this.bound, tls: this.tls.mode }, 'NBD server listening');
    return this.bound;
  }

  /** Stops accepting, lets in-flight requests finish (up to closeGraceMs), then drops every client. */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    const server = this.server;
    const stopped = server ? new Promise<void>((r) => server.close(() => r())) : Promise.resolve();
    for (const c of this.conns) c.transmission?.stop();
    const settle = Promise.all([...this.conns].map((c) => (c.transmission ? c.transmission.idle() : Promise.resolve())));
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([settle, new Promise<void>((r) => (timer = setTimeout(r, this.opts.closeGraceMs)))]);
    clearTimeout(timer);
    for (const c of this.conns) c.socket.destroy();
    await Promise.all([...this.conns].map((c) => c.done));
    await stopped;
    this.server = null;
  }

  private accept(socket: net.Socket): void {
    if (this.closing || this.conns.size >= this.opts.maxConnections) {
      this.stats.connectionsRejected++;
      this.refusals.warn({ remote: socket.remoteAddress, active: this.conns.size }, 'NBD connection refused: server closing or at its connection limit');
      socket.destroy();
      return;
    }
    this.stats.connectionsAccepted++;
    this.stats.connectionsActive++;
    const conn: Conn = { socket, transmission: null, done: Promise.resolve() };
    this.conns.add(conn);
    conn.done = this.serve(conn)
      .catch((err) => this.logger.warn({ err }, 'NBD connection failed'))
      .finally(() => {
        this.conns.delete(conn);
        this.stats.connectionsActive--;
      });
  }

  /** TLS over a connection; the connection then closes through its TLS socket. */
  private async startTls(conn: Conn, s: net.Socket): Promise<net.Socket> {
    const secure = await startTls(s, this.tlsOptions!, this.tlsContext!);
    secure.on('error', () => {});
    conn.socket = secure;
    return secure;
  }

  private async serve(conn: Conn): Promise<void> {
    const { socket } = conn;
    const log = this.logger.child({ remote: socket.remoteAddress ?? 'unix', port: socket.remotePort });
    // Errors surface through the reader; without a listener Node would throw them.
    socket.on('error', () => {});
    const reader = new SocketReader(socket, this.opts.maxPayloadBytes + P.REQUEST_HEADER_BYTES);
    const timer = setTimeout(() => {
      log.warn({ ms: this.opts.handshakeTimeoutMs }, 'NBD handshake timed out');
      socket.destroy();
    }, this.opts.handshakeTimeoutMs);
    let outcome;
    try {
      outcome = await negotiate({
        socket,
        reader,
        provider: this.provider,
        logger: log,
        maxPayloadBytes: this.opts.maxPayloadBytes,
        isShuttingDown: () => this.closing,
        tlsMode: this.tls.mode,
        makeReader: (s) => new SocketReader(s, this.opts.maxPayloadBytes + P.REQUEST_HEADER_BYTES),
        ...(this.tlsContext !== undefined ? { startTls: (s: net.Socket) => this.startTls(conn, s) } : {}),
      });
    } catch (err) {
      outcome = { kind: 'closed' as const, reason: (err as Error).message };
    } finally {
      clearTimeout(timer);
    }
    if (outcome.kind !== 'transmission') {
      if (outcome.kind === 'violation') {
        this.stats.protocolErrors++;
        this.refusals.warn({ remote: socket.remoteAddress ?? 'unix', reason: outcome.reason }, 'NBD handshake violation; disconnecting');
      } else if (outcome.kind === 'refused') {
        this.stats.tlsRefused++;
        this.refusals.warn({ remote: socket.remoteAddress ?? 'unix', reason: outcome.reason }, 'NBD client refused');
      } else log.debug({ reason: outcome.reason }, 'NBD handshake ended');
      this.stats.handshakesFailed++;
      await endSocket(conn.socket, outcome.kind !== 'closed');
      return;
    }
    const { socket: live, reader: liveReader } = outcome;
    this.stats.handshakesCompleted++;
    const neg = outcome.negotiated;
    log.debug({ export: neg.exportName, structured: neg.structuredReplies }, 'NBD client entered transmission');
    const t = new Transmission(live, liveReader, neg, this.stats, log.child({ export: neg.exportName }), {
      maxInFlight: this.opts.maxInFlight,
      maxInFlightBytes: this.opts.maxInFlightBytes,
      shared: this.shared,
    });
    conn.transmission = t;
    if (this.closing) t.stop();
    if (this.opts.idleTimeoutMs > 0) {
      // Only a connection with nothing in flight is idle: a slow volume is not the client's fault.
      live.setTimeout(this.opts.idleTimeoutMs, () => {
        if (t.inFlight > 0) return;
        this.stats.idleClosed++;
        this.refusals.warn({ remote: socket.remoteAddress ?? 'unix', ms: this.opts.idleTimeoutMs }, 'NBD connection idle; closing it');
        live.destroy();
      });
    }
    const end = await t.run();
    if (end === 'violation') this.stats.protocolErrors++;
    await endSocket(live, end === 'violation');
    await closeQuietly(neg.device, log);
  }
}

/** Only the owner (the user tessera runs as) may connect to the unix socket. */
const SOCKET_MODE = 0o600;

/**
 * Binds a unix socket with no access for group or others from the moment it exists: the umask is
 * narrowed for the synchronous bind only, then the mode is set again once listening.
 */
function listenOwnerOnly(server: net.Server, path: string, ready: () => void): void {
  const old = process.umask(0o177);
  try {
    server.listen(path, ready);
  } finally {
    process.umask(old);
  }
}

/** Flushes queued replies then closes; a hard disconnect drops them. */
function endSocket(socket: net.Socket, hard: boolean): Promise<void> {
  if (socket.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    socket.once('close', () => resolve());
    if (hard) socket.destroy();
    else socket.end();
    // A client that never reads would keep a half-closed socket forever.
    setTimeout(() => socket.destroy(), 5_000).unref();
  });
}
