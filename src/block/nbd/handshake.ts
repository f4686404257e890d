/**
 * Fixed newstyle option haggling: from the greeting to the moment a client picks an export
 * (NBD_OPT_GO or NBD_OPT_EXPORT_NAME), aborts, or is disconnected for breaking the protocol.
 */
import type { Socket } from 'node:net';
import type { BlockDevice, VolumeProvider } from '../index.js';
import type { Logger } from '../../log.js';
import { isTesseraError } from '../../errors.js';
import type { SocketReader } from './socket-reader.js';
import * as P from './protocol.js';
import * as E from './encode.js';
import { describeExport, type ExportInfo } from './export-info.js';
import { decodeString, matchMetaContexts, parseInfoRequest, parseMetaContextRequest } from './options.js';
import { MAX_DISCARDED_OPTION_BYTES, MAX_OPTION_BYTES, MAX_OPTIONS_PER_HANDSHAKE } from './limits.js';
import type { NbdTlsMode } from './tls.js';

/** Id of base:allocation in NBD_REP_META_CONTEXT; opaque to clients. */
export const BASE_ALLOCATION_CONTEXT_ID = 1;

export interface Negotiated {
  exportName: string;
  device: BlockDevice;
  info: ExportInfo;
  structuredReplies: boolean;
  /** Context id for base:allocation, or null when the client selected none. */
  allocationContextId: number | null;
}

export type HandshakeOutcome =
  /** `socket` and `reader` are the ones to carry on with: TLS ones after STARTTLS. */
  | { kind: 'transmission'; negotiated: Negotiated; socket: Socket; reader: SocketReader }
  | { kind: 'closed'; reason: string }
  /** Refused for policy: TLS required but not used, or its handshake failed (wrong key). */
  | { kind: 'refused'; reason: string }
  /** The client broke a MUST of the protocol; the caller hard-disconnects. */
  | { kind: 'violation'; reason: string };

/** What one option leads to, before the session's socket is attached. */
type Step = Exclude<HandshakeOutcome, { kind: 'transmission' }> | { kind: 'transmission'; negotiated: Negotiated };

export interface HandshakeContext {
  socket: Socket;
  reader: SocketReader;
  /** 'require': every option but STARTTLS and ABORT is refused until TLS is up. */
  tlsMode: NbdTlsMode;
  /** Runs the server side of TLS over the socket (absent when TLS is off). */
  startTls?: (socket: Socket) => Promise<Socket>;
  makeReader(socket: Socket): SocketReader;
  provider: VolumeProvider;
  logger: Logger;
  maxPayloadBytes: number;
  isShuttingDown(): boolean;
}

export async function negotiate(ctx: HandshakeContext): Promise<HandshakeOutcome> {
  return new Handshake(ctx).run();
}

class Handshake {
  private structured = false;
  private noZeroes = false;
  /** The export (canonical name) a SET_META_CONTEXT selected base:allocation for. */
  private metaExport: string | null = null;
  private secure = false;
  private socket: Socket;
  private reader: SocketReader;

  constructor(private readonly ctx: HandshakeContext) {
    this.socket = ctx.socket;
    this.reader = ctx.reader;
  }

  async run(): Promise<HandshakeOutcome> {
    const out = await this.haggle();
    return out.kind === 'transmission' ? { ...out, socket: this.socket, reader: this.reader } : out;
  }

  private async haggle(): Promise<Step> {
    const { socket } = this;
    socket.write(E.encodeGreeting(P.FLAG_FIXED_NEWSTYLE | P.FLAG_NO_ZEROES));
    const clientFlags = (await this.reader.read(4)).readUInt32BE(0);
    if ((clientFlags & ~P.KNOWN_CLIENT_FLAGS) !== 0) {
      return { kind: 'violation', reason: `unknown client flags 0x${clientFlags.toString(16)}` };
    }
    this.noZeroes = (clientFlags & P.FLAG_C_NO_ZEROES) !== 0;

    for (let n = 0; n < MAX_OPTIONS_PER_HANDSHAKE; n++) {
      const { reader } = this;
      const header = await reader.read(P.OPTION_HEADER_BYTES);
      if (header.readBigUInt64BE(0) !== P.IHAVEOPT) return { kind: 'violation', reason: 'bad option magic' };
      const option = header.readUInt32BE(8);
      const length = header.readUInt32BE(12);
      if (length > MAX_OPTION_BYTES) {
        if (option === P.OPT_EXPORT_NAME || length > MAX_DISCARDED_OPTION_BYTES) {
          return { kind: 'violation', reason: `option ${option} carries ${length} bytes; the limit is ${MAX_OPTION_BYTES}` };
        }
        await reader.skip(length);
        this.reply(option, P.REP_ERR_TOO_BIG, `option data of ${length} bytes exceeds the limit of ${MAX_OPTION_BYTES}`);
        continue;
      }
      const data = await reader.read(length);
      const outcome = await this.option(option, data);
      if (outcome) return outcome;
    }
    return { kind: 'violation', reason: `more than ${MAX_OPTIONS_PER_HANDSHAKE} options without choosing an export` };
  }

