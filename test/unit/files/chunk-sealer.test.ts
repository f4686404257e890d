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

test('plaintexts assembled in the sealer\'s stages move to the thread uncopied and seal as in line; stages come back for the next chunks', async () => {
  const sealer = new ChunkSealer(secret, CHUNK);
  const plains = [CHUNK, CHUNK, 12_345].map((n) => randomBytes(n));
  const stages = plains.map((p) => {
    const s = sealer.stage();
    p.copy(s);
    return s.subarray(0, p.length);
  });
  const out = await Promise.all(stages.map((s) => sealer.seal(s, Buffer.allocUnsafeSlow(encryptedSize(CHUNK)))));
  for (const [i, r] of out.entries()) {
    const want = encryptChunk(plains[i]!, secret);
    assert.ok(r.chunk.id.equals(want.id) && r.chunk.data.equals(want.data), `chunk ${i}`);
    // Moved, not copied: the chunker's view of the stage is detached.
    assert.equal(stages[i]!.length, 0, `stage ${i} went to the thread by transfer`);
  }
  // A stage released unsealed is handed out again; a stage is reused only once it is back.
  const a = sealer.stage();
  sealer.release(a);
  assert.equal(sealer.stage().buffer, a.buffer);
});

test('a caller\'s buffer that merely looks like a stage is copied, never moved or reused', async () => {
  const sealer = new ChunkSealer(secret, CHUNK);
  // Same size and offset as a stage, but not one the sealer handed out.
  const foreign = Buffer.from(new ArrayBuffer(CHUNK));
  randomBytes(CHUNK).copy(foreign);
  const before = Buffer.from(foreign);
  const r = await sealer.seal(foreign, Buffer.allocUnsafeSlow(encryptedSize(CHUNK)));
  assert.equal(foreign.length, CHUNK, 'still attached');
  assert.ok(foreign.equals(before), 'unchanged');
  assert.ok(r.chunk.id.equals(encryptChunk(before, secret).id));
  sealer.release(foreign);
  assert.notEqual(sealer.stage().buffer, foreign.buffer, 'a caller\'s buffer never becomes a stage');
});
