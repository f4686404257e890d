import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { isTesseraError, TesseraError } from '../../../src/errors.js';
import { MAX_HELD_PER_WRITE, TABLE_METHODS } from '../../../src/tables/rpc.js';
import { makeEntry, toWire, MAX_VALUE_BYTES } from '../../../src/tables/entry.js';
import { callerProof } from '../../../src/tables/full-nodes.js';
import { partitionOf, PARTITION_COUNT } from '../../../src/tables/keys.js';
import { digestCount } from '../../../src/tables/digest-tree.js';
import { mesh } from './mesh.js';

const key = (sk: string, pk = 'bucket-a') => ({ table: 'object', pk, sk });
const holdersWith = (m: Awaited<ReturnType<typeof mesh>>, k: ReturnType<typeof key>) =>
  m.ids.filter((id) => m.services.get(id)?.store.get(k) != null).sort();

test('a write lands on exactly R full holders, never on a storage-only member, and any node reads it', async () => {
  const m = await mesh(5, { storageOnly: 1 });
  try {
    await m.services.get('node-0')!.put(key('a/1'), Buffer.from('v1'));
    const svc = m.services.get('node-0')!;
    const holders = svc.holders(partitionOf('object', 'bucket-a'));
    assert.equal(holders.length, 3);
    assert.ok(!holders.includes('storage-0'));
    // Quorum is 2 of 3; the third copy may arrive just after the call returns.
    await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(holdersWith(m, key('a/1')), [...holders].sort());
    for (const id of m.ids.filter((x) => !m.storageOnly.has(x))) {
      assert.equal((await m.services.get(id)!.get(key('a/1')))?.value?.toString(), 'v1');
    }
    assert.equal(m.calls.get('table.write') !== undefined, true);
  } finally {
    await m.close();
  }
});

test('with one holder down writes and reads keep working, and on return it pulls exactly what it missed', async () => {
  const m = await mesh(5);
  try {
    const writer = m.services.get('node-0')!;
    await writer.discover();
    const holders = writer.holders(partitionOf('object', 'bucket-a'));
    const victim = holders.find((h) => h !== 'node-0')!;
    for (let i = 0; i < 20; i++) await writer.put(key(`before/${i}`), Buffer.from('x'));
    await new Promise((r) => setTimeout(r, 20));
    m.down.add(victim);
    for (let i = 0; i < 50; i++) await writer.put(key(`during/${i}`), Buffer.from('y'));
    assert.equal((await writer.get(key('during/7')))?.value?.toString(), 'y');
    m.down.delete(victim);
    const back = m.services.get(victim)!;
    await back.syncNow();
    assert.equal(back.counters.entriesPulled, 50, 'pulled exactly the entries written while it was down');
    assert.equal(back.counters.entriesPushed, 0);
    const p = partitionOf('object', 'bucket-a');
    const roots = holders.map((h) => m.services.get(h)!.store.root(p));
    assert.ok(roots.every((r) => r.equals(roots[0]!)), 'holders converged');
    assert.equal(digestCount(roots[0]!), 70);
  } finally {
    await m.close();
  }
});

