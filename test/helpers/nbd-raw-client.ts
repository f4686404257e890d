/**
 * A byte-level NBD client for tests: sends exactly what a test says (including malformed input)
 * and decodes what the server answers, so every reply and error number can be asserted.
 */
import net from 'node:net';
import tls from 'node:tls';
import { once } from 'node:events';
import { SocketReader } from '../../src/block/nbd/socket-reader.js';
import * as P from '../../src/block/nbd/protocol.js';

export interface OptionReply {
  option: number;
  type: number;
  data: Buffer;
}

export interface StructuredChunk {
  flags: number;
  type: number;
  handle: bigint;
  payload: Buffer;
}

export class RawNbdClient {
  reader: SocketReader;
  private closedFlag = false;
  readonly closed: Promise<void>;

  private constructor(public socket: net.Socket) {
    this.reader = new SocketReader(socket, 64 << 20);
    socket.on('error', () => {});
    this.closed = new Promise((r) => socket.once('close', () => r()));
    void this.closed.then(() => (this.closedFlag = true));
  }

  /** After the server ACKed NBD_OPT_STARTTLS: the TLS handshake, then everything over TLS. */
  async startTls(opts: tls.ConnectionOptions): Promise<tls.TLSSocket> {
    this.reader.detach();
    const secure = tls.connect({ ...opts, socket: this.socket });
    secure.on('error', () => {});
    await new Promise<void>((resolve, reject) => {
      secure.once('secureConnect', () => resolve());
      secure.once('error', reject);
      secure.once('close', () => reject(new Error('closed during the TLS handshake')));
    });
    this.socket = secure;
    this.reader = new SocketReader(secure, 64 << 20);
    return secure;
  }

  static async connect(addr: { host: string; port: number } | { socket: string }): Promise<RawNbdClient> {
    const socket = 'socket' in addr ? net.connect(addr.socket) : net.connect(addr.port, addr.host);
    socket.setNoDelay(true);
    await once(socket, 'connect');
    return new RawNbdClient(socket);
  }

  get isClosed(): boolean {
    return this.closedFlag;
  }

  write(b: Buffer): void {
    this.socket.write(b);
  }

  async greeting(): Promise<number> {
    const g = await this.reader.read(18);
    if (g.readBigUInt64BE(0) !== P.NBDMAGIC || g.readBigUInt64BE(8) !== P.IHAVEOPT) throw new Error('bad greeting');
    return g.readUInt16BE(16);
  }

  /** Greeting plus client flags (fixed newstyle and no zeroes by default). */
  async start(clientFlags = P.FLAG_C_FIXED_NEWSTYLE | P.FLAG_C_NO_ZEROES): Promise<void> {
    await this.greeting();
    const f = Buffer.alloc(4);
    f.writeUInt32BE(clientFlags >>> 0);
    this.write(f);
  }

  sendOption(option: number, data: Buffer = Buffer.alloc(0), declaredLength = data.length): void {
    const h = Buffer.alloc(16);
    h.writeBigUInt64BE(P.IHAVEOPT, 0);
    h.writeUInt32BE(option, 8);
    h.writeUInt32BE(declaredLength, 12);
    this.write(Buffer.concat([h, data]));
  }

  async optionReply(): Promise<OptionReply> {
    const h = await this.reader.read(20);
    if (h.readBigUInt64BE(0) !== P.OPTION_REPLY_MAGIC) throw new Error('bad option reply magic');
    const len = h.readUInt32BE(16);
    return { option: h.readUInt32BE(8), type: h.readUInt32BE(12), data: await this.reader.read(len) };
  }

  /** Replies up to and including the first that is not REP_INFO / REP_SERVER / REP_META_CONTEXT. */
  async optionReplies(): Promise<OptionReply[]> {
    const out: OptionReply[] = [];
    for (;;) {
      const r = await this.optionReply();
      out.push(r);
      if (r.type !== P.REP_INFO && r.type !== P.REP_SERVER && r.type !== P.REP_META_CONTEXT) return out;
    }
  }

