/**
 * Typed errors shared by every layer. Each carries a stable `code`; the CLI maps codes to exit
 * statuses and the HTTP API to status codes, so the mapping lives here in one table.
 */

export type ErrorCode =
  | 'BAD_INPUT' // malformed request, argument or message
  | 'BAD_FRAME' // wire-level violation (size, type, truncation)
  | 'TOO_LARGE' // a length or count over its limit
  | 'NOT_FOUND'
  | 'CONFLICT' // already exists, or state forbids the operation
  | 'CORRUPT' // stored bytes do not match their id
  | 'BAD_DIGEST' // a body does not match the digest its sender announced (Content-MD5)
  | 'NO_SPACE' // quota or disk full
  | 'AUTH' // authentication or admission refused
  | 'PROTOCOL' // version mismatch or protocol violation by a peer
  | 'TIMEOUT'
  | 'CANCELLED'
  | 'UNAVAILABLE' // not enough live nodes, connection lost, quorum not reached
  | 'IO' // local I/O failure
  | 'INTERNAL';

export class TesseraError extends Error {
  readonly code: ErrorCode;
  readonly details?: Record<string, unknown>;
  constructor(code: ErrorCode, message: string, details?: Record<string, unknown>, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TesseraError';
    this.code = code;
    if (details !== undefined) this.details = details;
  }
}

export const badInput = (msg: string, details?: Record<string, unknown>) => new TesseraError('BAD_INPUT', msg, details);
export const notFound = (msg: string, details?: Record<string, unknown>) => new TesseraError('NOT_FOUND', msg, details);
export const tooLarge = (msg: string, details?: Record<string, unknown>) => new TesseraError('TOO_LARGE', msg, details);
export const corrupt = (msg: string, details?: Record<string, unknown>) => new TesseraError('CORRUPT', msg, details);
export const unavailable = (msg: string, details?: Record<string, unknown>) => new TesseraError('UNAVAILABLE', msg, details);

export function isTesseraError(e: unknown, code?: ErrorCode): e is TesseraError {
  return e instanceof TesseraError && (code === undefined || e.code === code);
}

/** Exit codes for the CLI: 1 generic, 2 usage, then one per class of failure. */
export const EXIT_CODES: Record<ErrorCode, number> = {
  BAD_INPUT: 2,
  BAD_FRAME: 2,
  TOO_LARGE: 2,
  NOT_FOUND: 3,
  CONFLICT: 4,
  CORRUPT: 5,
  BAD_DIGEST: 5,
  NO_SPACE: 6,
  AUTH: 7,
  PROTOCOL: 7,
  TIMEOUT: 8,
  CANCELLED: 8,
  UNAVAILABLE: 9,
  IO: 10,
  INTERNAL: 1,
};

export const HTTP_STATUS: Record<ErrorCode, number> = {
  BAD_INPUT: 400,
  BAD_FRAME: 400,
  TOO_LARGE: 413,
  NOT_FOUND: 404,
  CONFLICT: 409,
  CORRUPT: 502,
  BAD_DIGEST: 400,
  NO_SPACE: 507,
  AUTH: 401,
  PROTOCOL: 400,
  TIMEOUT: 504,
  CANCELLED: 499,
  UNAVAILABLE: 503,
  IO: 500,
  INTERNAL: 500,
};

/** Invariant check: a failure is a bug in tessera, never a user error. */
export function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new TesseraError('INTERNAL', `invariant violated: ${message}`);
}
