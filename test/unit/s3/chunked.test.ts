import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { crc32 } from 'node:zlib';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import fc from 'fast-check';
import { authenticate } from '../../../src/s3/auth.js';
import { AwsChunkedDecoder, MAX_AWS_CHUNK_BYTES, MAX_CHUNK_HEADER_BYTES, type ChunkSigning } from '../../../src/s3/chunked.js';
import { S3Error } from '../../../src/s3/errors.js';
import { credentialScope, signString, EMPTY_SHA256 } from '../../../src/s3/sigv4.js';

const AKID = 'AKIAIOSFODNN7EXAMPLE';
const SECRET = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY';
const T0 = Date.UTC(2013, 4, 24, 0, 0, 0);

/** The published chunked upload example: 65536 + 1024 bytes of 'a' in two chunks and the final one. */
const SEED = '4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9';
const CHUNK_SIGS = [
  'ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648',
  '0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497',
  'b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9',
];

function exampleBody(sigs = CHUNK_SIGS, data = [Buffer.alloc(65536, 'a'), Buffer.alloc(1024, 'a')]): Buffer {
  const parts = data.map((d, i) => Buffer.concat([Buffer.from(`${d.length.toString(16)};chunk-signature=${sigs[i]}\r\n`), d, Buffer.from('\r\n')]));
  return Buffer.concat([...parts, Buffer.from(`0;chunk-signature=${sigs[data.length]}\r\n\r\n`)]);
}

async function exampleSigning(): Promise<ChunkSigning> {
  const headers: Record<string, string[]> = {
    host: ['s3.amazonaws.com'],
    'x-amz-date': ['20130524T000000Z'],
    'x-amz-storage-class': ['REDUCED_REDUNDANCY'],
    'content-encoding': ['aws-chunked'],
    'x-amz-decoded-content-length': ['66560'],
    'content-length': ['66824'],
    'x-amz-content-sha256': ['STREAMING-AWS4-HMAC-SHA256-PAYLOAD'],
    authorization: [`AWS4-HMAC-SHA256 Credential=${AKID}/20130524/us-east-1/s3/aws4_request,SignedHeaders=content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;x-amz-storage-class,Signature=${SEED}`],
  };
  const a = await authenticate({ method: 'PUT', rawPath: '/examplebucket/chunkObject.txt', rawQuery: '', headers }, T0, async () => ({ secret: SECRET, principal: AKID }));
  assert.deepEqual(a.payload, { kind: 'streaming', signed: true, trailer: false });
  return { signingKey: a.signingKey, seedSignature: a.seedSignature, amzDate: a.amzDate, scope: credentialScope(a.credential) };
}

/** Feeds `body` in pieces of the given sizes (cycled), so every parser boundary is crossed. */
function pieces(body: Buffer, sizes: number[]): Readable {
  const out: Buffer[] = [];
  for (let i = 0, k = 0; i < body.length; k++) {
    const n = Math.max(1, sizes[k % sizes.length]!);
    out.push(body.subarray(i, i + n));
    i += n;
  }
  return Readable.from(out);
}

const decode = (body: Readable, d: AwsChunkedDecoder) => buffer(body.pipe(d));

test('the published aws-chunked example decodes to its 66,560 bytes, however the body is split', async () => {
  const signing = await exampleSigning();
  const body = exampleBody();
  const whole = await decode(Readable.from([body]), new AwsChunkedDecoder({ signing, trailer: false, decodedLength: 66560 }));
  assert.equal(whole.length, 66560);
  assert.ok(whole.equals(Buffer.alloc(66560, 'a')));
  await fc.assert(fc.asyncProperty(fc.array(fc.integer({ min: 1, max: 70_000 }), { minLength: 1, maxLength: 6 }), async (sizes) => {
    const out = await decode(pieces(body, sizes), new AwsChunkedDecoder({ signing, trailer: false, decodedLength: 66560 }));
    assert.equal(out.length, 66560);
  }), { numRuns: 40 });
});