  /** Handles one option; returns an outcome when haggling is over. */
  private async option(option: number, data: Buffer): Promise<Step | null> {
    if (this.ctx.tlsMode === 'require' && !this.secure && option !== P.OPT_STARTTLS && option !== P.OPT_ABORT) {
      // The spec's FORCEDTLS: nothing about the exports is said before TLS.
      if (option === P.OPT_EXPORT_NAME) return { kind: 'refused', reason: 'NBD_OPT_EXPORT_NAME without TLS, which this server requires' };
      this.reply(option, P.REP_ERR_TLS_REQD, 'this server requires TLS: connect with nbds:// and a PSK or certificate');
      return null;
    }
    if (this.ctx.isShuttingDown() && option !== P.OPT_ABORT) {
      if (option === P.OPT_EXPORT_NAME) return { kind: 'closed', reason: 'server shutting down' };
      this.reply(option, P.REP_ERR_SHUTDOWN, 'the server is shutting down');
      return null;
    }
    switch (option) {
      case P.OPT_EXPORT_NAME:
        return this.exportName(data);
      case P.OPT_ABORT:
        this.reply(option, P.REP_ACK);
        return { kind: 'closed', reason: 'client sent NBD_OPT_ABORT' };
      case P.OPT_LIST:
        await this.list(data);
        return null;
      case P.OPT_INFO:
      case P.OPT_GO:
        return this.infoOrGo(option, data);
      case P.OPT_STRUCTURED_REPLY:
        if (data.length !== 0) {
          this.reply(option, P.REP_ERR_INVALID, 'NBD_OPT_STRUCTURED_REPLY takes no data');
        } else {
          this.structured = true;
          this.reply(option, P.REP_ACK);
        }
        return null;
      case P.OPT_LIST_META_CONTEXT:
      case P.OPT_SET_META_CONTEXT:
        await this.metaContext(option, data);
        return null;
      case P.OPT_STARTTLS:
        return this.startTls(data);
      default:
        this.reply(option, P.REP_ERR_UNSUP, `option ${option} is not supported`);
        return null;
    }
  }

  private async startTls(data: Buffer): Promise<Step | null> {
    const start = this.ctx.startTls;
    if (start === undefined) {
      this.reply(P.OPT_STARTTLS, P.REP_ERR_POLICY, 'TLS is off on this server (tessera nbd --tls)');
      return null;
    }
    if (data.length !== 0) {
      this.reply(P.OPT_STARTTLS, P.REP_ERR_INVALID, 'NBD_OPT_STARTTLS takes no data');
      return null;
    }
    if (this.secure) {
      this.reply(P.OPT_STARTTLS, P.REP_ERR_INVALID, 'TLS is already on');
      return null;
    }
    this.reply(P.OPT_STARTTLS, P.REP_ACK);
    if (this.reader.detach() !== 0) return { kind: 'violation', reason: 'client sent data after NBD_OPT_STARTTLS before the TLS handshake' };
    try {
      this.socket = await start(this.socket);
    } catch (err) {
      return { kind: 'refused', reason: (err as Error).message };
    }
    this.reader = this.ctx.makeReader(this.socket);
    this.secure = true;
    // What was negotiated in plaintext does not carry over into the TLS session.
    this.structured = false;
    this.metaExport = null;
    return null;
  }

  private async exportName(data: Buffer): Promise<Step> {
    // NBD_OPT_EXPORT_NAME has no error reply: every failure ends the session.
    const name = decodeString(data, 'export name');
    if (!name.ok) return { kind: 'violation', reason: name.message };
    const opened = await this.open(name.value);
    if (!opened.ok) return { kind: 'closed', reason: opened.message };
    const { device, info, canonical } = opened;
    this.socket.write(E.encodeExportNameReply(info.size, info.flags, this.noZeroes));
    return { kind: 'transmission', negotiated: this.negotiated(canonical, device, info) };
  }

  private async list(data: Buffer): Promise<void> {
    if (data.length !== 0) return this.reply(P.OPT_LIST, P.REP_ERR_INVALID, 'NBD_OPT_LIST takes no data');
    let exports;
    try {
      exports = await this.ctx.provider.list();
    } catch (err) {
      this.ctx.logger.warn({ err }, 'listing volumes for NBD_OPT_LIST failed');
      return this.reply(P.OPT_LIST, P.REP_ERR_PLATFORM, `cannot list exports: ${(err as Error).message}`);
    }
    for (const e of exports) this.reply(P.OPT_LIST, P.REP_SERVER, E.encodeServerEntry(e.name, e.description));
    this.reply(P.OPT_LIST, P.REP_ACK);
  }

