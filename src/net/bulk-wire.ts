/**
 * The bulk plane's wire pieces, free of I/O: the binding message that ties a plain TCP connection
 * to an authenticated TLS session, the per-transfer header on that connection, the descriptor a
 * TLS frame carries in place of its payload, and the tag that authenticates the bytes.
 *
 * Keys come from the TLS exporter (RFC 8446 §7.5) of the session the bulk connection belongs to:
 * only the two ends of that session know them, so a stranger can neither bind a connection nor
 * produce bytes that verify. The tag is GMAC (AES-256-GCM over no plaintext, the bytes as
 * associated data): one pass at a few GB/s on AES-NI, a tenth of what TLS spends per byte.
 */
import { createCipheriv, createHmac, timingSafeEqual } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import { TesseraError } from '../errors.js';
import type { Role } from './types.js';

/** Capability a node offers in its hello when it serves and dials the bulk plane. */
export const BULK_CAPABILITY = 'bulk/1';
/**
 * Capability of a node that takes content-addressed payloads (see BulkPolicy.contentAddressed)
 * without a tag: their receiver hashes the bytes against the id the control message named anyway.
 */
export const BULK_CONTENT_CAPABILITY = 'bulk-content/1';
/** First bytes of a bulk connection; a TLS connection starts with 0x16 (handshake record). */
export const BULK_MAGIC = Buffer.from('TBK1', 'latin1');
export const TLS_HANDSHAKE_RECORD = 0x16;
export const BULK_HANDLE_BYTES = 16;
const BULK_KEY_BYTES = 32;
const BIND_PROOF_BYTES = 32;
/** magic | session handle | u32 generation | proof */
export const BIND_MESSAGE_BYTES = BULK_MAGIC.length + BULK_HANDLE_BYTES + 4 + BIND_PROOF_BYTES;
/** The acceptor's one-byte answer: the connection is bound and may carry transfers. */
export const BIND_ACCEPTED = 0x01;
/** u32 transfer id | u32 length, before each transfer's bytes on the bulk connection. */
export const TRANSFER_HEADER_BYTES = 8;
export const TAG_BYTES = 16;
/**
 * u32 generation | u32 transfer id | u32 length | tag: what a TLS frame carries when its payload
 * goes on the bulk plane. The generation names the bulk connection the bytes travel on.
 */
export const DESCRIPTOR_BYTES = 12 + TAG_BYTES;
/** Transfer ids are GMAC nonces: a sender never reuses one under a key, so it stops here. */
export const MAX_TRANSFER_ID = 0xffff_ffff;

const LABEL_HANDLE = 'EXPORTER-tessera-bulk-handle';
const LABEL_BIND = 'EXPORTER-tessera-bulk-bind';
const LABEL_KEY: Record<Role, string> = { dialer: 'EXPORTER-tessera-bulk-from-dialer', acceptor: 'EXPORTER-tessera-bulk-from-acceptor' };

/** What both ends of one TLS session derive for its bulk plane. */
export interface BulkKeys {
  /** Names the session on a new bulk connection; public, it proves nothing by itself. */
  handle: Buffer;
  /** Keys the binding proof. */
  bind: Buffer;
  /** Authenticates the bytes each side sends. */
  send: Buffer;
  receive: Buffer;
}

export function deriveBulkKeys(tls: TLSSocket, role: Role): BulkKeys {
  const ekm = (n: number, label: string) => tls.exportKeyingMaterial(n, label, Buffer.alloc(0));
  const other: Role = role === 'dialer' ? 'acceptor' : 'dialer';
  return {
    handle: ekm(BULK_HANDLE_BYTES, LABEL_HANDLE),
    bind: ekm(BULK_KEY_BYTES, LABEL_BIND),
    send: ekm(BULK_KEY_BYTES, LABEL_KEY[role]),
    receive: ekm(BULK_KEY_BYTES, LABEL_KEY[other]),
  };
}

