/**
 * CBOR codec for a frame's control section. Decoding is two-step: a structural scan of the raw
 * bytes (well-formed, definite lengths only, bounded depth, counts that fit the bytes present,
 * no tags, integers within JavaScript's safe range) and only then cbor-x, so a hostile message
 * cannot make the decoder recurse deeply, preallocate for a count it will never receive, or
 * spend time out of proportion to its size. The result is then checked against the zod schema
 * the caller expects.
 */
import { Decoder, Encoder } from 'cbor-x';
import type { z } from 'zod';
import { TesseraError } from '../errors.js';
import { MAX_CONTROL_BYTES } from '../limits.js';

/** Deepest nesting of arrays, maps and tags accepted in a control section. */
export const MAX_CONTROL_DEPTH = 32;

/**
 * No control schema uses a tagged value, so every tag is refused. Bignums (tags 2 and 3) in
 * particular: cbor-x converts them in time quadratic in their length, and one 200 KiB bignum
 * held a node's event loop for half a minute.
 */
const ALLOWED_TAGS: ReadonlySet<number> = new Set();

const encoder = new Encoder({ useRecords: false, mapsAsObjects: true, tagUint8Array: false, pack: false });
const decoder = new Decoder({ useRecords: false, mapsAsObjects: true });

export function encodeControl(value: unknown): Buffer {
  let out: Buffer;
  try {
    // A copy: cbor-x may hand back a view of its reusable scratch buffer.
    out = Buffer.from(encoder.encode(value));
  } catch (e) {
    throw new TesseraError('BAD_INPUT', `control value cannot be encoded as CBOR: ${(e as Error).message}`, undefined, { cause: e });
  }
  if (out.length > MAX_CONTROL_BYTES) {
    throw new TesseraError('TOO_LARGE', `control section of ${out.length} bytes exceeds the limit of ${MAX_CONTROL_BYTES}`);
  }
  return out;
}

/** Decodes without a schema; use only where any value is acceptable (e.g. an opaque body). */
export function decodeControlUnknown(bytes: Uint8Array): unknown {
  if (bytes.length > MAX_CONTROL_BYTES) {
    throw new TesseraError('BAD_FRAME', `control section of ${bytes.length} bytes exceeds the limit of ${MAX_CONTROL_BYTES}`);
  }
  if (bytes.length === 0) throw new TesseraError('BAD_FRAME', 'control section is empty, expected one CBOR item');
  scanCbor(bytes);
  try {
    return decoder.decode(bytes);
  } catch (e) {
    throw new TesseraError('BAD_FRAME', `malformed CBOR in control section: ${(e as Error).message}`, undefined, { cause: e });
  }
}

export function decodeControl<S extends z.ZodTypeAny>(bytes: Uint8Array, schema: S): z.output<S> {
  const value = decodeControlUnknown(bytes);
  const parsed = schema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue && issue.path.length > 0 ? ` at ${issue.path.join('.')}` : '';
    throw new TesseraError('BAD_INPUT', `control message does not match its schema${where}: ${issue?.message ?? 'invalid'}`);
  }
  return parsed.data as z.output<S>;
}

const bad = (msg: string, at: number) => new TesseraError('BAD_FRAME', `malformed CBOR in control section at byte ${at}: ${msg}`);

/**
 * Walks exactly one CBOR data item iteratively and demands it fills `bytes`. `stack` holds the
 * number of items still owed by each open container.
 */
export function scanCbor(bytes: Uint8Array): void {
  const n = bytes.length;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const stack: number[] = [];
  let pos = 0;
  let owed = 1; // items still owed at top level
  for (;;) {
    if (pos >= n) throw bad('truncated item', pos);
    const start = pos;
    const ib = bytes[pos++]!;
    const major = ib >> 5;
    const ai = ib & 31;
    let arg: number;
    if (ai < 24) arg = ai;
    else if (ai === 24) {
      if (pos + 1 > n) throw bad('truncated argument', start);
      arg = bytes[pos]!;
      pos += 1;
    } else if (ai === 25) {
      if (pos + 2 > n) throw bad('truncated argument', start);
      arg = view.getUint16(pos);
      pos += 2;
    } else if (ai === 26) {
      if (pos + 4 > n) throw bad('truncated argument', start);
      arg = view.getUint32(pos);
      pos += 4;
    } else if (ai === 27) {
      if (pos + 8 > n) throw bad('truncated argument', start);
      // Beyond 2^53 no length can fit anyway; the value itself only matters for lengths.
      arg = view.getUint32(pos) * 2 ** 32 + view.getUint32(pos + 4);
      pos += 8;
    } else if (ai === 31) {
      throw bad(major === 7 ? 'unexpected break' : 'indefinite-length items are not accepted', start);
    } else {
      throw bad(`reserved additional information ${ai}`, start);
    }
    let opened = 0; // items owed by a container this item opens
    switch (major) {
      case 0:
      case 1:
        // No schema counts beyond 2^53, and cbor-x would hand such a value back as a BigInt.
        if (arg > Number.MAX_SAFE_INTEGER) throw bad(`integer beyond ±2^53 is not accepted`, start);
        break;
      case 2:
      case 3:
        if (arg > n - pos) throw bad(`string of ${arg} bytes runs past the end`, start);
        pos += arg;
        break;
      case 4:
        if (arg > n - pos) throw bad(`array of ${arg} items cannot fit in the bytes left`, start);
        opened = arg;
        break;
      case 5:
        if (arg * 2 > n - pos) throw bad(`map of ${arg} entries cannot fit in the bytes left`, start);
        opened = arg * 2;
        break;
      case 6:
        if (!ALLOWED_TAGS.has(arg)) throw bad(`tag ${arg} is not accepted`, start);
        opened = 1;
        break;
      default: // 7: simple values and floats, argument already skipped
        if (ai === 24 && arg < 32) throw bad('invalid simple value encoding', start);
        break;
    }
    if (opened > 0) {
      stack.push(owed - 1);
      if (stack.length > MAX_CONTROL_DEPTH) throw bad(`nesting deeper than ${MAX_CONTROL_DEPTH}`, start);
      owed = opened;
      continue;
    }
    owed--;
    while (owed === 0) {
      if (stack.length === 0) {
        if (pos !== n) throw bad(`${n - pos} trailing bytes after the item`, pos);
        return;
      }
      owed = stack.pop()!;
    }
  }
}
