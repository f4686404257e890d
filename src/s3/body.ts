/**
 * The request body as a handler reads it: decoded from aws-chunked when it is, and checked as
 * it streams against what the request declared (its signed SHA-256, x-amz-checksum-* headers,
 * Content-Length). Every check fails the stream before its end, so an upload with a bad body
 * never completes and nothing is listed.
 */
import { createHash, type Hash } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import type { PayloadCheck } from './auth.js';
import { AwsChunkedDecoder, type ChunkSigning } from './chunked.js';
import { BodyChecksums, CHECKSUM_HEADER_PREFIX, checksumAlgorithm, type ChecksumAlgorithm } from './checksums.js';
import { S3Error } from './errors.js';

/** Checks a plain (not aws-chunked) body: its length, its declared SHA-256 and x-amz-checksum-* headers. */
export class PlainBodyVerifier extends Transform {
  private readonly sha: Hash | undefined;
  private readonly sums: BodyChecksums;
  private seen = 0;

  constructor(private readonly o: { sha256?: string; checksums: ReadonlyMap<ChecksumAlgorithm, string>; length?: number }) {
    super();
    this.sha = o.sha256 === undefined ? undefined : createHash('sha256');
    this.sums = new BodyChecksums(o.checksums.keys());
  }

  override _transform(chunk: Buffer, _e: BufferEncoding, cb: TransformCallback): void {
    this.seen += chunk.length;
    if (this.o.length !== undefined && this.seen > this.o.length) {
      cb(new S3Error('IncompleteBody', `the body is longer than its Content-Length of ${this.o.length}`));
      return;
    }
    this.sha?.update(chunk);
    this.sums.update(chunk);
    cb(null, chunk);
  }

  override _flush(cb: TransformCallback): void {
    try {
      if (this.o.length !== undefined && this.seen !== this.o.length) {
        throw new S3Error('IncompleteBody', `the body ended after ${this.seen} of the ${this.o.length} bytes Content-Length declares; nothing was stored`);
      }
      if (this.sha) {
        const got = this.sha.digest('hex');
        if (got !== this.o.sha256) throw new S3Error('XAmzContentSHA256Mismatch', `the body's SHA-256 ${got} is not the x-amz-content-sha256 the request signed; nothing was stored`);
      }
      for (const [algo, value] of this.o.checksums) this.sums.verify(algo, value);
      cb();
    } catch (e) {
      cb(e as Error);
    }
  }
}

function header(h: IncomingHttpHeaders, name: string): string | undefined {
  const v = h[name];
  return Array.isArray(v) ? v[0] : v;
}

/** Parses a non-negative decimal length header; undefined when absent. */
export function lengthHeader(h: IncomingHttpHeaders, name: string): number | undefined {
  const v = header(h, name);
  if (v === undefined) return undefined;
  if (!/^\d{1,16}$/.test(v) || !Number.isSafeInteger(Number(v))) throw new S3Error('InvalidArgument', `${name} '${v.slice(0, 32)}' is not a byte count`);
  return Number(v);
}

export function isAwsChunked(h: IncomingHttpHeaders, payload: PayloadCheck): boolean {
  return payload.kind === 'streaming' || (header(h, 'content-encoding') ?? '').split(',').some((e) => e.trim() === 'aws-chunked');
}

/** The length of the object the body carries (decoded), when the request says. */
export function objectLength(h: IncomingHttpHeaders, payload: PayloadCheck): number | undefined {
  return isAwsChunked(h, payload) ? lengthHeader(h, 'x-amz-decoded-content-length') : lengthHeader(h, 'content-length');
}

/** The checked body stream for a request; errors of the source and of the checks end it. */
export function verifiedBody(source: Readable, h: IncomingHttpHeaders, payload: PayloadCheck, signing: ChunkSigning): Readable {
  let check: Transform;
  if (isAwsChunked(h, payload)) {
    if (payload.kind === 'sha256') throw new S3Error('InvalidRequest', 'an aws-chunked body must declare a STREAMING-* x-amz-content-sha256');
    const trailerNames = (header(h, 'x-amz-trailer') ?? '').split(',').map((s) => s.trim()).filter((s) => s !== '');
    const streaming = payload.kind === 'streaming' ? payload : { signed: false, trailer: trailerNames.length > 0 };
    const decoded = lengthHeader(h, 'x-amz-decoded-content-length');
    check = new AwsChunkedDecoder({
      ...(streaming.signed ? { signing } : {}),
      trailer: streaming.trailer,
      trailerNames,
      ...(decoded !== undefined ? { decodedLength: decoded } : {}),
    });
  } else {
    const checksums = new Map<ChecksumAlgorithm, string>();
    for (const name of Object.keys(h)) {
      if (name.startsWith(CHECKSUM_HEADER_PREFIX) && name !== 'x-amz-checksum-mode' && name !== 'x-amz-checksum-type' && name !== 'x-amz-checksum-algorithm') {
        checksums.set(checksumAlgorithm(name), header(h, name) ?? '');
      }
    }
    const length = lengthHeader(h, 'content-length');
    check = new PlainBodyVerifier({ checksums, ...(payload.kind === 'sha256' ? { sha256: payload.hex } : {}), ...(length !== undefined ? { length } : {}) });
  }
  feed(source, check);
  return check;
}

/**
 * `source.pipe(check)`, with a failing or cut-short source failing the check. A check that ends
 * early (failed, or given up by its reader) unpipes, leaving the rest of the body unread: the
 * error answer still goes out, with `connection: close` (server.ts), where destroying the request
 * would cut the connection before it. `pipeline` did this with an AbortController per call,
 * aborted when the pipe finished; the DOMException that abort builds (with its stack) was 3 % of
 * an S3 node's CPU under small PUTs.
 */
function feed(source: Readable, check: Transform): void {
  // Both stay for the request's life (destroying a check that already ended does nothing), so an
  // error of the request after its check is gone still has a listener.
  source.on('error', (err: Error) => check.destroy(err));
  source.once('close', () => {
    if (!source.readableEnded) check.destroy(new S3Error('IncompleteBody', 'the connection closed before the request body ended; nothing was stored'));
  });
  source.pipe(check);
}
