/**
 * The bulk plane's connections, beside a transport's TLS connections: the accepting side binds a
 * plain connection to the TLS session it proves it belongs to; the dialing side dials one for
 * each TLS connection it dialed, and again when it is lost. What travels on them, and how it is
 * checked, is the channel's and the RPC connection's business (bulk-channel.ts, connection.ts).
 */
import * as net from 'node:net';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { TesseraError } from '../errors.js';
import type { Logger } from '../log.js';
import { parseAddr } from './addr.js';
import { BulkChannel } from './bulk-channel.js';
import { BIND_ACCEPTED, BIND_MESSAGE_BYTES, BULK_MAGIC, bindVerifies, deriveBulkKeys, encodeBind, parseBind, type BulkKeys } from './bulk-wire.js';
import type { BulkPolicy, RpcConnection } from './connection.js';
import type { RefusalLog } from './refusal-log.js';
import type { TransportCounters } from './types.js';

/**
 * The dialing side reads transfers straight into their buffers, and headers into one of this size.
 * What follows a header in the same read is copied out of it, so it is small enough that a chunk
 * lands mostly in place (at 256 KiB, a quarter of each 1 MiB chunk was copied), and large enough
 * that many small transfers still come in one read.
 */
const BULK_READ_BUFFER_BYTES = 64 << 10;
/** A lost bulk connection is dialed again after this, doubling per loss up to the maximum. */
const BULK_REDIAL_BASE_MS = 250;
const BULK_REDIAL_MAX_MS = 30_000;

/** What the accepting side keeps of a TLS session so a bulk connection can prove it belongs there. */
interface BulkSession {
  conn: RpcConnection;
  keys: BulkKeys;
  lastGeneration: number;
}

export interface BulkPlaneDeps {
  policy: BulkPolicy;
  counters: TransportCounters;
  refusals: RefusalLog;
  log: Logger;
  /** The transport's open sockets, destroyed when it closes. */
  sockets: Set<Socket>;
  handshakeTimeoutMs: number;
  closing: () => boolean;
}

export class BulkPlane {
  /** Accepted TLS sessions by bulk handle (hex). */
  private readonly sessions = new Map<string, BulkSession>();

  constructor(private readonly d: BulkPlaneDeps) {}

  /** An accepted TLS session whose peer offered the plane: a bulk connection may now bind to it. */
  addSession(conn: RpcConnection, tls: TLSSocket): void {
    const keys = deriveBulkKeys(tls, 'acceptor');
    const handle = keys.handle.toString('hex');
    this.sessions.set(handle, { conn, keys, lastGeneration: 0 });
    conn.onClose(() => this.sessions.delete(handle));
  }

  /** Dials the bulk connection of a TLS session this node dialed. */
  dial(conn: RpcConnection, addr: string, tls: TLSSocket): void {
    this.redial(conn, addr, deriveBulkKeys(tls, 'dialer'), 1, 0);
  }

  /** `garbage`: the connection spoke neither protocol, and counts as a failed handshake. */
  refuse(raw: Socket, reason: string, release: () => void, garbage = false): void {
    if (garbage) this.d.counters.handshakesFailed++;
    else this.d.counters.bulkRefused++;
    this.d.refusals.refused(raw.remoteAddress ?? 'unknown', { remote: `${raw.remoteAddress}:${raw.remotePort}`, reason }, garbage ? 'handshake refused' : 'bulk connection refused');
    release();
    raw.destroy();
  }

  /** Reads the binding and, if it proves an accepted TLS session, attaches the connection to it. */
  accept(raw: Socket, first: Buffer, release: () => void): void {
    const timeoutMs = this.d.handshakeTimeoutMs;
    let got = first;
    const timer = setTimeout(() => this.refuse(raw, `no complete binding within ${timeoutMs} ms`, release), timeoutMs);
    const onData = (b: Buffer) => {
      got = got.length === 0 ? b : Buffer.concat([got, b]);
      const magic = Math.min(got.length, BULK_MAGIC.length);
      if (!got.subarray(0, magic).equals(BULK_MAGIC.subarray(0, magic))) {
        clearTimeout(timer);
        raw.off('data', onData);
        return this.refuse(raw, 'connection starts with neither TLS nor a bulk binding', release, true);
      }
      if (got.length < BIND_MESSAGE_BYTES) return;
      clearTimeout(timer);
      raw.off('data', onData);
      raw.pause();
      this.bind(raw, got.subarray(0, BIND_MESSAGE_BYTES), got.subarray(BIND_MESSAGE_BYTES), release);
    };
    raw.on('data', onData);
    onData(Buffer.alloc(0));
    raw.resume();
  }

