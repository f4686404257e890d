/**
 * The node's network endpoint: a TLS listener plus a pool of authenticated RPC connections,
 * one per peer, used for calls in both directions.
 */
import * as tls from 'node:tls';
import * as net from 'node:net';
import type { Socket } from 'node:net';
import { TesseraError } from '../errors.js';
import type { Logger } from '../log.js';
import { PROTOCOL_VERSION } from '../limits.js';
import type { NodeCredentials } from './credentials.js';
import {
  DEFAULT_CALL_TIMEOUT_MS,
  DEFAULT_MAX_IN_FLIGHT,
  DEFAULT_MAX_INBOUND_HANDLERS,
  DEFAULT_MAX_QUEUED_INBOUND,
  DEFAULT_MAX_QUEUED_INBOUND_BYTES,
  RpcConnection,
} from './connection.js';
import { DEFAULT_HANDSHAKE_TIMEOUT_MS, runHandshake } from './handshake.js';
import { Backoff, DEFAULT_BACKOFF_BASE_MS, DEFAULT_BACKOFF_MAX_MS } from './backoff.js';
import { formatAddr, parseAddr } from './addr.js';
import { RefusalLog } from './refusal-log.js';
import { unlessAborted } from './abortable.js';
import { BulkPlane } from './bulk-plane.js';
import { BULK_CAPABILITY, BULK_CONTENT_CAPABILITY, TLS_HANDSHAKE_RECORD } from './bulk-wire.js';
import type { BulkPolicy } from './connection.js';
import { MAX_FRAME_PAYLOAD_BYTES } from '../limits.js';
import { newCounters, type CallOptions, type CallResult, type PeerHello, type RequestHandler, type Role, type TransportCounters } from './types.js';

export type { CallOptions, CallResult, IncomingRequest, PeerHello, Reply, RequestHandler, TransportCounters } from './types.js';

/** Open connections (inbound and outbound) a transport accepts before refusing new ones. */
export const DEFAULT_MAX_CONNECTIONS = 1024;
/** Inbound connections still in TLS or admission; a flood of strangers cannot exceed it. */
export const DEFAULT_MAX_PENDING_HANDSHAKES = 256;
/**
 * Of those, from one source address: a single host holding sockets open without speaking
 * cannot take the slots every other peer needs to join. Not much smaller: the members of a local
 * cluster (and nodes behind one NAT) share an address, and restarting together they all dial at
 * once, several connections each while probes and syncs overlap.
 */
export const DEFAULT_MAX_PENDING_HANDSHAKES_PER_SOURCE = 32;
/** Socket buffer sizes: a 1 MiB frame moves in a few reads rather than dozens. */
const SOCKET_HIGH_WATER_MARK = 1 << 20;
/** Payloads smaller than this stay on TLS: a second write costs more than encrypting them. */
export const DEFAULT_BULK_MIN_BYTES = 16 << 10;

/** Methods whose payloads are sealed already (see BulkPolicy); the node names them. */
export interface BulkPlaneOptions {
  requests: readonly string[];
  replies: readonly string[];
  /** Of `requests`, those whose handler hashes the payload against an id it was told (BulkPolicy.contentAddressed). */
  contentAddressed?: readonly string[];
  minBytes?: number;
}

export interface TransportOptions {
  credentials: NodeCredentials;
  clusterId: string;
  clusterSecret: Buffer;
  /** During a rotation of the cluster secret: the old one, still proved and accepted. */
  previousClusterSecret?: Buffer | undefined;
  host: string;
  port: number;
  advertiseAddr?: string;
  capabilities?: string[];
  handler: RequestHandler;
  logger: Logger;
  maxInFlightPerConnection?: number;
  maxInboundHandlersPerConnection?: number;
  maxQueuedInboundPerConnection?: number;
  maxQueuedInboundBytesPerConnection?: number;
  defaultCallTimeoutMs?: number;
  handshakeTimeoutMs?: number;
  backoffBaseMs?: number;
  backoffMaxMs?: number;
  maxConnections?: number;
  maxPendingHandshakes?: number;
  maxPendingHandshakesPerSource?: number;
  /** Largest payload each method accepts (see ConnectionOptions); every method gets the frame limit without it. */
  maxPayloadBytesFor?: (method: string) => number;
  /** Only for testing version negotiation against an older or newer peer. */
  protocolVersion?: number;
  /** Offer and use the bulk plane for these methods' payloads; without it every byte goes over TLS. */
  bulkPlane?: BulkPlaneOptions;
}