test('reads repair a holder that answered with an older version', async () => {
  const m = await mesh(3);
  try {
    const a = m.services.get('node-0')!;
    await a.put(key('k'), Buffer.from('old'));
    await new Promise((r) => setTimeout(r, 20));
    m.down.add('node-2');
    await a.put(key('k'), Buffer.from('new'));
    m.down.delete('node-2');
    assert.equal(m.services.get('node-2')!.store.get(key('k'))?.value?.toString(), 'old');
    // Every node reads from a majority; keep reading from node-2 until its own copy is repaired.
    for (let i = 0; i < 20 && m.services.get('node-2')!.store.get(key('k'))?.value?.toString() !== 'new'; i++) {
      assert.equal((await m.services.get('node-2')!.get(key('k')))?.value?.toString(), 'new');
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.equal(m.services.get('node-2')!.store.get(key('k'))?.value?.toString(), 'new');
  } finally {
    await m.close();
  }
});

test('listing pages through a partition key in byte order, hides deletions and ends with a null token', async () => {
  const m = await mesh(4);
  try {
    const s = m.services.get('node-1')!;
    const names = Array.from({ length: 120 }, (_, i) => `p${i % 3}/${String(i).padStart(4, '0')}${i % 7 === 0 ? 'é' : ''}`);
    await s.putMany(names.map((n) => ({ key: key(n), value: Buffer.from(n) })));
    for (const n of names.filter((_, i) => i % 10 === 0)) await s.put(key(n), null);
    const expect = names.filter((_, i) => i % 10 !== 0).filter((n) => n.startsWith('p1/')).sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y)));
    const got: string[] = [];
    let token: string | undefined;
    for (let i = 0; i < 100; i++) {
      const page = await m.services.get('node-3')!.list('object', 'bucket-a', { prefix: 'p1/', limit: 7, ...(token ? { token } : {}) });
      assert.ok(page.entries.length <= 7);
      got.push(...page.entries.map((e) => e.sk));
      if (page.token === null) break;
      token = page.token;
    }
    assert.deepEqual(got, expect);
  } finally {
    await m.close();
  }
});

test('a joining node receives about 1/N of the partitions; old holders drop them only after handing off, nothing is lost', async () => {
  const m = await mesh(5);
  try {
    const s = m.services.get('node-0')!;
    const items = Array.from({ length: 1500 }, (_, i) => ({ key: key(`k${i}`, `bucket-${i % 500}`), value: Buffer.from(String(i)) }));
    await s.putMany(items);
    await s.discover();
    for (const id of [...m.services.keys()]) await m.services.get(id)!.syncNow();
    const before = Array.from({ length: PARTITION_COUNT }, (_, p) => s.holders(p));
    const joined = await m.add('node-5');
    await s.discover();
    const after = Array.from({ length: PARTITION_COUNT }, (_, p) => s.holders(p));
    const moved = after.filter((h, p) => h.includes('node-5') && !before[p]!.includes('node-5')).length;
    // Each partition has 3 of 6 holders: node-5 should be one for ~1/2 of them (3/6), i.e. 1/6 of all copies.
    assert.ok(moved > PARTITION_COUNT * 0.35 && moved < PARTITION_COUNT * 0.65, `node-5 holds ${moved} of ${PARTITION_COUNT} partitions`);
    for (let round = 0; round < 3; round++) for (const id of m.ids) await m.services.get(id)!.syncNow();
    let copies = 0;
    for (let p = 0; p < PARTITION_COUNT; p++) {
      for (const id of m.ids) {
        const n = digestCount(m.services.get(id)!.store.root(p));
        if (n > 0) {
          copies++;
          assert.ok(after[p]!.includes(id), `node ${id} still holds partition ${p} it is no longer a holder of`);
        }
      }
    }
    const onJoined = Array.from({ length: PARTITION_COUNT }, (_, p) => digestCount(joined.store.root(p))).reduce((a, b) => a + b, 0);
    assert.ok(onJoined > 0, 'the new node holds entries');
    const dropped = m.ids.reduce((n, id) => n + m.services.get(id)!.counters.partitionsDropped, 0);
    assert.ok(dropped > 0 && dropped <= moved, `dropped ${dropped}, moved ${moved}`);
    for (const it of items) assert.equal((await m.services.get('node-5')!.get(it.key))?.value?.toString(), it.value.toString());
    assert.ok(copies > 0);
  } finally {
    await m.close();
  }
});

