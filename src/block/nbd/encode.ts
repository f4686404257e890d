/**
 * Byte layouts the server sends. Pure functions over Buffers so they can be unit-tested alone.
 */
import * as P from './protocol.js';

/** NBDMAGIC, IHAVEOPT, handshake flags. */
export function encodeGreeting(handshakeFlags: number): Buffer {
  const b = Buffer.allocUnsafe(18);
  b.writeBigUInt64BE(P.NBDMAGIC, 0);
  b.writeBigUInt64BE(P.IHAVEOPT, 8);
  b.writeUInt16BE(handshakeFlags, 16);
  return b;
}

export function encodeOptionReply(option: number, type: number, data?: Buffer): Buffer {
  const len = data?.length ?? 0;
  const b = Buffer.allocUnsafe(20 + len);
  b.writeBigUInt64BE(P.OPTION_REPLY_MAGIC, 0);
  b.writeUInt32BE(option >>> 0, 8);
  b.writeUInt32BE(type >>> 0, 12);
  b.writeUInt32BE(len, 16);
  if (data) data.copy(b, 20);
  return b;
}

export function encodeServerEntry(name: string, description: string): Buffer {
  const n = Buffer.from(name, 'utf8');
  const d = clampString(description);
  const b = Buffer.allocUnsafe(4 + n.length + d.length);
  b.writeUInt32BE(n.length, 0);
  n.copy(b, 4);
  d.copy(b, 4 + n.length);
  return b;
}

export function encodeInfoExport(size: number, transmissionFlags: number): Buffer {
  const b = Buffer.allocUnsafe(12);
  b.writeUInt16BE(P.INFO_EXPORT, 0);
  b.writeBigUInt64BE(BigInt(size), 2);
  b.writeUInt16BE(transmissionFlags, 10);
  return b;
}

export function encodeInfoString(type: typeof P.INFO_NAME | typeof P.INFO_DESCRIPTION, value: string): Buffer {
  const s = clampString(value);
  const b = Buffer.allocUnsafe(2 + s.length);
  b.writeUInt16BE(type, 0);
  s.copy(b, 2);
  return b;
}

export function encodeInfoBlockSize(min: number, preferred: number, max: number): Buffer {
  const b = Buffer.allocUnsafe(14);
  b.writeUInt16BE(P.INFO_BLOCK_SIZE, 0);
  b.writeUInt32BE(min, 2);
  b.writeUInt32BE(preferred, 6);
  b.writeUInt32BE(max, 10);
  return b;
}

export function encodeMetaContext(id: number, name: string): Buffer {
  const n = Buffer.from(name, 'utf8');
  const b = Buffer.allocUnsafe(4 + n.length);
  b.writeUInt32BE(id, 0);
  n.copy(b, 4);
  return b;
}

/** Reply to NBD_OPT_EXPORT_NAME: size, flags and (unless NO_ZEROES) 124 zero bytes. */
export function encodeExportNameReply(size: number, transmissionFlags: number, noZeroes: boolean): Buffer {
  const b = Buffer.alloc(10 + (noZeroes ? 0 : P.EXPORT_NAME_PADDING_BYTES));
  b.writeBigUInt64BE(BigInt(size), 0);
  b.writeUInt16BE(transmissionFlags, 8);
  return b;
}

/** The handle is kept as the client's 8 raw bytes: it is opaque to the server. */
export function encodeSimpleReply(error: number, handle: Buffer): Buffer {
  const b = Buffer.allocUnsafe(P.SIMPLE_REPLY_BYTES);
  b.writeUInt32BE(P.SIMPLE_REPLY_MAGIC, 0);
  b.writeUInt32BE(error, 4);
  handle.copy(b, 8, 0, 8);
  return b;
}

export function encodeStructuredHeader(flags: number, type: number, handle: Buffer, length: number): Buffer {
  const b = Buffer.allocUnsafe(P.STRUCTURED_HEADER_BYTES);
  writeStructuredHeader(b, flags, type, handle, length);
  return b;
}

function writeStructuredHeader(b: Buffer, flags: number, type: number, handle: Buffer, length: number): void {
  b.writeUInt32BE(P.STRUCTURED_REPLY_MAGIC, 0);
  b.writeUInt16BE(flags, 4);
  b.writeUInt16BE(type, 6);
  handle.copy(b, 8, 0, 8);
  b.writeUInt32BE(length, 16);
}

/** Header of a final OFFSET_DATA chunk; the data itself follows in a separate buffer. */
export function encodeOffsetDataHeader(handle: Buffer, offset: number, dataLength: number): Buffer {
  const b = Buffer.allocUnsafe(P.STRUCTURED_HEADER_BYTES + 8);
  writeStructuredHeader(b, P.REPLY_FLAG_DONE, P.REPLY_TYPE_OFFSET_DATA, handle, 8 + dataLength);
  b.writeBigUInt64BE(BigInt(offset), P.STRUCTURED_HEADER_BYTES);
  return b;
}

export function encodeStructuredError(handle: Buffer, error: number, message: string): Buffer {
  const m = clampString(message, 0xffff);
  const b = Buffer.allocUnsafe(P.STRUCTURED_HEADER_BYTES + 6 + m.length);
  writeStructuredHeader(b, P.REPLY_FLAG_DONE, P.REPLY_TYPE_ERROR, handle, 6 + m.length);
  b.writeUInt32BE(error, P.STRUCTURED_HEADER_BYTES);
  b.writeUInt16BE(m.length, P.STRUCTURED_HEADER_BYTES + 4);
  m.copy(b, P.STRUCTURED_HEADER_BYTES + 6);
  return b;
}

export function encodeStructuredDone(handle: Buffer): Buffer {
  return encodeStructuredHeader(P.REPLY_FLAG_DONE, P.REPLY_TYPE_NONE, handle, 0);
}

export function encodeBlockStatus(handle: Buffer, contextId: number, extents: Array<[length: number, flags: number]>): Buffer {
  const payload = 4 + 8 * extents.length;
  const b = Buffer.allocUnsafe(P.STRUCTURED_HEADER_BYTES + payload);
  writeStructuredHeader(b, P.REPLY_FLAG_DONE, P.REPLY_TYPE_BLOCK_STATUS, handle, payload);
  let at = P.STRUCTURED_HEADER_BYTES;
  b.writeUInt32BE(contextId, at);
  at += 4;
  for (const [len, flags] of extents) {
    b.writeUInt32BE(len, at);
    b.writeUInt32BE(flags, at + 4);
    at += 8;
  }
  return b;
}

/** UTF-8 bytes of `s`, cut on a character boundary to at most `max` bytes. */
export function clampString(s: string, max = P.MAX_STRING_BYTES): Buffer {
  const b = Buffer.from(s, 'utf8');
  if (b.length <= max) return b;
  let end = max;
  // Back off continuation bytes (10xxxxxx) so the cut never splits a character.
  while (end > 0 && ((b[end] ?? 0) & 0xc0) === 0x80) end--;
  return b.subarray(0, end);
}