export class Transport {
  readonly counters: TransportCounters = newCounters();
  readonly nodeId: string;
  private readonly o: TransportOptions;
  private readonly log: Logger;
  private server: tls.Server | undefined;
  private listener: net.Server | undefined;
  private readonly bulkPolicy: BulkPolicy | undefined;
  private readonly bulk: BulkPlane | undefined;
  private bound: { host: string; port: number } | undefined;
  private closing = false;
  private pendingHandshakes = 0;
  /** Handshakes in progress by source address; an entry goes when its count drops to 0. */
  private readonly pendingBySource = new Map<string, number>();
  private readonly refusals: RefusalLog;
  /** Keyed by remote "ip:port": releases the handshake slot taken when the TCP connection arrived. */
  private readonly handshakeDone = new Map<string, () => void>();
  private readonly byNode = new Map<string, RpcConnection>();
  private readonly addrToNode = new Map<string, string>();
  private readonly dialing = new Map<string, Promise<RpcConnection>>();
  private readonly backoff: Backoff;
  private readonly connections = new Set<RpcConnection>();
  private readonly sockets = new Set<Socket>();

  constructor(opts: TransportOptions) {
    if (opts.clusterSecret.length < 16) throw new TesseraError('BAD_INPUT', `cluster secret must be at least 16 bytes, got ${opts.clusterSecret.length}`);
    this.o = opts;
    this.nodeId = opts.credentials.nodeId;
    this.log = opts.logger.child({ component: 'net', node: this.nodeId.slice(0, 12) });
    this.refusals = new RefusalLog(this.log);
    this.backoff = new Backoff(opts.backoffBaseMs ?? DEFAULT_BACKOFF_BASE_MS, opts.backoffMaxMs ?? DEFAULT_BACKOFF_MAX_MS);
    const b = opts.bulkPlane;
    this.bulkPolicy = b && {
      requests: new Set(b.requests),
      replies: new Set(b.replies),
      contentAddressed: new Set((b.contentAddressed ?? []).filter((m) => b.requests.includes(m))),
      minBytes: b.minBytes ?? DEFAULT_BULK_MIN_BYTES,
      maxTransferBytes: MAX_FRAME_PAYLOAD_BYTES,
    };
    this.bulk = this.bulkPolicy && new BulkPlane({
      policy: this.bulkPolicy,
      counters: this.counters,
      refusals: this.refusals,
      log: this.log,
      sockets: this.sockets,
      handshakeTimeoutMs: opts.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS,
      closing: () => this.closing,
    });
  }

  private get capabilities(): string[] {
    const caps = this.o.capabilities ?? [];
    if (!this.bulkPolicy) return caps;
    return this.bulkPolicy.contentAddressed.size > 0 ? [...caps, BULK_CAPABILITY, BULK_CONTENT_CAPABILITY] : [...caps, BULK_CAPABILITY];
  }

  get listenAddr(): string {
    if (this.o.advertiseAddr !== undefined) return this.o.advertiseAddr;
    if (this.bound === undefined) return '';
    return formatAddr(this.bound.host, this.bound.port);
  }

  /** Live connections, one per peer. */
  get peers(): PeerHello[] {
    return [...this.byNode.values()].map((c) => c.peer);
  }

