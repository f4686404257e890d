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
  | { kind: 'transmission'; negotiated: Negotiated }
  | { kind: 'closed'; reason: string }
  /** The client broke a MUST of the protocol; the caller hard-disconnects. */
  | { kind: 'violation'; reason: string };

export interface HandshakeContext {
  socket: Socket;
  reader: SocketReader;
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

  constructor(private readonly ctx: HandshakeContext) {}

  async run(): Promise<HandshakeOutcome> {
    const { socket, reader } = this.ctx;
    socket.write(E.encodeGreeting(P.FLAG_FIXED_NEWSTYLE | P.FLAG_NO_ZEROES));
    const clientFlags = (await reader.read(4)).readUInt32BE(0);
    if ((clientFlags & ~P.KNOWN_CLIENT_FLAGS) !== 0) {
      return { kind: 'violation', reason: `unknown client flags 0x${clientFlags.toString(16)}` };
    }
    this.noZeroes = (clientFlags & P.FLAG_C_NO_ZEROES) !== 0;

    for (let n = 0; n < MAX_OPTIONS_PER_HANDSHAKE; n++) {
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
  private async option(option: number, data: Buffer): Promise<HandshakeOutcome | null> {
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
        this.reply(option, P.REP_ERR_UNSUP, 'TLS is not supported by this server');
        return null;
      default:
        this.reply(option, P.REP_ERR_UNSUP, `option ${option} is not supported`);
        return null;
    }
  }

  private async exportName(data: Buffer): Promise<HandshakeOutcome> {
    // NBD_OPT_EXPORT_NAME has no error reply: every failure ends the session.
    const name = decodeString(data, 'export name');
    if (!name.ok) return { kind: 'violation', reason: name.message };
    const opened = await this.open(name.value);
    if (!opened.ok) return { kind: 'closed', reason: opened.message };
    const { device, info, canonical } = opened;
    this.ctx.socket.write(E.encodeExportNameReply(info.size, info.flags, this.noZeroes));
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

  private async infoOrGo(option: number, data: Buffer): Promise<HandshakeOutcome | null> {
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
    this.ctx.socket.write(E.encodeOptionReply(option, type, payload));
  }
}

export async function closeQuietly(device: BlockDevice, logger: Logger): Promise<void> {
  try {
    await device.close();
  } catch (err) {
    logger.warn({ err }, 'closing block device failed');
  }
}
