/**
 * The S3 error catalogue: each code S3 clients test for, with its HTTP status. Handlers throw
 * `S3Error`; a `TesseraError` from a lower layer is translated once, at the face, so no service
 * below knows S3's names.
 */
import { TesseraError } from '../errors.js';

export const S3_ERRORS = {
  AccessDenied: 403,
  AuthorizationHeaderMalformed: 400,
  BadDigest: 400,
  BadRequest: 400,
  BucketAlreadyExists: 409,
  BucketAlreadyOwnedByYou: 409,
  BucketNotEmpty: 409,
  EntityTooLarge: 400,
  EntityTooSmall: 400,
  IncompleteBody: 400,
  InternalError: 500,
  InvalidAccessKeyId: 403,
  InvalidArgument: 400,
  InvalidBucketName: 400,
  InvalidDigest: 400,
  InvalidPart: 400,
  InvalidPartOrder: 400,
  InvalidRange: 416,
  InvalidRequest: 400,
  KeyTooLongError: 400,
  MalformedACLError: 400,
  MalformedXML: 400,
  MetadataTooLarge: 400,
  MethodNotAllowed: 405,
  MissingContentLength: 411,
  MissingSecurityHeader: 400,
  NoSuchBucket: 404,
  NoSuchKey: 404,
  NoSuchUpload: 404,
  NotImplemented: 501,
  NotModified: 304,
  PreconditionFailed: 412,
  RequestTimeTooSkewed: 403,
  ServiceUnavailable: 503,
  SignatureDoesNotMatch: 403,
  SlowDown: 503,
  XAmzContentSHA256Mismatch: 400,
  InvalidStorageClass: 400,
  InsufficientStorage: 507,
} as const;

export type S3ErrorCode = keyof typeof S3_ERRORS;

export class S3Error extends Error {
  readonly code: S3ErrorCode;
  readonly status: number;
  constructor(code: S3ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'S3Error';
    this.code = code;
    this.status = S3_ERRORS[code];
  }
}

export const s3Error = (code: S3ErrorCode, message: string): S3Error => new S3Error(code, message);

/**
 * A lower layer's error as S3 names it. NOT_FOUND is left to the handler that knows whether a
 * bucket or a key was missing; here it is NoSuchKey, the common case.
 */
export function toS3Error(err: unknown): S3Error {
  if (err instanceof S3Error) return err;
  // A body check that failed inside a service's stream arrives wrapped; its S3 name is the answer.
  if (err instanceof Error && err.cause instanceof S3Error) return err.cause;
  if (!(err instanceof TesseraError)) return new S3Error('InternalError', (err as Error)?.message ?? String(err), { cause: err });
  const code = err.code as string;
  const map: Record<string, S3ErrorCode> = {
    BAD_INPUT: 'InvalidArgument',
    BAD_FRAME: 'InvalidArgument',
    TOO_LARGE: 'EntityTooLarge',
    NOT_FOUND: 'NoSuchKey',
    CONFLICT: 'InvalidRequest',
    AUTH: 'AccessDenied',
    BAD_DIGEST: 'BadDigest',
    NO_SPACE: 'InsufficientStorage',
    UNAVAILABLE: 'ServiceUnavailable',
    TIMEOUT: 'ServiceUnavailable',
  };
  return new S3Error(map[code] ?? 'InternalError', err.message, { cause: err });
}