  private bind(raw: Socket, bind: Buffer, rest: Buffer, release: () => void): void {
    let req;
    try {
      req = parseBind(bind);
    } catch (e) {
      return this.refuse(raw, (e as Error).message, release);
    }
    const session = this.sessions.get(req.handle);
    if (session === undefined || session.conn.closed) return this.refuse(raw, 'its binding names no TLS session of this node', release);
    if (!bindVerifies(session.keys, req)) return this.refuse(raw, `its binding to the session with ${session.conn.peer.nodeId.slice(0, 12)} does not verify`, release);
    if (req.generation <= session.lastGeneration) {
      return this.refuse(raw, `binding generation ${req.generation} was used already (last ${session.lastGeneration}): a replay`, release);
    }
    session.lastGeneration = req.generation;
    release();
    raw.setNoDelay(true);
    const ch = this.channel(raw, session.conn, session.keys, req.generation);
    ch.markSendable();
    session.conn.attachBulk(ch);
    raw.write(Buffer.of(BIND_ACCEPTED));
    raw.on('data', (b: Buffer) => ch.onBytes(b));
    if (rest.length > 0) ch.onBytes(rest);
    raw.resume();
  }

  private channel(raw: Socket, conn: RpcConnection, keys: BulkKeys, generation: number, onLost?: () => void): BulkChannel {
    this.d.sockets.add(raw);
    raw.once('close', () => this.d.sockets.delete(raw));
    const ch: BulkChannel = new BulkChannel(raw, {
      generation,
      keys,
      maxTransferBytes: this.d.policy.maxTransferBytes,
      onClose: (why) => {
        conn.detachBulk(ch);
        if (why.code !== 'UNAVAILABLE') {
          this.d.counters.bulkRefused++;
          this.d.log.warn({ peer: conn.peer.nodeId, generation, reason: why.message }, 'bulk connection closed');
        }
        onLost?.();
      },
    });
    return ch;
  }

  /** Dials the bulk connection of a TLS session this node dialed, and again whenever it is lost. */
  private redial(conn: RpcConnection, addr: string, keys: BulkKeys, generation: number, losses: number): void {
    if (this.d.closing() || conn.closed) return;
    const { host, port } = parseAddr(addr);
    const scratch = Buffer.allocUnsafe(BULK_READ_BUFFER_BYTES);
    let target = (): Buffer => scratch;
    let sink: (n: number, buf: Buffer) => void = () => {};
    const raw = net.connect({
      host,
      port,
      onread: {
        buffer: () => target(),
        callback: (n: number, buf: Uint8Array): boolean => {
          sink(n, buf as Buffer);
          return true;
        },
      },
    } as net.NetConnectOpts);
    raw.setNoDelay(true);
    let lost = false;
    const again = () => {
      if (lost) return;
      lost = true;
      const delay = Math.min(BULK_REDIAL_MAX_MS, BULK_REDIAL_BASE_MS * 2 ** Math.min(losses + 1, 16));
      setTimeout(() => this.redial(conn, addr, keys, generation + 1, losses + 1), delay).unref();
    };
    const ch = this.channel(raw, conn, keys, generation, again);
    // Receives from now on: the acceptor may send on it as soon as it accepted the binding.
    conn.attachBulk(ch);
    const timer = setTimeout(() => ch.close(new TesseraError('UNAVAILABLE', 'bulk binding was not answered')), this.d.handshakeTimeoutMs);
    timer.unref();
    raw.once('close', () => clearTimeout(timer));
    sink = (n, buf) => {
      if (n === 0) return;
      clearTimeout(timer);
      if (buf[0] !== BIND_ACCEPTED) return void ch.close(new TesseraError('PROTOCOL', `peer answered the bulk binding with ${buf[0]}`));
      ch.markSendable();
      sink = (m, b) => ch.onRead(m, b);
      target = () => ch.readTarget(scratch);
      if (n > 1) ch.onBytes(buf.subarray(1, n));
    };
    raw.once('connect', () => raw.write(encodeBind(keys, generation)));
  }
}
