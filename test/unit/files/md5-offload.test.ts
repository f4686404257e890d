import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { FIRST_STAGE_BYTES, MAX_STAGED_BUFFERS, OffThreadMd5, STAGE_BYTES } from '../../../src/files/md5-offload.js';

const md5 = (b: Buffer) => createHash('md5').update(b).digest('hex');

/** Feeds `body` in pieces of the given sizes (cycled), reusing one buffer per piece as a socket reader would. */
async function hashInPieces(body: Buffer, sizes: number[]): Promise<{ digest: string; maxHeld: number }> {
  const h = new OffThreadMd5();
  const scratch = Buffer.alloc(Math.max(...sizes));
  let maxHeld = 0;
  for (let at = 0, i = 0; at < body.length; i++) {
    const n = Math.min(sizes[i % sizes.length]!, body.length - at);
    body.copy(scratch, 0, at, at + n);
    await h.update(scratch.subarray(0, n));
    // The piece's buffer is overwritten at once: the hash must have taken a copy.
    scratch.fill(0xee);
    maxHeld = Math.max(maxHeld, h.buffersHeld);
    at += n;
  }
  return { digest: (await h.digest()).toString('hex'), maxHeld };
}

test('the MD5 of bodies small and large, in odd pieces, equals the one-shot MD5', async () => {
  for (const size of [0, 1, 1000, STAGE_BYTES - 1, STAGE_BYTES, STAGE_BYTES + 1, 3 * STAGE_BYTES + 12345]) {
    const body = randomBytes(size);
    for (const sizes of [[65536], [1, 7777, 300_001], [STAGE_BYTES + 5]]) {
      assert.equal((await hashInPieces(body, sizes)).digest, md5(body), `size ${size}, pieces ${sizes.join(',')}`);
    }
  }
});

test('a long body holds at most a bounded number of staging buffers, however fast it is fed', async () => {
  const body = randomBytes(24 * STAGE_BYTES);
  const r = await hashInPieces(body, [256 << 10]);
  assert.equal(r.digest, md5(body));
  assert.ok(r.maxHeld <= MAX_STAGED_BUFFERS + 1, `held ${r.maxHeld} staging buffers`);
});

test('bodies hashed at once keep their own digests; an aborted one leaves the others intact', async () => {
  const bodies = Array.from({ length: 4 }, (_, i) => randomBytes(2 * STAGE_BYTES + i * 999));
  const aborted = new OffThreadMd5();
  await aborted.update(randomBytes(2 * STAGE_BYTES));
  const all = Promise.all(bodies.map((b, i) => hashInPieces(b, [50_000 + i])));
  aborted.abort();
  await assert.rejects(aborted.update(Buffer.from('more')), { code: 'INTERNAL' });
  (await all).forEach((r, i) => assert.equal(r.digest, md5(bodies[i]!)));
});

test('a small body stages in a small buffer and moves to a full one only when it outgrows it', async () => {
  const small = new OffThreadMd5();
  const body = randomBytes(4096);
  await small.update(body);
  assert.equal(small.stageBytes, FIRST_STAGE_BYTES);
  assert.equal((await small.digest()).toString('hex'), md5(body));
  const grown = new OffThreadMd5();
  const big = randomBytes(FIRST_STAGE_BYTES + 10);
  await grown.update(big.subarray(0, FIRST_STAGE_BYTES));
  assert.equal(grown.stageBytes, FIRST_STAGE_BYTES);
  await grown.update(big.subarray(FIRST_STAGE_BYTES));
  assert.equal(grown.stageBytes, STAGE_BYTES);
  assert.equal((await grown.digest()).toString('hex'), md5(big));
});

test('a digest is taken once', async () => {
  const h = new OffThreadMd5();
  await h.update(Buffer.from('abc'));
  assert.equal((await h.digest()).toString('hex'), md5(Buffer.from('abc')));
  await assert.rejects(h.digest(), { code: 'INTERNAL' });
});

test('a body taken over by seal jobs: the thread hashes their stages from the right byte, in order with what came before', async () => {
  const { ChunkSealer } = await import('../../../src/files/chunk-sealer.js');
  const { encryptedSize } = await import('../../../src/content/index.js');
  const chunk = 256 << 10;
  const body = randomBytes(5 * chunk + 777);
  for (const head of [0, 1000, chunk, chunk + 5]) {
    const h = new OffThreadMd5();
    await h.update(body.subarray(0, head));
    const { body: n, hashed } = h.takeOver();
    assert.equal(hashed, head);
    await assert.rejects(h.update(Buffer.from('x')), { code: 'INTERNAL' });
    const sealer = new ChunkSealer(randomBytes(32), chunk);
    const seals: Promise<unknown>[] = [];
    for (let at = 0; at < body.length; at += chunk) {
      const plain = body.subarray(at, Math.min(at + chunk, body.length));
      const from = Math.max(0, hashed - at);
      if (from >= plain.length) continue;
      // One chunk goes in line, as a writer's small first chunk would.
      if (at === 2 * chunk) await h.direct(plain.subarray(from));
      else seals.push(sealer.seal(plain, Buffer.allocUnsafeSlow(encryptedSize(chunk)), { body: n, from }));
    }
    await Promise.all(seals);
    assert.equal((await h.digest()).toString('hex'), md5(body), `head of ${head} bytes`);
  }
});
