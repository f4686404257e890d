import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { setImmediate as turn } from 'node:timers/promises';
import { WriteBatcher } from '../../../src/tables/write-batcher.js';
import { EntryStore } from '../../../src/tables/entry-store.js';
import { makeEntry } from '../../../src/tables/entry.js';
import { partitionOf } from '../../../src/tables/keys.js';
import { isSealedError, WRITE_BATCH_MAX_ENTRIES } from '../../../src/tables/table-service.js';
import { mesh } from './mesh.js';

/** A batcher over numbers that records the batches it was asked to send, each answered by `answer`. */
function recording(opts: { maxEntries?: number; maxBytes?: number; maxInFlight?: number; answer?: (batch: number[]) => Promise<void> } = {}) {
  const batches: number[][] = [];
  const b = new WriteBatcher<number, number>({
    flush: async (_p, entries) => {
      batches.push([...entries]);
      await opts.answer?.([...entries]);
      return entries.map((x) => x * 10);
    },
    sizeOf: (x) => x,
    maxEntries: opts.maxEntries ?? 4,
    maxBytes: opts.maxBytes ?? 1000,
    ...(opts.maxInFlight !== undefined ? { maxInFlight: opts.maxInFlight } : {}),
  });
  return { b, batches };
}

test('writes to one partition in the same turn go as one batch; each writer gets its own result', async () => {
  const { b, batches } = recording({ maxEntries: 10 });
  const results = await Promise.all([1, 2, 3].map((x) => b.submit(7, x)));
  assert.deepEqual(batches, [[1, 2, 3]]);
  assert.deepEqual(results, [10, 20, 30]);
  // Another partition never shares a batch.
  await Promise.all([b.submit(1, 4), b.submit(2, 5)]);
  assert.deepEqual(batches.slice(1).sort(), [[4], [5]]);
  assert.equal(b.queued, 0);
});

test('a batch never exceeds its entry or byte bound; an entry over the byte bound goes alone', async () => {
  const { b, batches } = recording({ maxEntries: 4, maxBytes: 100 });
  await Promise.all(Array.from({ length: 10 }, (_, i) => b.submit(0, 1 + (i % 2))));
  assert.deepEqual(batches.map((x) => x.length), [4, 4, 2]);
  batches.length = 0;
  await Promise.all([40, 40, 40, 150, 10].map((x) => b.submit(0, x)));
  for (const batch of batches) assert.ok(batch.length === 1 || batch.reduce((s, x) => s + x, 0) <= 100, `batch ${batch} over 100 bytes`);
  assert.deepEqual(batches.flat(), [40, 40, 40, 150, 10], 'order kept');
  assert.ok(batches.some((x) => x.length === 1 && x[0] === 150));
});

test('a failed batch fails every writer in it, and later batches are not affected', async () => {
  let fail = true;
  const { b, batches } = recording({
    answer: async () => {
      if (fail) throw new Error('quorum lost');
    },
  });
  const outcomes = await Promise.allSettled([1, 2, 3].map((x) => b.submit(0, x)));
  assert.equal(batches.length, 1);
  assert.deepEqual(outcomes.map((o) => o.status), ['rejected', 'rejected', 'rejected']);
  for (const o of outcomes) assert.equal((o as PromiseRejectedResult).reason.message, 'quorum lost');
  fail = false;
  assert.equal(await b.submit(0, 4), 40);
  // A flush that throws synchronously fails its writers the same way.
  const sync = new WriteBatcher<number>({ flush: () => { throw new Error('boom'); }, sizeOf: () => 1, maxEntries: 4, maxBytes: 10 });
  await assert.rejects(Promise.all([sync.submit(0, 1), sync.submit(0, 2)]), /boom/);
});

test('while a partition has its batches in flight, later writes wait and leave together', async () => {
  const gates: Array<() => void> = [];
  const { b, batches } = recording({ maxEntries: 100, maxInFlight: 1, answer: () => new Promise<void>((r) => gates.push(r)) });
  const first = b.submit(0, 1);
  await turn();
  assert.deepEqual(batches, [[1]]);
  const later = [2, 3, 4].map(async (x) => {
    await turn();
    return b.submit(0, x);
  });
  await turn();
  await turn();
  assert.equal(batches.length, 1, 'nothing else leaves while the first batch is out');
  assert.equal(b.queued, 3);
  gates.shift()!();
  await first;
  await turn();
  assert.deepEqual(batches, [[1], [2, 3, 4]]);
  gates.shift()!();
  assert.deepEqual(await Promise.all(later), [20, 30, 40]);
});

test('bounds must be positive integers', () => {
  assert.throws(() => new WriteBatcher<number>({ flush: async () => [], sizeOf: () => 1, maxEntries: 0, maxBytes: 1 }), /maxEntries/);
  assert.throws(() => new WriteBatcher<number>({ flush: async () => [], sizeOf: () => 1, maxEntries: 1, maxBytes: 1, maxInFlight: 0.5 }), /maxInFlight/);
});

