/**
 * The whole-object checksums S3 clients send (x-amz-checksum-* as a header or an aws-chunked
 * trailer): CRC32, CRC32C, SHA-1 and SHA-256, computed as the body streams and compared at its
 * end. Values are base64 of the big-endian digest, as S3 writes them.
 */
import { createHash, type Hash } from 'node:crypto';
import { crc32 } from 'node:zlib';
import { crc32c } from './crc32c.js';
import { S3Error } from './errors.js';

export const CHECKSUM_ALGORITHMS = ['crc32', 'crc32c', 'sha1', 'sha256'] as const;
export type ChecksumAlgorithm = (typeof CHECKSUM_ALGORITHMS)[number];
export const CHECKSUM_HEADER_PREFIX = 'x-amz-checksum-';

export function checksumAlgorithm(headerName: string): ChecksumAlgorithm {
  const name = headerName.toLowerCase();
  const algo = name.startsWith(CHECKSUM_HEADER_PREFIX) ? name.slice(CHECKSUM_HEADER_PREFIX.length) : '';
  if (!(CHECKSUM_ALGORITHMS as readonly string[]).includes(algo)) {
    throw new S3Error('InvalidRequest', `checksum '${headerName.slice(0, 64)}' is not supported; use ${CHECKSUM_ALGORITHMS.map((a) => CHECKSUM_HEADER_PREFIX + a).join(', ')}`);
  }
  return algo as ChecksumAlgorithm;
}

interface Running {
  update(b: Buffer): void;
  digest(): Buffer;
}

/** A CRC's running value, its digest the 4 big-endian bytes S3 writes. */
function runningCrc(step: (b: Buffer, crc: number) => number): Running {
  let v = 0;
  return {
    update: (b) => { v = step(b, v); },
    digest: () => { const o = Buffer.alloc(4); o.writeUInt32BE(v >>> 0); return o; },
  };
}

function running(algo: ChecksumAlgorithm): Running {
  if (algo === 'crc32') return runningCrc(crc32);
  if (algo === 'crc32c') return runningCrc(crc32c);
  const h: Hash = createHash(algo);
  return { update: (b) => { h.update(b); }, digest: () => h.digest() };
}

/** Running checksums over a body; each named algorithm is computed once however many ways it is declared. */
export class BodyChecksums {
  private readonly sums = new Map<ChecksumAlgorithm, Running>();
  constructor(algos: Iterable<ChecksumAlgorithm>) {
    for (const a of algos) if (!this.sums.has(a)) this.sums.set(a, running(a));
  }
  get empty(): boolean {
    return this.sums.size === 0;
  }
  update(b: Buffer): void {
    for (const s of this.sums.values()) s.update(b);
  }
  /** Throws BadDigest when the declared base64 value is not the computed one. Call after the last update. */
  verify(algo: ChecksumAlgorithm, declaredBase64: string): void {
    const s = this.sums.get(algo);
    if (!s) throw new S3Error('InvalidRequest', `the body declares a ${algo} checksum that was not announced before it`);
    const got = s.digest().toString('base64');
    if (got !== declaredBase64.trim()) throw new S3Error('BadDigest', `the ${algo.toUpperCase()} you specified (${declaredBase64.slice(0, 64)}) did not match the calculated checksum (${got}); nothing was stored`);
  }
}