test('concurrent writers of one key from two nodes converge on every replica to the same winner', async () => {
  const m = await mesh(4);
  try {
    await Promise.all([
      m.services.get('node-0')!.put(key('same'), Buffer.from('from-0')),
      m.services.get('node-1')!.put(key('same'), Buffer.from('from-1')),
      m.services.get('node-2')!.put(key('same'), Buffer.from('from-2')),
    ]);
    for (const id of m.ids) await m.services.get(id)!.syncNow();
    const holders = m.services.get('node-0')!.holders(partitionOf('object', 'bucket-a'));
    const macs = holders.map((h) => m.services.get(h)!.store.get(key('same'))!.mac.toString('hex'));
    assert.equal(new Set(macs).size, 1, 'one winner everywhere');
  } finally {
    await m.close();
  }
});

test('table requests without a full-node proof, forged entries and far-future timestamps are refused', async () => {
  const macKey = randomBytes(32);
  const m = await mesh(3, { macKey });
  try {
    const target = m.services.get('node-0')!;
    await assert.rejects(target.handle('table.scan', { t: 'object', p: 'bucket-a', limit: 5, auth: randomBytes(32) }, 'storage-x'), (e) => isTesseraError(e, 'AUTH'));
    // Another member's proof is bound to its own id.
    await assert.rejects(target.handle('table.get', { t: 'object', p: 'b', s: 'k', auth: callerProof(macKey, 'node-1') }, 'storage-x'), (e) => isTesseraError(e, 'AUTH'));
    const forged = makeEntry(randomBytes(32), key('x'), { wall: Date.now(), logical: 0, node: 'node-1' }, Buffer.from('evil'));
    const future = makeEntry(macKey, key('y'), { wall: Date.now() + 3_600_000, logical: 0, node: 'node-1' }, Buffer.from('later'));
    // Replication merges and client writes take the same checks.
    for (const method of ['table.merge', 'table.write']) {
      await assert.rejects(target.handle(method, { auth: callerProof(macKey, 'node-1'), entries: [toWire(forged)] }, 'node-1'), (e) => isTesseraError(e, 'AUTH'));
      await assert.rejects(target.handle(method, { auth: callerProof(macKey, 'node-1'), entries: [toWire(future)] }, 'node-1'), (e) => isTesseraError(e, 'BAD_INPUT'));
      assert.equal(target.store.get(key('x')), null);
      assert.equal(target.store.get(key('y')), null);
      await assert.rejects(target.handle(method, { auth: callerProof(macKey, 'node-1'), entries: Array.from({ length: 129 }, () => toWire(forged)) }, 'node-1'), (e) => isTesseraError(e, 'PROTOCOL'));
    }
  } finally {
    await m.close();
  }
});

test('with fewer full nodes than R every full node holds every partition and status warns', async () => {
  const m = await mesh(2, { storageOnly: 2 });
  try {
    const s = m.services.get('node-0')!;
    await s.put(key('k'), Buffer.from('v'));
    await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(holdersWith(m, key('k')), ['node-0', 'node-1']);
    const st = s.status();
    assert.equal(st.fullNodes, 2);
    assert.match(st.warning ?? '', /below 3/);
  } finally {
    await m.close();
  }
});

test('entries with the longest keys and largest values travel in batches that fit a message, by writes, anti-entropy and listings', async () => {
  const m = await mesh(3);
  try {
    const writer = m.services.get('node-0')!;
    await writer.discover();
    const big = (i: number) => ({ key: key(`${String(i).padStart(4, '0')}-${'é'.repeat(509)}`), value: Buffer.alloc(MAX_VALUE_BYTES, i) });
    m.down.add('node-2');
    await writer.putMany(Array.from({ length: 60 }, (_, i) => big(i)));
    m.down.delete('node-2');
    const back = m.services.get('node-2')!;
    await back.syncNow();
    assert.equal(back.counters.entriesApplied, 60);
    const page = await back.list('object', 'bucket-a', { limit: 1000 });
    const got = [...page.entries];
    for (let token = page.token, i = 0; token !== null && i < 100; i++) {
      const next = await back.list('object', 'bucket-a', { limit: 1000, token });
      got.push(...next.entries);
      token = next.token;
    }
    assert.equal(got.length, 60);
    assert.ok(got.every((e, i) => e.value!.equals(big(i).value)));
  } finally {
    await m.close();
  }
});

