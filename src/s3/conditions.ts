/**
 * HTTP Range and the conditional headers as S3 evaluates them for GET and HEAD (and for the
 * copy source of CopyObject). Pure.
 */
import { S3Error } from './errors.js';

export interface ByteRange {
  start: number;
  /** Inclusive. */
  end: number;
}

/**
 * One `bytes=` range against an object of `size` bytes; undefined when the header asks for the
 * whole object (absent, or a form S3 ignores such as several ranges). Unsatisfiable → InvalidRange.
 */
export function parseRange(header: string | undefined, size: number): ByteRange | undefined {
  if (header === undefined) return undefined;
  const m = /^bytes=(\d{0,20})-(\d{0,20})$/.exec(header.trim());
  // S3 serves the whole object for a Range it does not understand, or one with several ranges.
  if (!m || (m[1] === '' && m[2] === '')) return undefined;
  let start: number;
  let end: number;
  if (m[1] === '') {
    const n = Number(m[2]);
    if (n === 0) throw new S3Error('InvalidRange', 'The requested range is not satisfiable: a suffix range of 0 bytes');
    start = Math.max(0, size - n);
    end = size - 1;
  } else {
    start = Number(m[1]);
    end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
    if (m[2] !== '' && Number(m[2]) < start) return undefined;
  }
  if (start >= size || size === 0) throw new S3Error('InvalidRange', `The requested range is not satisfiable: byte ${start} of a ${size}-byte object`);
  return { start, end };
}

export interface Conditions {
  ifMatch?: string | undefined;
  ifNoneMatch?: string | undefined;
  ifModifiedSince?: string | undefined;
  ifUnmodifiedSince?: string | undefined;
}

function etagListMatches(list: string, etag: string): boolean {
  return list.split(',').some((t) => {
    const v = t.trim().replace(/^W\//, '');
    return v === '*' || v === `"${etag}"` || v === etag;
  });
}

/** Seconds precision: Last-Modified carries no milliseconds. */
const seconds = (ms: number): number => Math.floor(ms / 1000);

function dateOf(s: string | undefined): number | undefined {
  if (s === undefined) return undefined;
  const t = Date.parse(s);
  return Number.isFinite(t) ? t : undefined;
}

/**
 * RFC 7232 order as S3 applies it: If-Match (over If-Unmodified-Since) → 412;
 * If-None-Match (over If-Modified-Since) → 304 for reads. Throws PreconditionFailed or
 * NotModified; returns when the request may proceed.
 */
export function checkConditions(c: Conditions, etag: string, mtime: number, read: boolean): void {
  if (c.ifMatch !== undefined) {
    if (!etagListMatches(c.ifMatch, etag)) throw new S3Error('PreconditionFailed', 'At least one of the pre-conditions you specified did not hold (If-Match)');
  } else {
    const t = dateOf(c.ifUnmodifiedSince);
    if (t !== undefined && seconds(mtime) > seconds(t)) throw new S3Error('PreconditionFailed', 'At least one of the pre-conditions you specified did not hold (If-Unmodified-Since)');
  }
  if (c.ifNoneMatch !== undefined) {
    if (etagListMatches(c.ifNoneMatch, etag)) {
      if (read) throw new S3Error('NotModified', 'Not Modified');
      throw new S3Error('PreconditionFailed', 'At least one of the pre-conditions you specified did not hold (If-None-Match)');
    }
  } else {
    const t = dateOf(c.ifModifiedSince);
    if (t !== undefined && seconds(mtime) <= seconds(t)) {
      if (read) throw new S3Error('NotModified', 'Not Modified');
      throw new S3Error('PreconditionFailed', 'At least one of the pre-conditions you specified did not hold (If-Modified-Since)');
    }
  }
}