  private async infoOrGo(option: number, data: Buffer): Promise<Step | null> {
    const req = parseInfoRequest(data);
    if (!req.ok) {
      this.reply(option, req.reply, req.message);
      return null;
    }
    const opened = await this.open(req.value.name);
    if (!opened.ok) {
      this.reply(option, P.REP_ERR_UNKNOWN, opened.message);
      return null;
    }
    const { device, info, canonical, description } = opened;
    this.reply(option, P.REP_INFO, E.encodeInfoExport(info.size, info.flags));
    // Sent even when not asked for: clients ignore it, and it tells them our alignment rules.
    this.reply(option, P.REP_INFO, E.encodeInfoBlockSize(info.minBlock, info.preferredBlock, info.maxBlock));
    const asked = new Set(req.value.requests);
    if (asked.has(P.INFO_NAME) || canonical !== req.value.name) {
      this.reply(option, P.REP_INFO, E.encodeInfoString(P.INFO_NAME, canonical));
    }
    if (asked.has(P.INFO_DESCRIPTION) && description !== '') {
      this.reply(option, P.REP_INFO, E.encodeInfoString(P.INFO_DESCRIPTION, description));
    }
    this.reply(option, P.REP_ACK);
    if (option === P.OPT_GO) return { kind: 'transmission', negotiated: this.negotiated(canonical, device, info) };
    await closeQuietly(device, this.ctx.logger);
    return null;
  }

  private async metaContext(option: number, data: Buffer): Promise<void> {
    // A SET replaces the previous selection even when it fails.
    if (option === P.OPT_SET_META_CONTEXT) this.metaExport = null;
    if (!this.structured) {
      return this.reply(option, P.REP_ERR_INVALID, 'negotiate NBD_OPT_STRUCTURED_REPLY before meta contexts');
    }
    const req = parseMetaContextRequest(data);
    if (!req.ok) return this.reply(option, req.reply, req.message);
    const mode = option === P.OPT_LIST_META_CONTEXT ? 'list' : 'set';
    const matched = matchMetaContexts(req.value.queries, mode);
    if (!matched.ok) return this.reply(option, matched.reply, matched.message);
    const canonical = await this.resolve(req.value.exportName);
    if (canonical === null) return this.reply(option, P.REP_ERR_UNKNOWN, `no export named "${req.value.exportName}"`);
    const id = mode === 'set' ? BASE_ALLOCATION_CONTEXT_ID : 0;
    for (const name of matched.value) this.reply(option, P.REP_META_CONTEXT, E.encodeMetaContext(id, name));
    if (mode === 'set' && matched.value.length > 0) this.metaExport = canonical;
    this.reply(option, P.REP_ACK);
  }

  private negotiated(canonical: string, device: BlockDevice, info: ExportInfo): Negotiated {
    return {
      exportName: canonical,
      device,
      info,
      structuredReplies: this.structured,
      allocationContextId: this.structured && this.metaExport === canonical ? BASE_ALLOCATION_CONTEXT_ID : null,
    };
  }

  /** The canonical name for `name` ("" means the first volume), or null when there is none. */
  private async resolve(name: string): Promise<string | null> {
    try {
      const all = await this.ctx.provider.list();
      if (name === '') return all[0]?.name ?? null;
      return all.some((v) => v.name === name) ? name : null;
    } catch (err) {
      this.ctx.logger.warn({ err }, 'listing volumes failed');
      return null;
    }
  }

  private async open(
    name: string,
  ): Promise<{ ok: true; device: BlockDevice; info: ExportInfo; canonical: string; description: string } | { ok: false; message: string }> {
    let canonical = name;
    let description = '';
    try {
      const all = await this.ctx.provider.list();
      const entry = name === '' ? all[0] : all.find((v) => v.name === name);
      if (!entry) return { ok: false, message: name === '' ? 'the server has no volumes to export' : `no export named "${name}"` };
      canonical = entry.name;
      description = entry.description;
    } catch (err) {
      return { ok: false, message: `cannot list exports: ${(err as Error).message}` };
    }
    let device: BlockDevice;
    try {
      device = await this.ctx.provider.open(canonical);
    } catch (err) {
      if (!isTesseraError(err, 'NOT_FOUND')) this.ctx.logger.warn({ err, export: canonical }, 'opening volume failed');
      return { ok: false, message: `export "${canonical}" is not available: ${(err as Error).message}` };
    }
    try {
      const info = describeExport(device, { structuredReplies: this.structured, maxPayloadBytes: this.ctx.maxPayloadBytes });
      return { ok: true, device, info, canonical, description };
    } catch (err) {
      this.ctx.logger.error({ err, export: canonical }, 'volume cannot be exported');
      await closeQuietly(device, this.ctx.logger);
      return { ok: false, message: `export "${canonical}" is misconfigured: ${(err as Error).message}` };
    }
  }

  private reply(option: number, type: number, data?: Buffer | string): void {
    const payload = typeof data === 'string' ? E.clampString(data) : data;
    this.socket.write(E.encodeOptionReply(option, type, payload));
  }
}

export async function closeQuietly(device: BlockDevice, logger: Logger): Promise<void> {
  try {
    await device.close();
  } catch (err) {
    logger.warn({ err }, 'closing block device failed');
  }
}