test('a tampered chunk, a swapped signature or a missing final chunk fails the stream and passes none of that chunk on', async () => {
  const signing = await exampleSigning();
  const tampered = exampleBody();
  tampered[100] = 'b'.charCodeAt(0);
  const passed: Buffer[] = [];
  const d = new AwsChunkedDecoder({ signing, trailer: false });
  d.on('data', (b: Buffer) => passed.push(b));
  await assert.rejects(new Promise((resolve, reject) => { d.on('end', resolve); d.on('error', reject); Readable.from([tampered]).pipe(d); }), (e: S3Error) => e.code === 'SignatureDoesNotMatch');
  assert.equal(Buffer.concat(passed).length, 0, 'no byte of the tampered first chunk was passed on');
  // Each chunk's signature chains from the previous one: a correct second chunk after a wrong first fails too.
  await assert.rejects(decode(Readable.from([exampleBody([CHUNK_SIGS[1]!, CHUNK_SIGS[0]!, CHUNK_SIGS[2]!])]), new AwsChunkedDecoder({ signing, trailer: false })), (e: S3Error) => e.code === 'SignatureDoesNotMatch');
  const cut = exampleBody().subarray(0, 66000);
  await assert.rejects(decode(Readable.from([cut]), new AwsChunkedDecoder({ signing, trailer: false })), (e: S3Error) => e.code === 'IncompleteBody');
  await assert.rejects(decode(Readable.from([exampleBody()]), new AwsChunkedDecoder({ signing, trailer: false, decodedLength: 66559 })), (e: S3Error) => e.code === 'IncompleteBody');
});

function crc32b64(b: Buffer): string {
  const o = Buffer.alloc(4);
  o.writeUInt32BE(crc32(b) >>> 0);
  return o.toString('base64');
}

function unsignedTrailerBody(data: Buffer, trailer: string, chunk = 8192): Buffer {
  const parts: Buffer[] = [];
  for (let i = 0; i < data.length; i += chunk) {
    const d = data.subarray(i, i + chunk);
    parts.push(Buffer.from(`${d.length.toString(16)}\r\n`), d, Buffer.from('\r\n'));
  }
  parts.push(Buffer.from(`0\r\n${trailer}\r\n\r\n`));
  return Buffer.concat(parts);
}

test('unsigned trailer: CRC32, CRC32C and SHA-256 trailing checksums are verified before the stream ends', async () => {
  const data = Buffer.from(Array.from({ length: 50_000 }, (_, i) => i % 251));
  const ok = await decode(Readable.from([unsignedTrailerBody(data, `x-amz-checksum-crc32:${crc32b64(data)}`)]), new AwsChunkedDecoder({ trailer: true, trailerNames: ['x-amz-checksum-crc32'] }));
  assert.ok(ok.equals(data));
  const sha = createHash('sha256').update(data).digest('base64');
  await decode(Readable.from([unsignedTrailerBody(data, `x-amz-checksum-sha256:${sha}`)]), new AwsChunkedDecoder({ trailer: true, trailerNames: ['x-amz-checksum-sha256'] }));
  // CRC32C of "123456789" is e3069283 (RFC 3720's check value).
  const nine = Buffer.from('123456789');
  await decode(Readable.from([unsignedTrailerBody(nine, `x-amz-checksum-crc32c:${Buffer.from('e3069283', 'hex').toString('base64')}`)]), new AwsChunkedDecoder({ trailer: true, trailerNames: ['x-amz-checksum-crc32c'] }));
  await assert.rejects(
    decode(Readable.from([unsignedTrailerBody(nine, `x-amz-checksum-crc32c:${Buffer.from('e3069284', 'hex').toString('base64')}`)]), new AwsChunkedDecoder({ trailer: true, trailerNames: ['x-amz-checksum-crc32c'] })),
    (e: S3Error) => e.code === 'BadDigest');
  const flipped = Buffer.from(data);
  flipped[7]! ^= 1;
  await assert.rejects(decode(Readable.from([unsignedTrailerBody(flipped, `x-amz-checksum-crc32:${crc32b64(data)}`)]), new AwsChunkedDecoder({ trailer: true, trailerNames: ['x-amz-checksum-crc32'] })), (e: S3Error) => e.code === 'BadDigest');
  // Announced but not sent.
  await assert.rejects(decode(Readable.from([unsignedTrailerBody(data, '')]), new AwsChunkedDecoder({ trailer: true, trailerNames: ['x-amz-checksum-crc32'] })), (e: S3Error) => e.code === 'IncompleteBody');
  await assert.rejects(decode(Readable.from([unsignedTrailerBody(data, 'x-amz-checksum-crc32:AAAA')]), new AwsChunkedDecoder({ trailer: true, trailerNames: [] })), (e: S3Error) => e.code === 'InvalidRequest');
});

