/**
 * What the S3 face adds, per MiB of a PUT's body, to what a native put's body costs the node that
 * takes it: the request body read as the native route reads it (plain iteration) against the S3
 * face's checked body (body.ts: aws-chunked decoding, trailing or header checksums, a signed
 * SHA-256) and the MD5 the object layer computes for the ETag. In one process, no network, so
 * the figures hardly move with the machine's load, unlike the cluster benchmark's (`s3`).
 *
 *   npm run bench -- s3body [--size 256M] [--rounds 3]
 *
 * Bodies are cut into 64 KiB reads, as a socket delivers them; the aws-chunked one is what
 * `@aws-sdk/client-s3` sends over HTTP (64 KiB chunks, STREAMING-UNSIGNED-PAYLOAD-TRAILER with a
 * CRC32 trailer), the signed-SHA-256 one what aws-cli sends over plain HTTP. A CRC32C trailer,
 * which a client may choose, is computed by a JavaScript library (Node has no CRC32C).
 */
import { createHash, randomBytes } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { Readable } from 'node:stream';
import { crc32 } from 'node:zlib';
import { Crc32c } from '@aws-crypto/crc32c';
import { formatBytes, parseSize } from '../src/cli/format.js';
import type { PayloadCheck } from '../src/s3/auth.js';
import { verifiedBody } from '../src/s3/body.js';
import { median } from './bench-stats.js';
import { flag, intArg } from './cli-args.js';

const READ_BYTES = 64 << 10;
const AWS_CHUNK_BYTES = 64 << 10;
const MAX_ROUNDS = 20;
const MiB = 2 ** 20;

function reads(wire: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < wire.length; i += READ_BYTES) out.push(Buffer.from(wire.subarray(i, i + READ_BYTES)));
  return out;
}

/** The body as aws-chunked with a trailing checksum: `sum` is its base64 value over the data. */
function awsChunked(data: Buffer, algo: 'crc32' | 'crc32c', sum: string): Buffer {
  const parts: Buffer[] = [];
  for (let i = 0; i < data.length; i += AWS_CHUNK_BYTES) {
    const piece = data.subarray(i, i + AWS_CHUNK_BYTES);
    parts.push(Buffer.from(`${piece.length.toString(16)}\r\n`), piece, Buffer.from('\r\n'));
  }
  parts.push(Buffer.from(`0\r\nx-amz-checksum-${algo}:${sum}\r\n\r\n`));
  return Buffer.concat(parts);
}

function crcBase64(v: number): string {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(v >>> 0);
  return b.toString('base64');
}

interface Case {
  name: string;
  run(): Promise<number>;
}

async function drain(body: AsyncIterable<Buffer>, md5: boolean): Promise<number> {
  const h = md5 ? createHash('md5') : undefined;
  let n = 0;
  for await (const p of body) {
    h?.update(p);
    n += p.length;
  }
  h?.digest();
  return n;
}

export async function main(args: string[]): Promise<void> {
  const size = parseSize(flag(args, '--size') ?? '256M', '--size');
  const rounds = Math.min(intArg(args, '--rounds', 3), MAX_ROUNDS);
  const data = randomBytes(size);
  const plain = reads(data);
  const chunked = reads(awsChunked(data, 'crc32', crcBase64(crc32(data))));
  const chunkedC = reads(awsChunked(data, 'crc32c', crcBase64(new Crc32c().update(data).digest())));
  const sha = createHash('sha256').update(data).digest('hex');
  // No case here is signed chunk by chunk, so the chunk-signing key is never used.
  const noChunkSigning = { signingKey: Buffer.alloc(32), seedSignature: '', amzDate: '', scope: '' };
  const checked = (wire: Buffer[], h: IncomingHttpHeaders, p: PayloadCheck) => verifiedBody(Readable.from(wire), h, p, noChunkSigning);
  const sdkHeaders = { 'content-encoding': 'aws-chunked', 'x-amz-trailer': 'x-amz-checksum-crc32', 'x-amz-decoded-content-length': String(size) };
  const sdkPayload: PayloadCheck = { kind: 'streaming', signed: false, trailer: true };
  const cases: Case[] = [
    { name: 'native: the body as read', run: () => drain(Readable.from(plain), false) },
    { name: 'SDK: aws-chunked, CRC32 trailer', run: () => drain(checked(chunked, sdkHeaders, sdkPayload), false) },
    { name: 'SDK: the same + MD5 (ETag)', run: () => drain(checked(chunked, sdkHeaders, sdkPayload), true) },
    { name: 'aws-chunked, CRC32C trailer', run: () => drain(checked(chunkedC, { ...sdkHeaders, 'x-amz-trailer': 'x-amz-checksum-crc32c' }, sdkPayload), false) },
    { name: 'aws-cli: signed SHA-256', run: () => drain(checked(plain, { 'content-length': String(size) }, { kind: 'sha256', hex: sha }), false) },
    { name: 'aws-cli: the same + MD5 (ETag)', run: () => drain(checked(plain, { 'content-length': String(size) }, { kind: 'sha256', hex: sha }), true) },
  ];
  const cpu: number[][] = cases.map(() => []);
  for (let r = 0; r < rounds; r++) {
    for (const [i, c] of cases.entries()) {
      const t0 = process.cpuUsage();
      const n = await c.run();
      const t = process.cpuUsage(t0);
      if (n !== size) throw new Error(`${c.name}: read ${n} of ${size} bytes`);
      cpu[i]!.push((t.user + t.system) / 1000 / (size / MiB));
    }
  }
  const base = median(cpu[0]!);
  process.stdout.write(`S3 request body on the node, ${formatBytes(size)} in 64 KiB reads, CPU ms per MiB (median of ${rounds}), and what it adds to the native body\n`);
  for (const [i, c] of cases.entries()) {
    const m = median(cpu[i]!);
    process.stdout.write(`  ${c.name.padEnd(34)} ${m.toFixed(3)}${i === 0 ? '' : `   +${(m - base).toFixed(3)}`}\n`);
  }
}