  /** Negotiates and enters transmission with NBD_OPT_GO; returns the INFO replies. */
  async go(name: string, opts: { structured?: boolean; meta?: boolean; infos?: number[] } = {}): Promise<OptionReply[]> {
    await this.start();
    if (opts.structured) {
      this.sendOption(P.OPT_STRUCTURED_REPLY);
      const r = await this.optionReply();
      if (r.type !== P.REP_ACK) throw new Error(`structured replies refused: ${r.type}`);
    }
    if (opts.meta) {
      this.sendOption(P.OPT_SET_META_CONTEXT, metaContextData(name, [P.META_BASE_ALLOCATION]));
      const rs = await this.optionReplies();
      if (rs.at(-1)!.type !== P.REP_ACK) throw new Error('meta context refused');
    }
    this.sendOption(P.OPT_GO, infoData(name, opts.infos ?? [P.INFO_BLOCK_SIZE]));
    const rs = await this.optionReplies();
    if (rs.at(-1)!.type !== P.REP_ACK) throw new Error(`GO refused: 0x${rs.at(-1)!.type.toString(16)} ${rs.at(-1)!.data.toString()}`);
    return rs;
  }

  request(type: number, handle: bigint, offset: bigint | number, length: number, flags = 0, payload?: Buffer): void {
    const h = Buffer.alloc(28);
    h.writeUInt32BE(P.REQUEST_MAGIC, 0);
    h.writeUInt16BE(flags, 4);
    h.writeUInt16BE(type, 6);
    h.writeBigUInt64BE(handle, 8);
    h.writeBigUInt64BE(BigInt(offset), 16);
    h.writeUInt32BE(length, 24);
    this.write(payload ? Buffer.concat([h, payload]) : h);
  }

  /** A simple reply; `dataLength` bytes follow it only when the test knows it was a successful read. */
  async simpleReply(dataLength = 0): Promise<{ error: number; handle: bigint; data: Buffer }> {
    const h = await this.reader.read(16);
    if (h.readUInt32BE(0) !== P.SIMPLE_REPLY_MAGIC) throw new Error(`bad simple reply magic 0x${h.readUInt32BE(0).toString(16)}`);
    const error = h.readUInt32BE(4);
    const data = error === 0 && dataLength > 0 ? await this.reader.read(dataLength) : Buffer.alloc(0);
    return { error, handle: h.readBigUInt64BE(8), data };
  }

  async structuredChunk(): Promise<StructuredChunk> {
    const h = await this.reader.read(20);
    if (h.readUInt32BE(0) !== P.STRUCTURED_REPLY_MAGIC) throw new Error(`bad structured reply magic 0x${h.readUInt32BE(0).toString(16)}`);
    const len = h.readUInt32BE(16);
    return { flags: h.readUInt16BE(4), type: h.readUInt16BE(6), handle: h.readBigUInt64BE(8), payload: await this.reader.read(len) };
  }

  close(): void {
    this.socket.destroy();
  }
}

export function infoData(name: string, infos: number[]): Buffer {
  const n = Buffer.from(name);
  const b = Buffer.alloc(4 + n.length + 2 + 2 * infos.length);
  b.writeUInt32BE(n.length, 0);
  n.copy(b, 4);
  b.writeUInt16BE(infos.length, 4 + n.length);
  infos.forEach((t, i) => b.writeUInt16BE(t, 6 + n.length + 2 * i));
  return b;
}

export function metaContextData(name: string, queries: string[]): Buffer {
  const parts: Buffer[] = [];
  const u32 = (v: number) => {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(v);
    return b;
  };
  const n = Buffer.from(name);
  parts.push(u32(n.length), n, u32(queries.length));
  for (const q of queries) {
    const qb = Buffer.from(q);
    parts.push(u32(qb.length), qb);
  }
  return Buffer.concat(parts);
}

/** Error number in an NBD_REPLY_TYPE_ERROR payload. */
export function chunkError(c: StructuredChunk): number {
  return c.payload.readUInt32BE(0);
}