test('signed trailer: the trailer signature chains from the last chunk signature', async () => {
  const signing: ChunkSigning = { signingKey: Buffer.alloc(32, 7), seedSignature: 'a'.repeat(64), amzDate: '20260101T000000Z', scope: '20260101/any/s3/aws4_request' };
  const data = Buffer.from('trailing data');
  const sign = (prev: string, d: Buffer) => signString(signing.signingKey, ['AWS4-HMAC-SHA256-PAYLOAD', signing.amzDate, signing.scope, prev, EMPTY_SHA256, createHash('sha256').update(d).digest('hex')].join('\n'));
  const s1 = sign(signing.seedSignature, data);
  const s2 = sign(s1, Buffer.alloc(0));
  const trailer = `x-amz-checksum-crc32:${crc32b64(data)}`;
  const ts = signString(signing.signingKey, ['AWS4-HMAC-SHA256-TRAILER', signing.amzDate, signing.scope, s2, createHash('sha256').update(trailer + '\n').digest('hex')].join('\n'));
  const body = (tsig: string) => Buffer.from(`${data.length.toString(16)};chunk-signature=${s1}\r\n${data}\r\n0;chunk-signature=${s2}\r\n${trailer}\r\nx-amz-trailer-signature:${tsig}\r\n\r\n`);
  const out = await decode(Readable.from([body(ts)]), new AwsChunkedDecoder({ signing, trailer: true, trailerNames: ['x-amz-checksum-crc32'] }));
  assert.equal(out.toString(), 'trailing data');
  await assert.rejects(decode(Readable.from([body('0'.repeat(64))]), new AwsChunkedDecoder({ signing, trailer: true, trailerNames: ['x-amz-checksum-crc32'] })), (e: S3Error) => e.code === 'SignatureDoesNotMatch');
});

test('oversized chunks and header lines are refused before they are buffered', async () => {
  await assert.rejects(decode(Readable.from([Buffer.from(`${(MAX_AWS_CHUNK_BYTES + 1).toString(16)}\r\n`)]), new AwsChunkedDecoder({ trailer: false })), (e: S3Error) => e.code === 'InvalidArgument');
  await assert.rejects(decode(Readable.from([Buffer.alloc(MAX_CHUNK_HEADER_BYTES + 10, '1')]), new AwsChunkedDecoder({ trailer: false })), (e: S3Error) => e.code === 'IncompleteBody');
  await assert.rejects(decode(Readable.from([Buffer.from('zz\r\n')]), new AwsChunkedDecoder({ trailer: false })), (e: S3Error) => e.code === 'IncompleteBody');
  // A chunk longer than its declared size.
  await assert.rejects(decode(Readable.from([Buffer.from('2\r\nabc\r\n0\r\n\r\n')]), new AwsChunkedDecoder({ trailer: false })), (e: S3Error) => e.code === 'IncompleteBody');
});
