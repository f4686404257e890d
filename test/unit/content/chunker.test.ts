import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import fc from 'fast-check';
import { isTesseraError } from '../../../src/errors.js';
import { MAX_CONFIG_CHUNK_BYTES, MIN_CHUNK_BYTES, chunkStream } from '../../../src/content/chunker.js';

async function collect(source: AsyncIterable<unknown> | Iterable<unknown>, size: number): Promise<Buffer[]> {
  const out: Buffer[] = [];
  for await (const chunk of chunkStream(source, size)) out.push(Buffer.from(chunk));
  return out;
}

test('chunks are exactly the chunk size, the last one short, and concatenate back', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.integer({ min: 0, max: 20_000 }), { maxLength: 12 }),
      fc.integer({ min: MIN_CHUNK_BYTES, max: 3 * MIN_CHUNK_BYTES }),
      async (pieceSizes, size) => {
        const pieces = pieceSizes.map((n) => randomBytes(n));
        const whole = Buffer.concat(pieces);
        const chunks = await collect(pieces, size);
        assert.equal(chunks.length, Math.ceil(whole.length / size));
        chunks.forEach((c, i) => {
          if (i < chunks.length - 1) assert.equal(c.length, size);
          else assert.ok(c.length > 0 && c.length <= size);
        });
        assert.deepEqual(Buffer.concat(chunks), whole);
      },
    ),
    { numRuns: 60 },
  );
});

test('an empty stream yields no chunks; a stream of empty pieces too', async () => {
  assert.equal((await collect([], MIN_CHUNK_BYTES)).length, 0);
  assert.equal((await collect([Buffer.alloc(0), Buffer.alloc(0)], MIN_CHUNK_BYTES)).length, 0);
});

test('exact multiples give no trailing empty chunk; Readable and Uint8Array inputs work', async () => {
  const data = randomBytes(4 * MIN_CHUNK_BYTES);
  const chunks = await collect(Readable.from([data.subarray(0, 5000), new Uint8Array(data.subarray(5000))]), MIN_CHUNK_BYTES);
  assert.equal(chunks.length, 4);
  assert.deepEqual(Buffer.concat(chunks), data);
});

test('chunks handed out are not overwritten by later input', async () => {
  const pieces = Array.from({ length: 8 }, (_, i) => Buffer.alloc(3000, i + 1));
  const kept: Buffer[] = [];
  for await (const chunk of chunkStream(pieces, MIN_CHUNK_BYTES)) kept.push(chunk);
  assert.deepEqual(Buffer.concat(kept), Buffer.concat(pieces));
});

test('chunk size and input type are validated', async () => {
  for (const bad of [MIN_CHUNK_BYTES - 1, MAX_CONFIG_CHUNK_BYTES + 1, 5000.5, Number.NaN]) {
    await assert.rejects(collect([Buffer.alloc(1)], bad), (e) => isTesseraError(e, 'BAD_INPUT') && /chunk size/.test((e as Error).message));
  }
  await assert.rejects(collect(['text'], MIN_CHUNK_BYTES), (e) => isTesseraError(e, 'BAD_INPUT') && /byte stream/.test((e as Error).message));
  assert.equal((await collect([Buffer.alloc(MAX_CONFIG_CHUNK_BYTES + 1)], MAX_CONFIG_CHUNK_BYTES)).length, 2);
});

test('memory stays bounded while chunking a 256 MiB stream', async (t) => {
  const TOTAL = 256 << 20;
  const PIECE = 64 << 10;
  const CHUNK = 1 << 20;
  async function* generate() {
    for (let sent = 0; sent < TOTAL; sent += PIECE) {
      const piece = Buffer.allocUnsafe(PIECE);
      piece.writeUInt32BE(sent >>> 0, 0);
      yield piece;
    }
  }
  const before = process.memoryUsage();
  let peakExternal = 0;
  let peakRss = 0;
  let bytes = 0;
  let count = 0;
  const hash = createHash('sha256');
  for await (const chunk of chunkStream(generate(), CHUNK)) {
    bytes += chunk.length;
    hash.update(chunk.subarray(0, 4));
    if (++count % 16 === 0) {
      const now = process.memoryUsage();
      peakExternal = Math.max(peakExternal, now.arrayBuffers - before.arrayBuffers);
      peakRss = Math.max(peakRss, now.rss - before.rss);
    }
  }
  t.diagnostic(`peak growth: array buffers ${(peakExternal / 2 ** 20).toFixed(1)} MiB, rss ${(peakRss / 2 ** 20).toFixed(1)} MiB`);
  assert.equal(bytes, TOTAL);
  assert.equal(count, TOTAL / CHUNK);
  // Whole-stream buffering would need 256 MiB; garbage not yet collected is allowed some slack.
  assert.ok(peakExternal < 96 << 20, `array buffers grew by ${(peakExternal / 2 ** 20).toFixed(1)} MiB`);
  assert.ok(peakRss < 160 << 20, `rss grew by ${(peakRss / 2 ** 20).toFixed(1)} MiB`);
});

test('reuse: the same chunks, assembled in one buffer that is used again once the next is asked for', async () => {
  const data = randomBytes(5 * 4096 + 123);
  // Pieces smaller than a chunk, so every chunk is assembled rather than passed through.
  const pieces = Array.from({ length: Math.ceil(data.length / 1000) }, (_, i) => data.subarray(i * 1000, (i + 1) * 1000));
  const got: Buffer[] = [];
  const backings = new Set<ArrayBufferLike>();
  for await (const c of chunkStream(pieces, 4096, { reuse: true })) {
    backings.add(c.buffer);
    got.push(Buffer.from(c));
  }
  assert.equal(got.length, 6);
  assert.ok(Buffer.concat(got).equals(data));
  assert.equal(backings.size, 1);
});

test('chunkStream alloc: chunks are assembled in the buffers it gives, which the consumer keeps', async () => {
  const given: Buffer[] = [];
  const alloc = () => {
    const b = Buffer.alloc(4096);
    given.push(b);
    return b;
  };
  const data = Buffer.from(Array.from({ length: 3 * 4096 + 100 }, (_, i) => i % 251));
  // Pieces shorter than a chunk, so every chunk is assembled (none passes through uncopied).
  const pieces = Array.from({ length: Math.ceil(data.length / 1000) }, (_, i) => data.subarray(i * 1000, (i + 1) * 1000));
  const chunks: Buffer[] = [];
  for await (const c of chunkStream(pieces, 4096, { alloc, reuse: true })) chunks.push(c);
  assert.deepEqual(chunks.map((c) => c.length), [4096, 4096, 4096, 100]);
  assert.ok(Buffer.concat(chunks).equals(data));
  chunks.forEach((c, i) => assert.ok(c.buffer === given[i]!.buffer, `chunk ${i} lies in buffer ${i} given`));
  assert.equal(new Set(given.map((g) => g.buffer)).size, 4, 'no buffer reused, even with reuse set');
});