test('a listing page asks a majority of the holders, this node first, and the next holder stands in for one that fails', async () => {
  const m = await mesh(4);
  try {
    const names = Array.from({ length: 30 }, (_, i) => `k${String(i).padStart(3, '0')}`);
    await m.services.get(m.ids[0]!)!.putMany(names.map((n) => ({ key: key(n), value: Buffer.from(n) })));
    const holders = m.services.get(m.ids[0]!)!.holders(partitionOf('object', 'bucket-a'));
    assert.equal(holders.length, 3);
    const lister = m.services.get(holders[2]!)!;
    m.calls = new Map();
    assert.deepEqual((await lister.list('object', 'bucket-a', { limit: 1000 })).entries.map((e) => e.sk), names);
    assert.equal(m.calls.get(TABLE_METHODS.scan), 1, 'the lister scans its own copy and asks one other holder');

    const failing = m.services.get(holders[0]!)!;
    const handle = failing.handle.bind(failing);
    failing.handle = async (method, body, peer) => {
      if (method === TABLE_METHODS.scan) throw new TesseraError('UNAVAILABLE', 'scan refused for the test');
      return handle(method, body, peer);
    };
    m.calls = new Map();
    assert.deepEqual((await lister.list('object', 'bucket-a', { limit: 1000 })).entries.map((e) => e.sk), names);
    assert.equal(m.calls.get(TABLE_METHODS.scan), 2, 'the failed holder is replaced by the third');
  } finally {
    await m.close();
  }
});