test('two writes of one key in one batch: the later one wins on every holder, whatever the order in the batch', async () => {
  const m = await mesh(3);
  try {
    const svc = m.services.get('node-0')!;
    const k = { table: 'object', pk: 'bucket-a', sk: 'same' };
    await svc.put({ ...k, sk: 'warm-up' }, Buffer.from('x'));
    const before = svc.writeBatches.batches;
    await Promise.all([svc.put(k, Buffer.from('first')), svc.put(k, Buffer.from('second'))]);
    assert.equal(svc.writeBatches.batches - before, 1, 'both writes went in one batch');
    await new Promise((r) => setTimeout(r, 20));
    for (const id of m.ids) assert.equal(m.services.get(id)!.store.get(k)?.value?.toString(), 'second', `holder ${id}`);
    assert.equal((await svc.get(k))?.value?.toString(), 'second');
  } finally {
    await m.close();
  }
  // In one transaction, the newer version wins even when it comes first.
  const store = await EntryStore.open(null, randomBytes(32));
  try {
    const mac = randomBytes(32);
    const k = { table: 'object', pk: 'b', sk: 'k' };
    const older = makeEntry(mac, k, { wall: 1000, logical: 0, node: 'n' }, Buffer.from('older'));
    const newer = makeEntry(mac, k, { wall: 1000, logical: 1, node: 'n' }, Buffer.from('newer'));
    const res = await store.write([newer, older]);
    assert.equal(res.kept.length, 1);
    assert.equal(store.get(k)?.value?.toString(), 'newer');
  } finally {
    await store.close();
  }
});

test('many writes at once are cut into bounded batches and all land', async () => {
  const m = await mesh(3);
  try {
    const svc = m.services.get('node-1')!;
    const n = WRITE_BATCH_MAX_ENTRIES * 2 + 5;
    await Promise.all(Array.from({ length: n }, (_, i) => svc.put({ table: 'object', pk: 'bulk', sk: `k${String(i).padStart(4, '0')}` }, Buffer.from('v'))));
    assert.ok(svc.writeBatches.largest <= WRITE_BATCH_MAX_ENTRIES);
    assert.ok(svc.writeBatches.batches >= 3);
    const page = await svc.list('object', 'bulk', { limit: 1000 });
    assert.equal(page.entries.length, n);
  } finally {
    await m.close();
  }
});

test('a sealed partition key refuses new writes on a quorum, other keys of the batch still land, and unsealing reopens it', async () => {
  const m = await mesh(5);
  try {
    const a = m.services.get('node-0')!;
    const b = m.services.get('node-3')!;
    // Two partition keys of the same partition, so their writes share batches.
    const p = partitionOf('object', 'gone');
    let other = '';
    for (let i = 0; other === ''; i++) if (partitionOf('object', `live-${i}`) === p) other = `live-${i}`;
    await a.put({ table: 'object', pk: 'gone', sk: 'old' }, Buffer.from('v'));
    await a.seal('object', 'gone');
    const [refused, landed] = await Promise.allSettled([
      b.put({ table: 'object', pk: 'gone', sk: 'late' }, Buffer.from('v')),
      b.put({ table: 'object', pk: other, sk: 'fine' }, Buffer.from('v')),
    ]);
    assert.equal(refused.status, 'rejected');
    assert.ok(isSealedError((refused as PromiseRejectedResult).reason), String((refused as PromiseRejectedResult).reason));
    assert.equal(landed.status, 'fulfilled');
    await assert.rejects(b.putMany([{ key: { table: 'object', pk: 'gone', sk: 'bulk' }, value: Buffer.from('v') }]), (e) => isSealedError(e));
    assert.equal(await b.get({ table: 'object', pk: 'gone', sk: 'late' }), null);
    // Deletions are not refused, and the seal never shows in a listing.
    await b.put({ table: 'object', pk: 'gone', sk: 'old' }, null);
    assert.deepEqual((await b.list('object', 'gone', { limit: 10 })).entries, []);
    await a.unseal('object', 'gone');
    await b.put({ table: 'object', pk: 'gone', sk: 'again' }, Buffer.from('v'));
    assert.deepEqual((await a.list('object', 'gone', { limit: 10 })).entries.map((e) => e.sk), ['again']);
  } finally {
    await m.close();
  }
});

test('a batch never carries more cost than its second budget; a costless entry still joins a full one', async () => {
  const batches: number[][] = [];
  const b = new WriteBatcher<number, number>({
    flush: async (_p, entries) => {
      batches.push([...entries]);
      return entries.map((x) => x);
    },
    sizeOf: () => 1,
    costOf: (x) => (x % 2 === 1 ? 1 : 0),
    maxEntries: 100,
    maxBytes: 1000,
    maxCost: 2,
    maxInFlight: 1,
  });
  await Promise.all([1, 2, 3, 5, 4, 7, 9].map((x) => b.submit(0, x)));
  for (const batch of batches) assert.ok(batch.filter((x) => x % 2 === 1).length <= 2, `batch ${batch.join(',')}`);
  assert.deepEqual(batches.flat().sort(), [1, 2, 3, 4, 5, 7, 9]);
  assert.throws(() => new WriteBatcher<number>({ flush: async () => [], sizeOf: () => 1, maxEntries: 1, maxBytes: 1, maxCost: 0 }), { code: 'BAD_INPUT' });
});