function bindProof(bindKey: Buffer, generation: number): Buffer {
  const g = Buffer.allocUnsafe(4);
  g.writeUInt32BE(generation, 0);
  return createHmac('sha256', bindKey).update('tessera bulk bind').update(g).digest();
}

/**
 * The dialer's first bytes. The generation grows with every bulk connection of the session, so a
 * recorded binding replayed by someone on the path is refused.
 */
export function encodeBind(keys: BulkKeys, generation: number): Buffer {
  const b = Buffer.allocUnsafe(BIND_MESSAGE_BYTES);
  BULK_MAGIC.copy(b, 0);
  keys.handle.copy(b, BULK_MAGIC.length);
  b.writeUInt32BE(generation, BULK_MAGIC.length + BULK_HANDLE_BYTES);
  bindProof(keys.bind, generation).copy(b, BULK_MAGIC.length + BULK_HANDLE_BYTES + 4);
  return b;
}

export interface BindRequest {
  handle: string;
  generation: number;
  proof: Buffer;
}

export function parseBind(b: Buffer): BindRequest {
  if (b.length !== BIND_MESSAGE_BYTES) throw new TesseraError('BAD_FRAME', `bulk binding is ${BIND_MESSAGE_BYTES} bytes, got ${b.length}`);
  if (!b.subarray(0, BULK_MAGIC.length).equals(BULK_MAGIC)) throw new TesseraError('BAD_FRAME', 'connection starts with neither TLS nor a bulk binding');
  const at = BULK_MAGIC.length;
  return {
    handle: b.subarray(at, at + BULK_HANDLE_BYTES).toString('hex'),
    generation: b.readUInt32BE(at + BULK_HANDLE_BYTES),
    proof: b.subarray(at + BULK_HANDLE_BYTES + 4),
  };
}

export function bindVerifies(keys: BulkKeys, req: BindRequest): boolean {
  return timingSafeEqual(bindProof(keys.bind, req.generation), req.proof);
}

/** GMAC of `parts` under `key` with the transfer id as nonce; a key never sees an id twice. */
export function transferTag(key: Buffer, transferId: number, parts: readonly Buffer[]): Buffer {
  const iv = Buffer.alloc(12);
  iv.writeUInt32BE(transferId, 8);
  const mac = createCipheriv('aes-256-gcm', key, iv);
  for (const p of parts) if (p.length > 0) mac.setAAD(p);
  mac.final();
  return mac.getAuthTag();
}

/** The descriptor's tag of a content-addressed transfer, which carries none. */
export const NO_TAG: Buffer = Buffer.alloc(TAG_BYTES);

export interface Descriptor {
  generation: number;
  transferId: number;
  length: number;
  tag: Buffer;
}

export function encodeDescriptor(d: Descriptor): Buffer {
  const b = Buffer.allocUnsafe(DESCRIPTOR_BYTES);
  b.writeUInt32BE(d.generation, 0);
  b.writeUInt32BE(d.transferId, 4);
  b.writeUInt32BE(d.length, 8);
  d.tag.copy(b, 12);
  return b;
}

export function parseDescriptor(b: Buffer, maxLength: number): Descriptor {
  if (b.length !== DESCRIPTOR_BYTES) throw new TesseraError('BAD_FRAME', `bulk descriptor is ${DESCRIPTOR_BYTES} bytes, got ${b.length}`);
  const length = b.readUInt32BE(8);
  if (length > maxLength) throw new TesseraError('BAD_FRAME', `bulk transfer of ${length} bytes exceeds the limit of ${maxLength}`);
  return { generation: b.readUInt32BE(0), transferId: b.readUInt32BE(4), length, tag: Buffer.from(b.subarray(12)) };
}

export function encodeTransferHeader(transferId: number, length: number): Buffer {
  const b = Buffer.allocUnsafe(TRANSFER_HEADER_BYTES);
  b.writeUInt32BE(transferId, 0);
  b.writeUInt32BE(length, 4);
  return b;
}