test('a holder reads its own copy and asks another holder only which version it holds; a stale copy on either side loses', async () => {
  const m = await mesh(3);
  try {
    const a = m.services.get('node-0')!;
    await a.put(key('v'), Buffer.from('one'));
    await new Promise((r) => setTimeout(r, 20));
    m.calls.clear();
    assert.equal((await a.get(key('v')))?.value?.toString(), 'one');
    assert.equal(m.calls.get('table.versions'), 1, 'one other holder makes the majority');
    assert.equal(m.calls.get('table.get'), undefined, 'no value crosses the network when the versions agree');

    // The holder asked first misses a write: its version differs, so it is read in full, and the newer copy wins.
    const asked = a.holders(partitionOf('object', 'bucket-a')).find((h) => h !== 'node-0')!;
    m.down.add(asked);
    await a.put(key('v'), Buffer.from('two'));
    m.down.delete(asked);
    m.calls.clear();
    assert.equal((await a.get(key('v')))?.value?.toString(), 'two');
    assert.equal(m.calls.get('table.get'), 1);

    // The reading node itself misses a write another node made: the version it is told differs, and it learns the write.
    m.down.add('node-0');
    await m.services.get(asked)!.put(key('v'), Buffer.from('three'));
    m.down.delete('node-0');
    assert.equal(a.store.get(key('v'))?.value?.toString(), 'two');
    assert.equal((await a.get(key('v')))?.value?.toString(), 'three');
    for (let i = 0; i < 20 && a.store.get(key('v'))?.value?.toString() !== 'three'; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(a.store.get(key('v'))?.value?.toString(), 'three', 'the reader repaired its own copy');

    // A deletion is a version too.
    await m.services.get(asked)!.put(key('v'), null);
    assert.equal(await a.get(key('v')), null);
    assert.equal(await a.get(key('never-written')), null);
  } finally {
    await m.close();
  }
});

test('a node of an older version that does not know table.versions is read in full', async () => {
  const m = await mesh(3);
  try {
    const a = m.services.get('node-0')!;
    await a.put(key('old-peer'), Buffer.from('x'));
    for (const id of ['node-1', 'node-2']) {
      const svc = m.services.get(id)!;
      const handle = svc.handle.bind(svc);
      svc.handle = async (method, body, peer) => {
        if (method === TABLE_METHODS.versions) throw new TesseraError('BAD_INPUT', `unknown table method '${method}'`);
        return handle(method, body, peer);
      };
    }
    m.calls.clear();
    assert.equal((await a.get(key('old-peer')))?.value?.toString(), 'x');
    assert.equal(m.calls.get('table.get'), 1);
  } finally {
    await m.close();
  }
});

test('reads started together ask each other holder for their versions in one request', async () => {
  const m = await mesh(3);
  try {
    const a = m.services.get('node-0')!;
    const keys = Array.from({ length: 50 }, (_, i) => key(`together/${i}`));
    await a.putMany(keys.map((k) => ({ key: k, value: Buffer.from(k.sk) })));
    await new Promise((r) => setTimeout(r, 20));
    m.calls.clear();
    const got = await Promise.all(keys.map((k) => a.get(k)));
    assert.deepEqual(got.map((e) => e?.value?.toString()), keys.map((k) => k.sk));
    const requests = m.calls.get('table.versions') ?? 0;
    assert.ok(requests >= 1 && requests <= 2, `${requests} versions requests for 50 reads`);
    assert.equal(m.calls.get('table.get'), undefined);
  } finally {
    await m.close();
  }
});

test('a sync a member coming up scheduled does not run once the service has stopped and its store is closed', async () => {
  const m = await mesh(3);
  const unhandled: unknown[] = [];
  const onUnhandled = (err: unknown) => unhandled.push(err);
  process.on('unhandledRejection', onUnhandled);
  try {
    const svc = m.services.get('node-0')!;
    await svc.put(key('a/1'), Buffer.from('v1'));
    const rounds = svc.counters.syncRounds;
    // A member came up just before a graceful stop: its sync is due 200 ms later, after the close.
    svc.peerUp('node-1');
    // A node that has left is no longer among its own live members.
    m.down.add('node-0');
    await svc.stop();
    await svc.store.close();
    await new Promise((r) => setTimeout(r, 400));
    await svc.syncNow();
    assert.deepEqual(unhandled, [], 'no round ran on the closed store');
    assert.equal(svc.counters.syncRounds, rounds);
  } finally {
    process.off('unhandledRejection', onUnhandled);
    m.down.delete('node-0');
    await m.close();
  }
});

test('entries merged by peers while anti-entropy pulls are all counted as applied', async () => {
  const macKey = randomBytes(32);
  const m = await mesh(5, { macKey });
  try {
    const writer = m.services.get('node-0')!;
    await writer.discover();
    const holders = writer.holders(partitionOf('object', 'bucket-a'));
    const victim = holders.find((h) => h !== 'node-0')!;
    const pusher = m.ids.find((id) => id !== victim)!;
    m.down.add(victim);
    for (let i = 0; i < 300; i++) await writer.put(key(`during/${String(i).padStart(3, '0')}`), Buffer.from('y'));
    m.down.delete(victim);
    const back = m.services.get(victim)!;
    // Other holders' merges (handoff, their own rounds) land while this node's pulls are committing.
    const pushed = Array.from({ length: 200 }, (_, i) => makeEntry(macKey, key(`pushed/${String(i).padStart(3, '0')}`), { wall: Date.now(), logical: 0, node: pusher }, Buffer.from('z')));
    let syncing = true;
    const sync = back.syncNow().finally(() => {
      syncing = false;
    });
    let sent = 0;
    while (sent < pushed.length && (syncing || sent === 0)) {
      await back.handle(TABLE_METHODS.merge, { auth: callerProof(macKey, pusher), entries: [toWire(pushed[sent++]!)] }, pusher);
    }
    await sync;
    for (; sent < pushed.length; sent++) await back.handle(TABLE_METHODS.merge, { auth: callerProof(macKey, pusher), entries: [toWire(pushed[sent]!)] }, pusher);
    assert.equal(back.counters.entriesPulled, 300);
    assert.equal(back.counters.entriesApplied, 500, 'every entry newly held is counted once, whichever path brought it');
    assert.equal(digestCount(back.store.root(partitionOf('object', 'bucket-a'))), 500);
  } finally {
    await m.close();
  }
});

test('a table.write-held request that asks past its entries, or for more held versions than a reply holds, is refused and writes nothing', async () => {
  const macKey = randomBytes(32);
  const m = await mesh(3, { macKey });
  try {
    const target = m.services.get('node-0')!;
    const auth = callerProof(macKey, 'node-1');
    const e = makeEntry(macKey, key('held'), { wall: Date.now(), logical: 0, node: 'node-1' }, Buffer.from('v'));
    await assert.rejects(target.handle(TABLE_METHODS.writeHeld, { auth, entries: [toWire(e)], want: [1] }, 'node-1'), (err) => isTesseraError(err, 'BAD_INPUT'));
    const many = Array.from({ length: MAX_HELD_PER_WRITE + 1 }, (_, i) => i);
    await assert.rejects(target.handle(TABLE_METHODS.writeHeld, { auth, entries: many.map(() => toWire(e)), want: many }, 'node-1'), (err) => isTesseraError(err, 'PROTOCOL'));
    assert.equal(target.store.get(key('held')), null, 'a refused request writes nothing');
    // The same entry, asked within bounds, is written and says it replaced nothing.
    const ok = (await target.handle(TABLE_METHODS.writeHeld, { auth, entries: [toWire(e)], want: [0] }, 'node-1')) as { held: unknown[] };
    assert.deepEqual(ok.held, [null]);
    assert.equal(target.store.get(key('held'))?.value?.toString(), 'v');
  } finally {
    await m.close();
  }
});

/** Makes a mesh node answer as a node of a version without table.features and table.write-held. */
function olderVersion(m: Awaited<ReturnType<typeof mesh>>, id: string): void {
  const svc = m.services.get(id)!;
  const handle = svc.handle.bind(svc);
  svc.handle = async (method, body, peer) => {
    if (method === TABLE_METHODS.features || method === TABLE_METHODS.writeHeld) throw new TesseraError('BAD_INPUT', `unknown table method '${method}'`);
    return handle(method, body, peer);
  };
}

test('a write that asks what it replaced gets it from the holders, with no read before it', async () => {
  const m = await mesh(3);
  try {
    const a = m.services.get('node-0')!;
    await a.put(key('r'), Buffer.from('first'));
    await a.putReplacing(key('warm'), Buffer.from('x'));
    m.calls.clear();
    const r = await a.putReplacing(key('r'), Buffer.from('second'));
    assert.equal(r.replaced?.value?.toString(), 'first');
    assert.equal(r.entry.value?.toString(), 'second');
    assert.equal((await a.putReplacing(key('never'), Buffer.from('v'))).replaced, null);
    await a.put(key('gone'), Buffer.from('v'));
    await a.put(key('gone'), null);
    assert.equal((await a.putReplacing(key('gone'), Buffer.from('back'))).replaced, null, 'a deletion replaced is no live version');
    assert.equal(m.calls.get(TABLE_METHODS.versions), undefined);
    assert.equal(m.calls.get(TABLE_METHODS.get), undefined);
    assert.ok((m.calls.get(TABLE_METHODS.writeHeld) ?? 0) >= 2);
    assert.equal(m.calls.get(TABLE_METHODS.features), undefined, 'what a holder serves is asked once');
  } finally {
    await m.close();
  }
});

test('the version replaced is the newest a majority held, though the holder that writes missed it', async () => {
  const m = await mesh(3);
  try {
    const a = m.services.get('node-0')!;
    const c = m.services.get('node-2')!;
    await a.put(key('k'), Buffer.from('v1'));
    await new Promise((r) => setTimeout(r, 20));
    m.down.add('node-2');
    await a.put(key('k'), Buffer.from('v2'));
    m.down.delete('node-2');
    m.down.add('node-1');
    assert.equal(c.store.get(key('k'))?.value?.toString(), 'v1', 'the writer holds the older copy');
    const r = await c.putReplacing(key('k'), Buffer.from('v3'));
    assert.equal(r.replaced?.value?.toString(), 'v2');
  } finally {
    await m.close();
  }
});

test('with a holder of an older version the replaced version is read before the write, and is the same', async () => {
  const m = await mesh(3);
  try {
    const a = m.services.get('node-0')!;
    olderVersion(m, 'node-2');
    await a.put(key('o'), Buffer.from('before'));
    m.calls.clear();
    const r = await a.putReplacing(key('o'), Buffer.from('after'));
    assert.equal(r.replaced?.value?.toString(), 'before');
    assert.equal(m.calls.get(TABLE_METHODS.writeHeld), undefined, 'not sent while a holder cannot answer it');
    assert.equal(m.calls.get(TABLE_METHODS.features), 2, 'each other holder asked once');
    assert.equal(m.calls.get(TABLE_METHODS.versions), 1, 'read first, as a read would');
    await new Promise((res) => setTimeout(res, 20));
    assert.equal(m.services.get('node-2')!.store.get(key('o'))?.value?.toString(), 'after', 'the older node still takes the write');
    // A holder that goes back to an older version after it was asked counts as failed; the quorum holds.
    olderVersion(m, 'node-1');
    m.down.add('node-2');
    await assert.rejects(a.putReplacing(key('o'), Buffer.from('later')), (e) => isTesseraError(e, 'UNAVAILABLE'));
    m.down.delete('node-2');
    // The refused write stays on this node, unacknowledged; the next one, once it is on disk, replaces it.
    for (let i = 0; i < 50 && a.store.get(key('o'))?.value?.toString() !== 'later'; i++) await new Promise((res) => setTimeout(res, 10));
    m.calls.clear();
    assert.equal((await a.putReplacing(key('o'), Buffer.from('again'))).replaced?.value?.toString(), 'later');
    assert.equal(m.calls.get(TABLE_METHODS.writeHeld), undefined, 'the next write reads first');
  } finally {
    await m.close();
  }
});

test('a held version that is forged or of another key fails that holder alone', async () => {
  const m = await mesh(3);
  try {
    const a = m.services.get('node-0')!;
    await a.put(key('f'), Buffer.from('real'));
    await new Promise((r) => setTimeout(r, 20));
    const liar = m.services.get('node-2')!;
    const handle = liar.handle.bind(liar);
    let lies = 0;
    liar.handle = async (method, body, peer) => {
      const reply = (await handle(method, body, peer)) as { held?: Array<Record<string, unknown> | null> };
      if (method !== TABLE_METHODS.writeHeld) return reply;
      lies++;
      const forged = toWire(makeEntry(randomBytes(32), key('f'), { wall: Date.now(), logical: 0, node: 'node-2' }, Buffer.from('forged')));
      return { ...reply, held: reply.held!.map(() => (lies % 2 === 1 ? forged : { ...forged, s: 'another key' })) };
    };
    for (let i = 0; i < 2; i++) {
      const r = await a.putReplacing(key('f'), Buffer.from(`next ${i}`));
      assert.equal(r.replaced?.value?.toString(), i === 0 ? 'real' : 'next 0');
    }
    // The quorum may answer before the third holder does.
    for (let i = 0; i < 50 && (lies < 2 || a.counters.refusedEntries < 1); i++) await new Promise((res) => setTimeout(res, 10));
    assert.equal(lies, 2);
    assert.equal(a.counters.refusedEntries, 1, 'the forged entry was refused; the one of another key never got that far');
  } finally {
    await m.close();
  }
});
