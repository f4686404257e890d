/**
 * Decodes an aws-chunked request body (`Content-Encoding: aws-chunked`): each chunk is
 * `hex-size[;chunk-signature=SIG]\r\n DATA \r\n`, the last one of size 0, then for the trailer
 * variants `x-amz-checksum-ALGO:BASE64\r\n` lines (and `x-amz-trailer-signature:SIG` when
 * signed) and an empty line. A signed chunk is held until its signature (chained from the
 * request's) is verified, so nothing unverified reaches the store; a trailing checksum is
 * verified before the stream ends, so a bad body fails the upload and nothing is listed.
 * Memory is bounded by one chunk.
 */
import { createHash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { S3Error } from './errors.js';
import { BodyChecksums, checksumAlgorithm, type ChecksumAlgorithm } from './checksums.js';
import { EMPTY_SHA256, signString } from './sigv4.js';

/** Largest chunk accepted. Clients send 64 KiB (the SDKs) to 8 MiB; a signed chunk is held whole until verified. */
export const MAX_AWS_CHUNK_BYTES = 16 << 20;
/** A chunk header line: hex size, ';chunk-signature=' and 64 hex digits. */
export const MAX_CHUNK_HEADER_BYTES = 256;
/** A trailer line: a checksum header name and its base64 value, or the trailer signature. */
export const MAX_TRAILER_LINE_BYTES = 512;
export const MAX_TRAILER_LINES = 8;

export interface ChunkSigning {
  signingKey: Buffer;
  seedSignature: string;
  amzDate: string;
  scope: string;
}

export interface AwsChunkedOptions {
  /** Chunk signatures to verify; absent for STREAMING-UNSIGNED-PAYLOAD-TRAILER. */
  signing?: ChunkSigning;
  /** The body ends with a trailer; the `x-amz-trailer` header names what it carries. */
  trailer: boolean;
  /** x-amz-trailer: the checksum header the trailer will carry. */
  trailerNames?: readonly string[];
  /** x-amz-decoded-content-length, when given. */
  decodedLength?: number;
}

type State = 'header' | 'data' | 'data-crlf' | 'trailer' | 'done';

export class AwsChunkedDecoder extends Transform {
  private state: State = 'header';
  private line = Buffer.alloc(0);
  private remaining = 0;
  private chunkSignature = '';
  private held: Buffer[] = [];
  private heldHash = createHash('sha256');
  private previous: string;
  private total = 0;
  private readonly checksums: BodyChecksums;
  private readonly expectedTrailers: Set<ChecksumAlgorithm>;
  private readonly trailerLines: string[] = [];

  constructor(private readonly o: AwsChunkedOptions) {
    super();
    this.previous = o.signing?.seedSignature ?? '';
    const algos = (o.trailerNames ?? []).map(checksumAlgorithm);
    this.expectedTrailers = new Set(algos);
    this.checksums = new BodyChecksums(algos);
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    try {
      this.consume(chunk);
      cb();
    } catch (e) {
      cb(e as Error);
    }
  }

  override _flush(cb: TransformCallback): void {
    if (this.state !== 'done') {
      cb(new S3Error('IncompleteBody', `the aws-chunked body ended in the middle of a ${this.state === 'trailer' ? 'trailer' : 'chunk'}; nothing was stored`));
      return;
    }
    cb();
  }

  private consume(buf: Buffer): void {
    let i = 0;
    while (i < buf.length) {
      switch (this.state) {
        case 'header':
        case 'trailer': {
          const nl = buf.indexOf(0x0a, i);
          const end = nl < 0 ? buf.length : nl + 1;
          const limit = this.state === 'header' ? MAX_CHUNK_HEADER_BYTES : MAX_TRAILER_LINE_BYTES;
          if (this.line.length + (end - i) > limit) throw new S3Error('IncompleteBody', `an aws-chunked ${this.state} line is longer than ${limit} bytes`);
          this.line = Buffer.concat([this.line, buf.subarray(i, end)]);
          i = end;
          if (nl < 0) break;
          const text = this.line.toString('latin1');
          this.line = Buffer.alloc(0);
          if (!text.endsWith('\r\n')) throw new S3Error('IncompleteBody', 'an aws-chunked line does not end in CRLF');
          const content = text.slice(0, -2);
          if (this.state === 'header') this.onHeader(content);
          else this.onTrailerLine(content);
          break;
        }
        case 'data': {
          const n = Math.min(this.remaining, buf.length - i);
          const part = buf.subarray(i, i + n);
          i += n;
          this.remaining -= n;
          this.checksums.update(part);
          if (this.o.signing) {
            this.held.push(part);
            this.heldHash.update(part);
          } else {
            this.push(part);
          }
          if (this.remaining === 0) this.state = 'data-crlf';
          break;
        }
        case 'data-crlf': {
          // Two bytes, possibly split across reads.
          const take = Math.min(2 - this.line.length, buf.length - i);
          this.line = Buffer.concat([this.line, buf.subarray(i, i + take)]);
          i += take;
          if (this.line.length < 2) break;
          if (this.line[0] !== 0x0d || this.line[1] !== 0x0a) throw new S3Error('IncompleteBody', 'an aws-chunked chunk is longer than its declared size (no CRLF after its data)');
          this.line = Buffer.alloc(0);
          this.onDataEnd();
          break;
        }
        case 'done':
          // Anything after the terminating line is not part of the object; it is ignored as S3 does.
          return;
      }
    }
  }

  private onHeader(content: string): void {
    const m = /^([0-9a-fA-F]{1,8})(?:;chunk-signature=([0-9a-f]{64}))?$/.exec(content);
    if (!m) throw new S3Error('IncompleteBody', `'${content.slice(0, 80)}' is not an aws-chunked chunk header (hex-size[;chunk-signature=SIG])`);
    const size = parseInt(m[1]!, 16);
    if (size > MAX_AWS_CHUNK_BYTES) throw new S3Error('InvalidArgument', `an aws-chunked chunk of ${size} bytes is over the ${MAX_AWS_CHUNK_BYTES}-byte limit`);
    if (this.o.signing && m[2] === undefined) throw new S3Error('SignatureDoesNotMatch', 'a chunk of a signed aws-chunked body has no chunk-signature');
    this.chunkSignature = m[2] ?? '';
    this.total += size;
    if (this.o.decodedLength !== undefined && this.total > this.o.decodedLength) {
      throw new S3Error('IncompleteBody', `the aws-chunked body carries more than the ${this.o.decodedLength} bytes x-amz-decoded-content-length declares`);
    }
    if (size === 0) {
      this.verifyChunk();
      if (this.o.decodedLength !== undefined && this.total !== this.o.decodedLength) {
        throw new S3Error('IncompleteBody', `the aws-chunked body carries ${this.total} bytes; x-amz-decoded-content-length declares ${this.o.decodedLength}`);
      }
      this.state = 'trailer';
      return;
    }
    this.remaining = size;
    this.state = 'data';
  }

  /** Verifies the chunk just read against its signature and passes its bytes on. */
  private verifyChunk(): void {
    const s = this.o.signing;
    if (s) {
      const sts = ['AWS4-HMAC-SHA256-PAYLOAD', s.amzDate, s.scope, this.previous, EMPTY_SHA256, this.heldHash.digest('hex')].join('\n');
      const want = signString(s.signingKey, sts);
      if (want !== this.chunkSignature) throw new S3Error('SignatureDoesNotMatch', 'an aws-chunked chunk signature does not match its data: the body was altered or signed with another key; nothing was stored');
      this.previous = want;
      for (const b of this.held) this.push(b);
      this.held = [];
      this.heldHash = createHash('sha256');
    }
  }

  private onDataEnd(): void {
    this.verifyChunk();
    this.state = 'header';
  }

  private onTrailerLine(content: string): void {
    if (content === '') {
      this.finishTrailer();
      return;
    }
    if (this.trailerLines.length >= MAX_TRAILER_LINES) throw new S3Error('InvalidArgument', `the aws-chunked trailer has more than ${MAX_TRAILER_LINES} lines`);
    this.trailerLines.push(content);
  }

  private finishTrailer(): void {
    let trailerSignature: string | undefined;
    const signedPart: string[] = [];
    const seen = new Set<ChecksumAlgorithm>();
    for (const line of this.trailerLines) {
      const i = line.indexOf(':');
      if (i <= 0) throw new S3Error('InvalidArgument', `aws-chunked trailer line '${line.slice(0, 80)}' is not name:value`);
      const name = line.slice(0, i).trim().toLowerCase();
      const value = line.slice(i + 1).trim();
      if (name === 'x-amz-trailer-signature') {
        trailerSignature = value;
        continue;
      }
      const algo = checksumAlgorithm(name);
      if (!this.expectedTrailers.has(algo)) throw new S3Error('InvalidRequest', `the trailer carries ${name}, which x-amz-trailer did not announce`);
      this.checksums.verify(algo, value);
      seen.add(algo);
      signedPart.push(`${name}:${value}\n`);
    }
    for (const a of this.expectedTrailers) {
      if (!seen.has(a)) throw new S3Error('IncompleteBody', `x-amz-trailer announced x-amz-checksum-${a} but the body's trailer does not carry it; nothing was stored`);
    }
    const s = this.o.signing;
    if (s && this.o.trailer) {
      if (trailerSignature === undefined) throw new S3Error('SignatureDoesNotMatch', 'the signed aws-chunked trailer has no x-amz-trailer-signature');
      const sts = ['AWS4-HMAC-SHA256-TRAILER', s.amzDate, s.scope, this.previous, createHash('sha256').update(signedPart.join('')).digest('hex')].join('\n');
      if (signString(s.signingKey, sts) !== trailerSignature) throw new S3Error('SignatureDoesNotMatch', 'the aws-chunked trailer signature does not match; nothing was stored');
    }
    this.state = 'done';
  }
}
