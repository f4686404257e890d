/** The ChunkStore contract, run against every engine. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { MAX_CHUNK_BYTES } from '../../../src/limits.js';
import { isTesseraError } from '../../../src/errors.js';
import { type ChunkStore, chunkIdOf } from '../../../src/store/chunk-store.js';

export interface Engine {
  name: string;
  /** A fresh store; `reopen` gives another handle on the same storage when the engine persists. */
  open(opts?: { quota?: number }): Promise<ChunkStore>;
  /** Alters one stored byte of `id` behind the store's back, as bit rot would. */
  rot(store: ChunkStore, id: Buffer): Promise<void>;
}

export function chunk(size: number): { id: Buffer; data: Buffer } {
  const data = randomBytes(size);
  return { id: chunkIdOf(data), data };
}

async function collect(it: AsyncIterable<Buffer>): Promise<string[]> {
  const out: string[] = [];
  for await (const id of it) out.push(id.toString('hex'));
  return out.sort();
}

export function chunkStoreContract(engine: Engine): void {
  const t = (name: string, fn: (s: ChunkStore) => Promise<void>, opts?: { quota?: number }) =>
    test(`${engine.name}: ${name}`, async () => {
      const s = await engine.open(opts);
      try {
        await fn(s);
      } finally {
        await s.close();
      }
    });

  t('round trip, has, list, usage', async (s) => {
    const a = chunk(1000);
    const b = chunk(0);
    assert.equal(await s.has(a.id), false);
    assert.equal(await s.put(a.id, a.data), true);
    assert.equal(await s.put(b.id, b.data), true);
    assert.equal(await s.has(a.id), true);
    assert.deepEqual(await s.get(a.id), a.data);
    assert.deepEqual(await s.get(b.id), b.data);
    assert.deepEqual(await collect(s.list()), [a.id.toString('hex'), b.id.toString('hex')].sort());
    const u = s.usage();
    assert.equal(u.used, 1000);
    assert.equal(u.count, 2);
    assert.equal(u.quota, Infinity);
    assert.ok(u.capacity >= 1000 && u.capacity <= Infinity);
  });

  t('the store keeps its own copy of the data', async (s) => {
    const a = chunk(64);
    const original = Buffer.from(a.data);
    await s.put(a.id, a.data);
    a.data.fill(0);
    assert.deepEqual(await s.get(a.id), original);
  });

  t('dedup: a second put of the same chunk returns false and counts once', async (s) => {
    const a = chunk(500);
    assert.equal(await s.put(a.id, a.data), true);
    assert.equal(await s.put(a.id, a.data), false);
    assert.equal(s.usage().used, 500);
    assert.equal(s.usage().count, 1);
  });

  t('concurrent puts of one id: exactly one stores it', async (s) => {
    const a = chunk(4096);
    const results = await Promise.all(Array.from({ length: 8 }, () => s.put(a.id, a.data)));
    assert.equal(results.filter((r) => r).length, 1);
    assert.equal(s.usage().used, 4096);
    assert.equal(s.usage().count, 1);
    assert.deepEqual(await s.get(a.id), a.data);
  });

  t('delete removes and frees; deleting again returns false', async (s) => {
    const a = chunk(300);
    await s.put(a.id, a.data);
    assert.equal(await s.delete(a.id), true);
    assert.equal(await s.delete(a.id), false);
    assert.equal(await s.has(a.id), false);
    assert.equal(s.usage().used, 0);
    assert.equal(s.usage().count, 0);
    await assert.rejects(s.get(a.id), (e) => isTesseraError(e, 'NOT_FOUND'));
  });

  t('data that does not hash to the id is refused with CORRUPT and nothing is stored', async (s) => {
    const a = chunk(100);
    const b = chunk(100);
    await assert.rejects(s.put(a.id, b.data), (e) => isTesseraError(e, 'CORRUPT'));
    assert.equal(await s.has(a.id), false);
    assert.equal(s.usage().count, 0);
  });

  t('verified put: the caller vouches for the hash, so it is not computed again; shape and size are still checked', async (s) => {
    const a = chunk(100);
    assert.equal(await s.put(a.id, a.data, { verified: true }), true);
    assert.ok((await s.get(a.id)).equals(a.data));
    await assert.rejects(s.put(Buffer.alloc(31), a.data, { verified: true }), (e) => isTesseraError(e, 'BAD_INPUT'));
    // Without the flag the same mismatch is refused: only the writer's own copy may skip the check.
    const b = chunk(100);
    await assert.rejects(s.put(b.id, a.data, { verified: false }), (e) => isTesseraError(e, 'CORRUPT'));
  });

  t('ids of the wrong length are BAD_INPUT on every operation', async (s) => {
    const a = chunk(10);
    for (const bad of [Buffer.alloc(31), Buffer.alloc(33), Buffer.alloc(0)]) {
      await assert.rejects(s.put(bad, a.data), (e) => isTesseraError(e, 'BAD_INPUT'));
      await assert.rejects(s.get(bad), (e) => isTesseraError(e, 'BAD_INPUT'));
      await assert.rejects(s.has(bad), (e) => isTesseraError(e, 'BAD_INPUT'));
      await assert.rejects(s.delete(bad), (e) => isTesseraError(e, 'BAD_INPUT'));
      await assert.rejects(s.quarantine(bad), (e) => isTesseraError(e, 'BAD_INPUT'));
    }
  });

  t('a chunk over MAX_CHUNK_BYTES is TOO_LARGE; one at the limit is accepted', async (s) => {
    const over = Buffer.alloc(MAX_CHUNK_BYTES + 1, 7);
    await assert.rejects(s.put(chunkIdOf(over), over), (e) => isTesseraError(e, 'TOO_LARGE'));
    const at = over.subarray(0, MAX_CHUNK_BYTES);
    assert.equal(await s.put(chunkIdOf(at), at), true);
    assert.equal(s.usage().used, MAX_CHUNK_BYTES);
  });

  test(`${engine.name}: quota: a put that would cross it is NO_SPACE and leaves nothing`, async () => {
    const s = await engine.open({ quota: 2500 });
    try {
      const a = chunk(1000);
      const b = chunk(1000);
      const c = chunk(1000);
      await s.put(a.id, a.data);
      await s.put(b.id, b.data);
      await assert.rejects(s.put(c.id, c.data), (e) => isTesseraError(e, 'NO_SPACE') && /quota/.test(e.message));
      assert.equal(await s.has(c.id), false);
      assert.deepEqual(await collect(s.list()), [a.id, b.id].map((x) => x.toString('hex')).sort());
      const u = s.usage();
      assert.equal(u.used, 2000);
      assert.equal(u.quota, 2500);
      assert.equal(u.capacity, 2500);
      // Exactly reaching the quota is allowed.
      const d = chunk(500);
      assert.equal(await s.put(d.id, d.data), true);
      // Concurrent puts cannot jointly overshoot.
      await s.delete(a.id);
      await s.delete(b.id);
      const many = Array.from({ length: 6 }, () => chunk(1000));
      const settled = await Promise.allSettled(many.map((m) => s.put(m.id, m.data)));
      assert.equal(settled.filter((r) => r.status === 'fulfilled').length, 2);
      for (const r of settled) if (r.status === 'rejected') assert.ok(isTesseraError(r.reason, 'NO_SPACE'));
      assert.equal(s.usage().used, 2500);
    } finally {
      await s.close();
    }
  });

  t('get into a caller buffer returns the same verified bytes; a buffer too small is not used', async (s) => {
    const a = chunk(3000);
    await s.put(a.id, a.data);
    const big = Buffer.alloc(4096, 0xee);
    assert.ok((await s.get(a.id, { into: big })).equals(a.data));
    const small = Buffer.alloc(10, 0xee);
    assert.ok((await s.get(a.id, { into: small })).equals(a.data));
    assert.ok(small.equals(Buffer.alloc(10, 0xee)), 'a buffer too small is left alone');
  });

  t('rotten copy: get throws CORRUPT, never the bytes, and the copy is quarantined', async (s) => {
    const a = chunk(2048);
    const b = chunk(100);
    await s.put(a.id, a.data);
    await s.put(b.id, b.data);
    await engine.rot(s, a.id);
    await assert.rejects(s.get(a.id), (e) => isTesseraError(e, 'CORRUPT'));
    assert.equal(await s.has(a.id), false);
    await assert.rejects(s.get(a.id), (e) => isTesseraError(e, 'NOT_FOUND'));
    assert.deepEqual(await collect(s.listQuarantined()), [a.id.toString('hex')]);
    assert.deepEqual(await collect(s.list()), [b.id.toString('hex')]);
    assert.equal(s.usage().used, 100);
    assert.equal(s.usage().count, 1);
    // Repair: a good copy can be stored again, then the quarantined one purged.
    assert.equal(await s.put(a.id, a.data), true);
    assert.deepEqual(await s.get(a.id), a.data);
    assert.equal(await s.purgeQuarantined(a.id), true);
    assert.equal(await s.purgeQuarantined(a.id), false);
    assert.deepEqual(await collect(s.listQuarantined()), []);
  });

  t('an unverified read hands out a rotten copy as it lies, quarantining nothing; the verified read after it catches and quarantines it', async (s) => {
    const a = chunk(2048);
    await s.put(a.id, a.data);
    assert.ok((await s.get(a.id, { unverified: true })).equals(a.data));
    await engine.rot(s, a.id);
    const raw = await s.get(a.id, { unverified: true });
    assert.equal(raw.length, a.data.length);
    assert.ok(!raw.equals(a.data), 'the rotten bytes, for the caller to authenticate and refuse');
    assert.equal(await s.has(a.id), true, 'not quarantined by a read that did not check');
    await assert.rejects(s.get(a.id), (e) => isTesseraError(e, 'CORRUPT'));
    assert.deepEqual(await collect(s.listQuarantined()), [a.id.toString('hex')]);
  });

  t('quarantine moves a live copy aside', async (s) => {
    const a = chunk(700);
    assert.equal(await s.quarantine(a.id), false);
    await s.put(a.id, a.data);
    assert.equal(await s.quarantine(a.id), true);
    assert.equal(await s.has(a.id), false);
    assert.equal(s.usage().used, 0);
    assert.deepEqual(await collect(s.listQuarantined()), [a.id.toString('hex')]);
  });

  test(`${engine.name}: a closed store refuses work`, async () => {
    const s = await engine.open();
    await s.close();
    const a = chunk(10);
    await assert.rejects(s.put(a.id, a.data), (e) => isTesseraError(e, 'UNAVAILABLE'));
  });

  test(`${engine.name}: random operation sequences agree with a simple model`, async () => {
    const pool = Array.from({ length: 6 }, (_, i) => chunk(1 + i * 97));
    const op = fc.record({ kind: fc.constantFrom('put', 'get', 'delete', 'quarantine', 'has'), which: fc.nat({ max: pool.length - 1 }) });
    await fc.assert(
      fc.asyncProperty(fc.array(op, { maxLength: 30 }), async (ops) => {
        const s = await engine.open();
        const live = new Map<string, number>();
        const quarantined = new Set<string>();
        try {
          // Issued concurrently in pairs: writes to one id must still apply in issue order.
          for (let i = 0; i < ops.length; i += 2) {
            const batch = ops.slice(i, i + 2);
            const expected = batch.map(({ kind, which }) => {
              const c = pool[which]!;
              const key = c.id.toString('hex');
              const had = live.has(key);
              if (kind === 'put') live.set(key, c.data.length);
              if (kind === 'delete') live.delete(key);
              if (kind === 'quarantine' && had) {
                live.delete(key);
                quarantined.add(key);
              }
              return had;
            });
            const run = async ({ kind, which }: { kind: string; which: number }): Promise<boolean> => {
              const c = pool[which]!;
              if (kind === 'put') return !(await s.put(c.id, c.data));
              if (kind === 'delete') return s.delete(c.id);
              if (kind === 'quarantine') return s.quarantine(c.id);
              if (kind === 'has') return s.has(c.id);
              try {
                assert.deepEqual(await s.get(c.id), c.data);
                return true;
              } catch (e) {
                if (isTesseraError(e, 'NOT_FOUND')) return false;
                throw e;
              }
            };
            // Reads take no lock, so a read racing a write of the same id may see either state.
            const [x, y] = batch;
            const racy = x !== undefined && y !== undefined && x.which === y.which && [x.kind, y.kind].some((k) => k === 'get' || k === 'has');
            const got = racy ? [await run(x), await run(y)] : await Promise.all(batch.map(run));
            assert.deepEqual(got, expected, JSON.stringify(batch));
          }
          assert.equal(s.usage().count, live.size);
          assert.equal(s.usage().used, [...live.values()].reduce((a, b) => a + b, 0));
          assert.deepEqual(await collect(s.list()), [...live.keys()].sort());
          assert.deepEqual(await collect(s.listQuarantined()), [...quarantined].sort());
        } finally {
          await s.close();
        }
      }),
      { numRuns: 25 },
    );
  });
}
