/** Random file contents for the demo and the benchmarks. */
import { createCipheriv, randomBytes } from 'node:crypto';

const PIECE_BYTES = 1 << 20;
/** Below glibc's mmap threshold, so the cipher's output allocations stay cheap (DESIGN §9). */
const KEYSTREAM_SLICE_BYTES = 64 << 10;

/**
 * Incompressible bytes, streamed: an AES-256-CTR keystream under a fresh random key. It is
 * several times faster than the kernel's random source, so generating the data does not
 * slow down the transfer being measured.
 */
export async function* randomStream(totalBytes: number, pieceBytes = PIECE_BYTES): AsyncGenerator<Buffer> {
  const cipher = createCipheriv('aes-256-ctr', randomBytes(32), randomBytes(16));
  const zeros = Buffer.alloc(KEYSTREAM_SLICE_BYTES);
  for (let left = totalBytes; left > 0; ) {
    const n = Math.min(pieceBytes, left);
    // Each piece is a fresh buffer: the consumer may keep a reference while it is sent.
    const piece = Buffer.allocUnsafeSlow(n);
    for (let at = 0; at < n; at += KEYSTREAM_SLICE_BYTES) {
      const len = Math.min(KEYSTREAM_SLICE_BYTES, n - at);
      cipher.update(zeros.subarray(0, len)).copy(piece, at);
    }
    left -= n;
    yield piece;
  }
}