  /** The connection to this peer has a bound bulk connection it can send on. */
  hasBulkTo(nodeId: string): boolean {
    return this.liveFor(nodeId)?.bulk?.canSend === true;
  }

  private tlsOptions(): tls.SecureContextOptions & tls.CommonConnectionOptions {
    return {
      key: this.o.credentials.privateKeyPem,
      cert: this.o.credentials.certificatePem,
      minVersion: 'TLSv1.3',
      maxVersion: 'TLSv1.3',
      // Peers are self-signed; they are authenticated by node id after the handshake.
      rejectUnauthorized: false,
    };
  }

  async start(): Promise<{ host: string; port: number }> {
    if (this.server) throw new TesseraError('CONFLICT', 'transport already started');
    const server = tls.createServer({
      ...this.tlsOptions(),
      requestCert: true,
      handshakeTimeout: this.o.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS,
      highWaterMark: SOCKET_HIGH_WATER_MARK,
    } as tls.TlsOptions);
    // One port for both planes: the listener looks at each connection's first byte and hands TLS
    // to the TLS server, a bulk binding to the bulk plane.
    const listener = net.createServer({ highWaterMark: SOCKET_HIGH_WATER_MARK });
    listener.maxConnections = this.o.maxConnections ?? DEFAULT_MAX_CONNECTIONS;
    listener.on('connection', (raw: Socket) => this.route(raw, server));
    server.on('connection', (raw: Socket) => {
      const release = this.holdPending(raw);
      if (release === undefined) return;
      const key = `${raw.remoteAddress}:${raw.remotePort}`;
      this.handshakeDone.set(key, release);
      raw.once('close', () => {
        release();
        if (this.handshakeDone.get(key) === release) this.handshakeDone.delete(key);
      });
    });
    server.on('tlsClientError', (err, sock) => {
      this.counters.handshakesFailed++;
      this.refusals.refused(sock.remoteAddress ?? 'unknown', { remote: `${sock.remoteAddress}:${sock.remotePort}`, reason: err.message }, 'TLS handshake refused');
      sock.destroy();
    });
    server.on('secureConnection', (sock: tls.TLSSocket) => void this.accept(sock));
    listener.on('error', (err) => this.log.error({ err: err.message }, 'listener error'));
    await new Promise<void>((resolve, reject) => {
      listener.once('error', reject);
      listener.listen(this.o.port, this.o.host, () => {
        listener.off('error', reject);
        resolve();
      });
    });
    this.listener = listener;
    const a = listener.address();
    if (a === null || typeof a === 'string') throw new TesseraError('INTERNAL', 'listener has no TCP address');
    this.server = server;
    this.bound = { host: this.o.host, port: a.port };
    this.log.info({ listen: this.listenAddr }, 'transport listening');
    return { ...this.bound };
  }

  /**
   * Counts a connection still in TLS, admission or bulk binding against the limits; undefined
   * (and the socket destroyed) when over them. The returned function gives the slot back, once.
   */
  private holdPending(raw: Socket): (() => void) | undefined {
    const source = raw.remoteAddress ?? 'unknown';
    const fromSource = this.pendingBySource.get(source) ?? 0;
    const maxPerSource = this.o.maxPendingHandshakesPerSource ?? DEFAULT_MAX_PENDING_HANDSHAKES_PER_SOURCE;
    const max = this.o.maxPendingHandshakes ?? DEFAULT_MAX_PENDING_HANDSHAKES;
    if (this.closing || fromSource >= maxPerSource || this.pendingHandshakes >= max) {
      if (!this.closing) {
        const perSource = fromSource >= maxPerSource;
        this.refusals.refused(
          source,
          { limit: perSource ? maxPerSource : max },
          perSource ? 'refusing connections: too many handshakes in progress from this address' : 'refusing connections: too many handshakes in progress',
        );
      }
      raw.destroy();
      return undefined;
    }
    this.pendingHandshakes++;
    this.pendingBySource.set(source, fromSource + 1);
    this.sockets.add(raw);
    raw.once('close', () => this.sockets.delete(raw));
    let counted = true;
    return () => {
      if (!counted) return;
      counted = false;
      this.pendingHandshakes--;
      const n = (this.pendingBySource.get(source) ?? 1) - 1;
      if (n > 0) this.pendingBySource.set(source, n);
      else this.pendingBySource.delete(source);
    };
  }

