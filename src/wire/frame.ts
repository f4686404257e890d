/**
 * Frame layout shared by both ends of a connection. Fixed 16-byte header, then the CBOR control
 * section, then the raw payload:
 *
 *   u32 bodyLength | u8 kind | u8 flags | u16 reserved (0) | u32 requestId | u32 controlLength
 *
 * `bodyLength` counts control + payload (everything after the header), so a reader knows the
 * whole frame's size from the first 4 bytes and can refuse it before allocating anything.
 */
import { TesseraError } from '../errors.js';
import { MAX_CONTROL_BYTES, MAX_FRAME_PAYLOAD_BYTES } from '../limits.js';

export const FRAME_HEADER_BYTES = 16;

export const FrameKind = {
  /** A call: control = {m: method, b: body}, payload = bulk bytes. */
  REQUEST: 1,
  /** Success reply to a request with the same id. */
  RESPONSE: 2,
  /** Failure reply ({c: code, m: message}); with id 0 it refuses the connection during the handshake. */
  ERROR: 3,
  /** The caller gave up on the request with this id; the remote handler should stop. */
  CANCEL: 4,
  /** Handshake: proof of the cluster secret (payload = MAC). */
  ADMIT: 5,
  /** Handshake: the application hello (control = hello fields). */
  HELLO: 6,
} as const;
export type FrameKind = (typeof FrameKind)[keyof typeof FrameKind];

const KNOWN_KINDS: ReadonlySet<number> = new Set(Object.values(FrameKind));
export const FRAME_KIND_NAMES: Readonly<Record<number, string>> = Object.fromEntries(
  Object.entries(FrameKind).map(([k, v]) => [v, k]),
);

export const FrameFlag = {
  /**
   * The payload section is a bulk descriptor (net/bulk-wire.ts): the real payload travels on the
   * bulk connection. Sent only to a peer that offered the bulk plane in its hello.
   */
  BULK: 0x01,
} as const;

/** Any other set bit is a violation. */
export const KNOWN_FLAGS = FrameFlag.BULK;

export const MAX_REQUEST_ID = 0xffff_ffff;

/** Largest control section of an ERROR frame: a code and a message of at most 4096 characters. */
export const MAX_ERROR_CONTROL_BYTES = 16 << 10;

export interface SectionLimits {
  maxControlBytes: number;
  maxPayloadBytes: number;
}

/**
 * Limits for one stage of a connection. `byKind`, when given, is the whole list of kinds the
 * stage accepts, each with its own bounds: any other kind is a violation, so a frame kind that
 * has no business at that stage (a HELLO after admission, a payload on a CANCEL) is refused on
 * its header, before its body is read.
 */
export interface FrameLimits extends SectionLimits {
  byKind?: Readonly<Partial<Record<FrameKind, SectionLimits>>>;
}

export const DEFAULT_FRAME_LIMITS: FrameLimits = {
  maxControlBytes: MAX_CONTROL_BYTES,
  maxPayloadBytes: MAX_FRAME_PAYLOAD_BYTES,
};

const CALL_LIMITS: SectionLimits = { maxControlBytes: MAX_CONTROL_BYTES, maxPayloadBytes: MAX_FRAME_PAYLOAD_BYTES };

/** What an admitted peer may send for the rest of the connection's life. */
export const ADMITTED_FRAME_LIMITS: FrameLimits = {
  ...CALL_LIMITS,
  byKind: {
    [FrameKind.REQUEST]: CALL_LIMITS,
    [FrameKind.RESPONSE]: CALL_LIMITS,
    [FrameKind.ERROR]: { maxControlBytes: MAX_ERROR_CONTROL_BYTES, maxPayloadBytes: 0 },
    [FrameKind.CANCEL]: { maxControlBytes: 0, maxPayloadBytes: 0 },
  },
};

export interface Frame {
  kind: FrameKind;
  flags: number;
  requestId: number;
  /** Raw CBOR bytes; decode with `decodeControl` against the schema the kind expects. */
  control: Buffer;
  payload: Buffer;
  /**
   * Present when the body was assembled in a pooled buffer: call it once nothing refers to
   * `control` or `payload` any more, and the memory serves a later frame. Never calling it is
   * safe (the buffer is then garbage); using the bytes after calling it is not.
   */
  recycle?: () => void;
}

export interface FrameHeader {
  bodyLength: number;
  kind: FrameKind;
  flags: number;
  requestId: number;
  controlLength: number;
}

const badFrame = (msg: string, details?: Record<string, unknown>) => new TesseraError('BAD_FRAME', msg, details);

