/**
 * The NBD face: accepts connections on TCP or a unix socket and serves the volumes of a
 * VolumeProvider. Knows nothing of how the volumes store their blocks.
 */
import net from 'node:net';
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
  private readonly opts: Required<Omit<NbdServerOptions, 'provider' | 'logger'>>;
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
    };
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
      if ('socket' in target) server.listen(target.socket, ready);
      else server.listen(target.port, target.host, ready);
    });
    const a = server.address();
    this.bound = typeof a === 'string' || a === null ? { socket: 'socket' in target ? target.socket : String(a) } : { host: a.address, port: a.port };
    this.logger.info({ address: this.bound }, 'NBD server listening');
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
      this.logger.warn({ remote: socket.remoteAddress, active: this.conns.size }, 'NBD connection refused: server closing or at its connection limit');
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
      });
    } catch (err) {
      outcome = { kind: 'closed' as const, reason: (err as Error).message };
    } finally {
      clearTimeout(timer);
    }
    if (outcome.kind !== 'transmission') {
      if (outcome.kind === 'violation') {
        this.stats.protocolErrors++;
        log.warn({ reason: outcome.reason }, 'NBD handshake violation; disconnecting');
      } else log.debug({ reason: outcome.reason }, 'NBD handshake ended');
      this.stats.handshakesFailed++;
      await endSocket(socket, outcome.kind === 'violation');
      return;
    }
    this.stats.handshakesCompleted++;
    const neg = outcome.negotiated;
    log.debug({ export: neg.exportName, structured: neg.structuredReplies }, 'NBD client entered transmission');
    const t = new Transmission(socket, reader, neg, this.stats, log.child({ export: neg.exportName }), {
      maxInFlight: this.opts.maxInFlight,
      maxInFlightBytes: this.opts.maxInFlightBytes,
    });
    conn.transmission = t;
    if (this.closing) t.stop();
    const end = await t.run();
    if (end === 'violation') this.stats.protocolErrors++;
    await endSocket(socket, end === 'violation');
    await closeQuietly(neg.device, log);
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