  /** Waits for a new connection's first bytes and hands it to the plane they belong to. */
  private route(raw: Socket, server: tls.Server): void {
    const release = this.holdPending(raw);
    if (release === undefined) return;
    raw.once('close', release);
    const timeoutMs = this.o.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS;
    const timer = setTimeout(() => raw.destroy(), timeoutMs);
    raw.on('error', () => {});
    raw.once('data', (first: Buffer) => {
      clearTimeout(timer);
      raw.pause();
      if (first[0] === TLS_HANDSHAKE_RECORD) {
        release();
        raw.unshift(first);
        server.emit('connection', raw);
        return;
      }
      if (this.bulk === undefined) {
        this.counters.handshakesFailed++;
        this.refusals.refused(raw.remoteAddress ?? 'unknown', { remote: `${raw.remoteAddress}:${raw.remotePort}`, reason: 'connection does not start with TLS' }, 'handshake refused');
        release();
        raw.destroy();
        return;
      }
      this.bulk.accept(raw, first, release);
    });
  }

  private handshakeParams(role: Role, remote: string, expectNodeId?: string) {
    return {
      role,
      credentials: this.o.credentials,
      clusterId: this.o.clusterId,
      clusterSecret: this.o.clusterSecret,
      capabilities: this.capabilities,
      listenAddr: this.listenAddr,
      protocolVersion: this.o.protocolVersion ?? PROTOCOL_VERSION,
      timeoutMs: this.o.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS,
      remote,
      logger: this.log,
      refusals: this.refusals,
      previousClusterSecret: this.o.previousClusterSecret,
      ...(expectNodeId !== undefined ? { expectNodeId } : {}),
    };
  }

  private async accept(sock: tls.TLSSocket): Promise<void> {
    const remote = `${sock.remoteAddress}:${sock.remotePort}`;
    const done = this.handshakeDone.get(remote) ?? (() => {});
    this.handshakeDone.delete(remote);
    try {
      const { peer, decoder } = await runHandshake(sock, this.handshakeParams('acceptor', remote));
      done();
      if (this.closing) return void sock.destroy();
      this.counters.connectionsAccepted++;
      const conn = this.makeConnection(sock, decoder, peer, 'acceptor');
      this.register(conn);
      if (conn.peerUsesBulk) this.bulk?.addSession(conn, sock);
    } catch {
      done();
      this.counters.handshakesFailed++;
    }
  }

  private makeConnection(sock: tls.TLSSocket, decoder: import('../wire/index.js').FrameDecoder, peer: PeerHello, role: Role): RpcConnection {
    return new RpcConnection(sock, decoder, {
      role,
      peer,
      handler: this.o.handler,
      logger: this.log,
      counters: this.counters,
      maxInFlight: this.o.maxInFlightPerConnection ?? DEFAULT_MAX_IN_FLIGHT,
      maxInboundHandlers: this.o.maxInboundHandlersPerConnection ?? DEFAULT_MAX_INBOUND_HANDLERS,
      maxQueuedInbound: this.o.maxQueuedInboundPerConnection ?? DEFAULT_MAX_QUEUED_INBOUND,
      maxQueuedInboundBytes: this.o.maxQueuedInboundBytesPerConnection ?? DEFAULT_MAX_QUEUED_INBOUND_BYTES,
      defaultTimeoutMs: this.o.defaultCallTimeoutMs ?? DEFAULT_CALL_TIMEOUT_MS,
      ...(this.o.maxPayloadBytesFor ? { maxPayloadBytesFor: this.o.maxPayloadBytesFor } : {}),
      // Both ends must offer it: a peer without it is served over TLS as before.
      ...(this.bulkPolicy && peer.capabilities.includes(BULK_CAPABILITY) ? { bulk: this.bulkPolicy } : {}),
      ...(peer.capabilities.includes(BULK_CONTENT_CAPABILITY) ? { bulkUntagged: true } : {}),
    });
  }