/**
 * Validates a header before its body is read; every check runs before the caller allocates the
 * body so a hostile length costs nothing.
 */
export function parseFrameHeader(buf: Buffer, offset: number, limits: FrameLimits = DEFAULT_FRAME_LIMITS): FrameHeader {
  const bodyLength = buf.readUInt32BE(offset);
  const kind = buf.readUInt8(offset + 4);
  const flags = buf.readUInt8(offset + 5);
  const reserved = buf.readUInt16BE(offset + 6);
  const requestId = buf.readUInt32BE(offset + 8);
  const controlLength = buf.readUInt32BE(offset + 12);
  if (!KNOWN_KINDS.has(kind)) throw badFrame(`unknown frame kind ${kind}`, { kind });
  if (reserved !== 0) throw badFrame(`reserved header field is ${reserved}, must be 0`, { reserved });
  if ((flags & ~KNOWN_FLAGS) !== 0) throw badFrame(`unknown frame flags 0x${flags.toString(16)}`, { flags });
  if (controlLength > bodyLength) {
    throw badFrame(`control length ${controlLength} exceeds frame body length ${bodyLength}`, { controlLength, bodyLength });
  }
  let bounds: SectionLimits = limits;
  if (limits.byKind !== undefined) {
    const k = limits.byKind[kind as FrameKind];
    if (k === undefined) throw badFrame(`frame kind ${FRAME_KIND_NAMES[kind]} is not accepted at this stage of the connection`, { kind });
    bounds = k;
  }
  const what = FRAME_KIND_NAMES[kind]!;
  if (controlLength > bounds.maxControlBytes) {
    throw badFrame(`${what} control section of ${controlLength} bytes exceeds the limit of ${bounds.maxControlBytes}`, {
      controlLength,
      limit: bounds.maxControlBytes,
    });
  }
  const payloadLength = bodyLength - controlLength;
  if (payloadLength > bounds.maxPayloadBytes) {
    throw badFrame(`${what} payload of ${payloadLength} bytes exceeds the limit of ${bounds.maxPayloadBytes}`, {
      payloadLength,
      limit: bounds.maxPayloadBytes,
    });
  }
  return { bodyLength, kind: kind as FrameKind, flags, requestId, controlLength };
}

/** Total bytes of a payload given as one buffer or a list (scatter/gather). */
export function payloadLength(payload: Buffer | readonly Buffer[] | undefined): number {
  if (payload === undefined) return 0;
  if (Buffer.isBuffer(payload)) return payload.length;
  let n = 0;
  for (const p of payload) n += p.length;
  return n;
}

/**
 * Returns the frame as a list of buffers for cork()+write() or writev(): header and control
 * share one small allocation; payload buffers are passed through untouched (never copied).
 */
export function encodeFrame(
  kind: FrameKind,
  requestId: number,
  control: Uint8Array | undefined,
  payload?: Buffer | readonly Buffer[],
  limits: FrameLimits = DEFAULT_FRAME_LIMITS,
  flags = 0,
): Buffer[] {
  if (!KNOWN_KINDS.has(kind)) throw new TesseraError('INTERNAL', `cannot encode unknown frame kind ${kind}`);
  if (!Number.isInteger(requestId) || requestId < 0 || requestId > MAX_REQUEST_ID) {
    throw new TesseraError('INTERNAL', `request id ${requestId} is not a u32`);
  }
  const controlLength = control?.length ?? 0;
  const payLen = payloadLength(payload);
  if (controlLength > limits.maxControlBytes) {
    throw new TesseraError('TOO_LARGE', `control section of ${controlLength} bytes exceeds the limit of ${limits.maxControlBytes}`);
  }
  if (payLen > limits.maxPayloadBytes) {
    throw new TesseraError('TOO_LARGE', `payload of ${payLen} bytes exceeds the frame limit of ${limits.maxPayloadBytes}`);
  }
  const head = Buffer.allocUnsafe(FRAME_HEADER_BYTES + controlLength);
  head.writeUInt32BE(controlLength + payLen, 0);
  head.writeUInt8(kind, 4);
  head.writeUInt8(flags, 5);
  head.writeUInt16BE(0, 6);
  head.writeUInt32BE(requestId, 8);
  head.writeUInt32BE(controlLength, 12);
  if (control !== undefined && controlLength > 0) head.set(control, FRAME_HEADER_BYTES);
  const out: Buffer[] = [head];
  if (payload !== undefined) {
    if (Buffer.isBuffer(payload)) {
      if (payload.length > 0) out.push(payload);
    } else {
      for (const p of payload) if (p.length > 0) out.push(p);
    }
  }
  return out;
}
