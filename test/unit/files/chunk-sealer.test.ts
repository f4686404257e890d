import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { encryptChunk, encryptedSize } from '../../../src/content/index.js';
import { ChunkSealer } from '../../../src/files/chunk-sealer.js';

const CHUNK = 1 << 20;
const secret = randomBytes(32);

test('chunks sealed on the put thread have the bytes, id and key of sealing in line, however many are out at once', async () => {
  const sealer = new ChunkSealer(secret, CHUNK);
  const plains = [0, 1, 4096, CHUNK - 1, CHUNK, 777].map((n) => randomBytes(n));
  // One reused input buffer, as the chunker gives: the sealer must copy before it returns.
  const input = Buffer.alloc(CHUNK);
  const out = plains.map((p) => {
    p.copy(input);
    const r = sealer.seal(input.subarray(0, p.length), Buffer.allocUnsafeSlow(encryptedSize(CHUNK)));
    input.fill(0xaa);
    return r;
  });
  for (const [i, r] of (await Promise.all(out)).entries()) {
    const want = encryptChunk(plains[i]!, secret);
    assert.ok(r.chunk.id.equals(want.id), `chunk ${i}: id`);
    assert.ok(r.chunk.key.equals(want.key), `chunk ${i}: key`);
    assert.ok(r.chunk.data.equals(want.data), `chunk ${i}: bytes`);
    assert.equal(r.out.length, encryptedSize(CHUNK), 'the whole output buffer comes back for reuse');
    assert.equal(r.chunk.data.buffer, r.out.buffer, 'the chunk lies in the returned buffer');
  }
});

test('a sealing buffer that shares its memory, or a chunk over the put\'s size, is refused before anything is sent', async () => {
  const sealer = new ChunkSealer(secret, CHUNK);
  await assert.rejects(sealer.seal(randomBytes(10), Buffer.alloc(encryptedSize(CHUNK) + 8).subarray(8)), { code: 'INTERNAL' });
  await assert.rejects(sealer.seal(randomBytes(CHUNK + 1), Buffer.allocUnsafeSlow(encryptedSize(CHUNK + 1))), { code: 'INTERNAL' });
});