  /**
   * Keeps one connection per peer. When both sides dialed at once, both keep the connection
   * dialed by the node with the smaller id, so they agree without talking; between two from the
   * same dialer the newer wins (the older is likely half-dead).
   */
  private register(conn: RpcConnection): void {
    const id = conn.peer.nodeId;
    this.connections.add(conn);
    if (conn.peer.listenAddr !== '') this.addrToNode.set(conn.peer.listenAddr, id);
    conn.onClose((c) => {
      this.connections.delete(c);
      if (this.byNode.get(id) === c) this.byNode.delete(id);
    });
    const existing = this.byNode.get(id);
    if (existing === undefined || existing.closed) {
      this.byNode.set(id, conn);
      return;
    }
    const preferredDialer = this.nodeId < id ? 'dialer' : 'acceptor';
    const keepNew = conn.role === preferredDialer || existing.role !== preferredDialer;
    const [keep, drop] = keepNew ? [conn, existing] : [existing, conn];
    this.byNode.set(id, keep);
    this.log.debug({ peer: id, kept: keep.role, dropped: drop.role }, 'duplicate connection to peer; retiring one');
    drop.retire();
  }

  async call(addr: string, method: string, body: unknown, payload?: Buffer | Buffer[], opts: CallOptions = {}): Promise<CallResult> {
    if (this.closing) throw new TesseraError('UNAVAILABLE', 'transport is closed');
    const timeoutMs = opts.timeoutMs ?? this.o.defaultCallTimeoutMs ?? DEFAULT_CALL_TIMEOUT_MS;
    const deadline = Date.now() + timeoutMs;
    let conn: RpcConnection;
    try {
      conn = await this.connectionFor(addr, opts.expectNodeId, deadline, opts.signal);
    } catch (e) {
      if (e instanceof TesseraError && e.code === 'UNAVAILABLE') this.counters.callsUnavailable++;
      throw e;
    }
    const remaining = Math.max(1, deadline - Date.now());
    const r = await conn.call(method, body, payload, { ...opts, timeoutMs: remaining });
    return { body: r.body, payload: r.payload, peer: conn.peer };
  }

  private liveFor(nodeId: string | undefined): RpcConnection | undefined {
    if (nodeId === undefined) return undefined;
    const c = this.byNode.get(nodeId);
    return c !== undefined && !c.closed ? c : undefined;
  }

  private async connectionFor(addr: string, expectNodeId: string | undefined, deadline: number, signal?: AbortSignal): Promise<RpcConnection> {
    const known = this.liveFor(expectNodeId ?? this.addrToNode.get(addr));
    if (known) return known;
    let conn: RpcConnection;
    const inProgress = this.dialing.get(addr);
    if (inProgress) {
      conn = await raceSignal(inProgress, signal);
    } else {
      const wait = this.backoff.delay(addr);
      if (wait > 0) {
        if (Date.now() + wait >= deadline) {
          throw new TesseraError('UNAVAILABLE', `peer ${addr} is unreachable (${this.backoff.lastError(addr)}); next attempt in ${wait} ms`);
        }
        await sleep(wait, signal);
        const raced = this.liveFor(expectNodeId ?? this.addrToNode.get(addr));
        if (raced) return raced;
      }
      const again = this.dialing.get(addr);
      if (again) {
        conn = await raceSignal(again, signal);
      } else {
        const p = this.dial(addr, expectNodeId, deadline);
        this.dialing.set(addr, p);
        p.finally(() => this.dialing.delete(addr)).catch(() => {});
        conn = await raceSignal(p, signal);
      }
    }
    if (expectNodeId !== undefined && conn.peer.nodeId !== expectNodeId) {
      throw new TesseraError('AUTH', `peer at ${addr} is node ${conn.peer.nodeId}, expected ${expectNodeId}`);
    }
    // A simultaneous dial may have lost to an inbound connection: use the survivor.
    return this.liveFor(conn.peer.nodeId) ?? conn;
  }

  private async dial(addr: string, expectNodeId: string | undefined, deadline: number): Promise<RpcConnection> {
    const { host, port } = parseAddr(addr);
    const handshakeTimeout = Math.max(1, Math.min(this.o.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS, deadline - Date.now()));
    let sock: tls.TLSSocket | undefined;
    try {
      sock = await new Promise<tls.TLSSocket>((resolve, reject) => {
        const s = tls.connect({ ...this.tlsOptions(), host, port, checkServerIdentity: () => undefined, highWaterMark: SOCKET_HIGH_WATER_MARK } as tls.ConnectionOptions);
        this.sockets.add(s);
        s.once('close', () => this.sockets.delete(s));
        const timer = setTimeout(() => {
          s.destroy();
          reject(new TesseraError('UNAVAILABLE', `connecting to ${addr} timed out after ${handshakeTimeout} ms`));
        }, handshakeTimeout);
        s.once('secureConnect', () => {
          clearTimeout(timer);
          s.off('error', onErr);
          resolve(s);
        });
        const onErr = (e: NodeJS.ErrnoException) => {
          clearTimeout(timer);
          s.destroy();
          const netLevel = e.code !== undefined && /^E[A-Z]+$/.test(e.code) && !e.code.startsWith('ERR_');
          reject(
            netLevel
              ? new TesseraError('UNAVAILABLE', `cannot connect to ${addr}: ${e.code}`)
              : new TesseraError('PROTOCOL', `TLS handshake with ${addr} failed: ${e.message}`),
          );
        };
        s.once('error', onErr);
      });
      if (this.closing) throw new TesseraError('UNAVAILABLE', 'transport is closed');
      const { peer, decoder } = await runHandshake(sock, { ...this.handshakeParams('dialer', addr, expectNodeId), timeoutMs: handshakeTimeout });
      this.counters.connectionsDialed++;
      this.backoff.succeeded(addr);
      this.addrToNode.set(addr, peer.nodeId);
      const conn = this.makeConnection(sock, decoder, peer, 'dialer');
      this.register(conn);
      if (conn.peerUsesBulk) this.bulk?.dial(conn, addr, sock);
      return conn;
    } catch (e) {
      sock?.destroy();
      const err = e instanceof TesseraError ? e : new TesseraError('UNAVAILABLE', `cannot connect to ${addr}: ${String(e)}`);
      if (err.code !== 'UNAVAILABLE') this.counters.handshakesFailed++;
      this.backoff.failed(addr, err.message);
      this.log.debug({ addr, code: err.code, reason: err.message }, 'dial failed');
      throw err;
    }
  }

  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    const listener = this.listener;
    const closed = listener ? new Promise<void>((r) => listener.close(() => r())) : Promise.resolve();
    for (const c of this.connections) c.close('closed: transport shutting down');
    for (const s of this.sockets) s.destroy();
    await closed;
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (signal?.aborted) return reject(cancelled(signal));
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(cancelled(signal!));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

function cancelled(signal: AbortSignal): TesseraError {
  return signal.reason instanceof TesseraError ? signal.reason : new TesseraError('CANCELLED', 'call cancelled before a connection was ready');
}

/** Waits for `p` unless the caller gives up first; the dial itself continues for other callers. */
function raceSignal<T>(p: Promise<T>, signal?: AbortSignal): Promise<T> {
  return signal === undefined ? p : unlessAborted(p, signal, () => cancelled(signal));
}
