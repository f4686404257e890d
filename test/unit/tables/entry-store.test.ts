import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isTesseraError } from '../../../src/errors.js';
import { makeEntry, type TableEntry } from '../../../src/tables/entry.js';
import { EntryStore, lmdbEncryptionKey, MAX_CACHED_SEALS, MAX_CACHED_TREE_NODES, MAX_INNER_PARTITIONS, MAX_SCAN_LIMIT } from '../../../src/tables/entry-store.js';
// Before lmdb: it picks the addon lmdb loads (the build with a bounded page cache).
import '../../../src/store/lmdb-addon.js';
import { open as openLmdb } from 'lmdb';
import { ancestorAt, digestOf, digestCount, EMPTY_DIGEST, nodesAtLevel, TREE_DEPTH } from '../../../src/tables/digest-tree.js';
import { LEAF_COUNT, leafOf, partitionOf, SEAL_SORT_KEY, storageKey } from '../../../src/tables/keys.js';

const MAC = randomBytes(32);
const DISK = randomBytes(32);
const e = (sk: string, wall: number, v: string | null, pk = 'bucket-1') => makeEntry(MAC, { table: 'object', pk, sk }, { wall, logical: 0, node: 'n1' }, v === null ? null : Buffer.from(v));

test('merge keeps the newest version, scans in byte order with prefix, after and limit', async () => {
  const s = await EntryStore.open(null, DISK);
  try {
    const kept = await s.merge([e('b', 2, 'b2'), e('a', 1, 'a1'), e('é', 1, 'x'), e('ab', 1, 'ab'), e('c', 1, null)]);
    assert.equal(kept.length, 5);
    assert.equal((await s.merge([e('b', 1, 'older')])).length, 0);
    assert.equal((await s.merge([e('b', 3, 'b3')])).length, 1);
    assert.equal(s.get({ table: 'object', pk: 'bucket-1', sk: 'b' })?.value?.toString(), 'b3');
    const all = s.scan('object', 'bucket-1', { limit: 10 });
    assert.deepEqual(all.entries.map((x) => x.sk), ['a', 'ab', 'b', 'c', 'é']);
    assert.equal(all.entries[3]!.value, null, 'tombstones are kept and returned');
    assert.deepEqual(s.scan('object', 'bucket-1', { limit: 10, prefix: 'a' }).entries.map((x) => x.sk), ['a', 'ab']);
    const page = s.scan('object', 'bucket-1', { limit: 2, after: 'a' });
    assert.deepEqual(page.entries.map((x) => x.sk), ['ab', 'b']);
    assert.equal(page.more, true);
    assert.deepEqual(s.scan('object', 'bucket-2', { limit: 10 }).entries, [], 'another partition key sees nothing');
    assert.throws(() => s.scan('object', 'bucket-1', { limit: MAX_SCAN_LIMIT + 1 }), (err) => isTesseraError(err, 'BAD_INPUT'));
  } finally {
    await s.close();
  }
});

test('the partition root is the digest of the current versions, and dropping a partition empties it', async () => {
  const s = await EntryStore.open(null, DISK);
  try {
    const entries: TableEntry[] = [];
    for (let i = 0; i < 300; i++) entries.push(e(`k${i}`, 1, `v${i}`));
    await s.merge(entries);
    const newer = e('k7', 5, 'changed');
    await s.merge([newer]);
    const current = entries.map((x) => (x.sk === 'k7' ? newer : x));
    const p = partitionOf('object', 'bucket-1');
    assert.ok(s.root(p).equals(digestOf(current.map((x) => x.mac))));
    assert.equal(digestCount(s.root(p)), 300);
    // Two versions of one key in one batch: the digests fold both changes, and the newer stays.
    const v6 = e('k8', 6, 'six');
    const v7 = e('k8', 7, 'seven');
    assert.equal((await s.merge([v6, v7])).length, 2);
    const now = current.map((x) => (x.sk === 'k8' ? v7 : x));
    assert.ok(s.root(p).equals(digestOf(now.map((x) => x.mac))));
    for (let leaf = 0; leaf < LEAF_COUNT; leaf += 97) {
      const keys = s.leafKeys(p, leaf, undefined, 1000).keys;
      assert.ok(s.treeNodes(p, TREE_DEPTH, [leaf])[0]!.equals(digestOf(keys.map((k) => k.hash))), `leaf ${leaf} digest matches its keys`);
    }
    await s.merge([e('z', 1, 'other', 'bucket-9')]);
    const dropped = await s.dropPartition(p);
    assert.equal(dropped >= 300, true);
    assert.ok(s.root(p).equals(EMPTY_DIGEST));
    assert.equal(s.scan('object', 'bucket-1', { limit: 10 }).entries.length, 0);
    if (partitionOf('object', 'bucket-9') !== p) assert.equal(s.scan('object', 'bucket-9', { limit: 10 }).entries.length, 1);
  } finally {
    await s.close();
  }
});

test('on disk the store is encrypted: no key or value appears in any file, and it reopens with the same key', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'tessera-tables-test-'));
  try {
    const s = await EntryStore.open(join(dir, 't'), DISK);
    await s.merge([e('secret-object-NAME-4471', 1, 'secret-VALUE-9912', 'bucket-SECRET-77')]);
    await s.close();
    for (const f of await readdir(join(dir, 't'))) {
      const raw = await readFile(join(dir, 't', f));
      for (const needle of ['secret-object-NAME-4471', 'secret-VALUE-9912', 'bucket-SECRET-77']) assert.equal(raw.includes(needle), false, `${needle} found in ${f}`);
    }
    const again = await EntryStore.open(join(dir, 't'), DISK);
    assert.equal(again.get({ table: 'object', pk: 'bucket-SECRET-77', sk: 'secret-object-NAME-4471' })?.value?.toString(), 'secret-VALUE-9912');
    await again.close();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('merges and writes handed over together share one transaction, judged in the order they came', async () => {
  const s = await EntryStore.open(null, DISK);
  try {
    const base = await s.merge([e('k1', 1, 'one'), e('k2', 1, 'two'), e(SEAL_SORT_KEY, 1, 'sealed', 'closed-bucket')]);
    assert.equal(base.length, 3);
    const before = s.commits;
    const v7 = e('k1', 7, 'seven');
    const v6 = e('k1', 6, 'six');
    const [a, b, c, d] = await Promise.all([
      s.merge([v7]),
      s.write([v6, e('k3', 2, 'three')]),
      s.write([e('x', 2, 'refused', 'closed-bucket'), e('y', 2, null, 'closed-bucket')]),
      s.merge([e('k2', 3, null)]),
    ]);
    const after = s.commits;
    assert.equal(after.commits - before.commits, 1, 'four calls of one turn went in one transaction');
    assert.equal(after.jobs - before.jobs, 4);
    assert.deepEqual(a.map((x) => x.sk), ['k1']);
    assert.deepEqual(b.kept.map((x) => x.sk), ['k3'], 'an older version than one earlier in the group is not kept');
    assert.deepEqual(c.sealed, [0], 'a value under a sealed partition key is refused; a deletion passes');
    assert.deepEqual(c.kept.map((x) => x.sk), ['y']);
    assert.equal(d.length, 1);
    assert.equal(s.get({ table: 'object', pk: 'bucket-1', sk: 'k1' })?.value?.toString(), 'seven');
    assert.equal(s.get({ table: 'object', pk: 'bucket-1', sk: 'k2' })?.value, null);
    const p = partitionOf('object', 'bucket-1');
    const held = s.scan('object', 'bucket-1', { limit: 100 }).entries;
    assert.deepEqual(held.map((x) => x.sk), ['k1', 'k2', 'k3']);
    assert.ok(s.root(p).equals(digestOf(held.map((x) => x.mac))), 'each key is folded into the digests once, from the version held before the group to the one after');
    // A seal and a write behind it in the same group: the write meets the seal.
    const [, late] = await Promise.all([s.merge([e(SEAL_SORT_KEY, 9, 'sealed')]), s.write([e('k4', 9, 'late')])]);
    assert.deepEqual(late.sealed, [0]);
  } finally {
    await s.close();
  }
});

test('a call of a group that cannot be judged fails alone and writes nothing; the rest of its group commits', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'tessera-tables-test-'));
  try {
    const path = join(dir, 't');
    const s = await EntryStore.open(path, DISK);
    await s.merge([e('ok', 1, 'ok')]);
    await s.close();
    // A record that cannot be decoded: judging a newer version against it fails.
    const raw = openLmdb({ path, maxDbs: 4, encryptionKey: lmdbEncryptionKey(DISK) });
    const entries = raw.openDB<Buffer, Buffer>({ name: 'entries', keyEncoding: 'binary', encoding: 'binary' });
    await entries.put(storageKey({ table: 'object', pk: 'bucket-1', sk: 'bad' }), Buffer.from('x'));
    await raw.close();
    const again = await EntryStore.open(path, DISK);
    try {
      const before = again.commits;
      const [a, bad, c] = await Promise.allSettled([again.merge([e('a', 2, 'a')]), again.write([e('bad', 2, 'b'), e('d', 2, 'd')]), again.merge([e('c', 2, 'c')])]);
      assert.equal(again.commits.commits - before.commits, 1, 'the three calls went in one transaction');
      assert.equal(bad.status, 'rejected');
      assert.ok(isTesseraError((bad as PromiseRejectedResult).reason, 'CORRUPT'), 'a typed error naming the corruption');
      assert.equal(again.get({ table: 'object', pk: 'bucket-1', sk: 'd' }), null, 'nothing of the failed call was written');
      assert.equal(a.status, 'fulfilled');
      assert.equal(c.status, 'fulfilled');
      assert.equal(again.get({ table: 'object', pk: 'bucket-1', sk: 'a' })?.value?.toString(), 'a');
      assert.equal(again.get({ table: 'object', pk: 'bucket-1', sk: 'c' })?.value?.toString(), 'c');
      const held = ['ok', 'a', 'c'].map((sk) => again.get({ table: 'object', pk: 'bucket-1', sk })!);
      const p = partitionOf('object', 'bucket-1');
      assert.ok(again.root(p).equals(digestOf(held.map((x) => x.mac))), 'the digests hold what was written, and not the failed call');
    } finally {
      await again.close();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('the tree nodes and seals a write remembers stay true past their bounds, through rewrites, seals and drops', async () => {
  const s = await EntryStore.open(null, DISK);
  try {
    // Enough partition keys that their leaves overflow the remembered ones.
    const pks = Array.from({ length: 6000 }, (_, i) => `bucket-${i}`);
    const held = new Map<string, TableEntry>();
    for (const round of [1, 2]) {
      for (let i = 0; i < pks.length; i += 500) {
        const batch = pks.slice(i, i + 500).flatMap((pk) => [e(`a${round}`, round, `v${round}`, pk), e('b', round, `b${round}`, pk)]);
        await s.merge(batch);
        for (const x of batch) held.set(`${x.pk}/${x.sk}`, x);
      }
    }
    assert.ok(s.cached.treeNodes <= MAX_CACHED_TREE_NODES, `${s.cached.treeNodes} remembered tree nodes`);
    assert.equal(s.cached.treeNodes, MAX_CACHED_TREE_NODES, 'the bound was reached, so forgotten nodes were read again');
    const byPartition = new Map<number, Buffer[]>();
    for (const x of held.values()) {
      const p = partitionOf('object', x.pk);
      byPartition.set(p, [...(byPartition.get(p) ?? []), x.mac]);
    }
    for (const [p, macs] of byPartition) assert.ok(s.root(p).equals(digestOf(macs)), `partition ${p}: the root is the digest of what is held`);
    assert.ok(s.cached.innerPartitions <= MAX_INNER_PARTITIONS, `${s.cached.innerPartitions} partitions' inner digests held`);

    // A seal learnt from a replica closes the key to client writes, its removal opens it again,
    // and a dropped partition forgets it.
    const pk = 'bucket-7';
    assert.deepEqual((await s.write([e('c', 3, 'open', pk)])).sealed, [], 'not sealed: remembered as open');
    await s.merge([e(SEAL_SORT_KEY, 4, 'sealed', pk)]);
    assert.deepEqual((await s.write([e('c', 5, 'closed', pk)])).sealed, [0]);
    await s.merge([e(SEAL_SORT_KEY, 6, null, pk)]);
    assert.deepEqual((await s.write([e('c', 7, 'open again', pk)])).sealed, []);
    await s.merge([e(SEAL_SORT_KEY, 8, 'sealed', pk)]);
    assert.deepEqual((await s.write([e('d', 9, 'x', pk)])).sealed, [0]);
    assert.ok(s.cached.seals >= 1 && s.cached.seals <= MAX_CACHED_SEALS);
    await s.dropPartition(partitionOf('object', pk));
    assert.deepEqual((await s.write([e('d', 10, 'after the drop', pk)])).sealed, [], 'the dropped seal is not remembered');
    const after = s.get({ table: 'object', pk, sk: 'd' })!;
    assert.ok(s.root(partitionOf('object', pk)).equals(digestOf([after.mac])), 'the dropped partition holds only what came after, in its digests too');
  } finally {
    await s.close();
  }
});

test('the inner digests held in memory equal those computed from the stored entries, and are rebuilt the same after a reopen', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'tessera-inner-'));
  try {
    const pk = 'bucket-inner';
    const p = partitionOf('object', pk);
    // Every node of every level, from scratch: the XOR and count of the MACs of the keys under it.
    const expected = (held: readonly TableEntry[]) => {
      const out = new Map<string, Buffer[]>();
      for (const x of held) {
        const leaf = leafOfKey(x);
        for (let level = 0; level <= TREE_DEPTH; level++) {
          const id = `${level}/${ancestorAt(leaf, level)}`;
          out.set(id, [...(out.get(id) ?? []), x.mac]);
        }
      }
      return out;
    };
    const check = (s: EntryStore, held: readonly TableEntry[], what: string) => {
      const want = expected(held);
      // The leaves too: a write folds into a leaf it knows to be empty without reading it.
      for (let level = 0; level <= TREE_DEPTH; level++) {
        const idx = Array.from({ length: nodesAtLevel(level) }, (_, i) => i);
        const got = s.treeNodes(p, level, idx);
        for (const i of idx) assert.ok(got[i]!.equals(digestOf(want.get(`${level}/${i}`) ?? [])), `${what}: level ${level} node ${i}`);
      }
    };
    let s = await EntryStore.open(dir, DISK);
    const held = new Map<string, TableEntry>();
    try {
      for (let round = 1; round <= 3; round++) {
        // Rewrites of half the keys, deletions of a tenth, new keys: every kind of fold.
        const batch = Array.from({ length: 400 }, (_, i) => e(`k${round === 1 ? i : i * 2}`, round, round === 3 && i % 10 === 0 ? null : `v${round}`, pk));
        await s.merge(batch);
        for (const x of batch) held.set(x.sk, x);
      }
      check(s, [...held.values()], 'as written');
      const before = s.root(p);
      await s.close();
      s = await EntryStore.open(dir, DISK);
      assert.equal(s.cached.innerPartitions, 0, 'nothing is held before the partition is used');
      check(s, [...held.values()], 'after a reopen');
      assert.ok(s.root(p).equals(before));
      // Leaves known to hold entries from the scan at first use, and those still empty.
      const more = Array.from({ length: 300 }, (_, i) => e(`k${i * 3}`, 4, 'v4', pk));
      await s.merge(more);
      for (const x of more) held.set(x.sk, x);
      check(s, [...held.values()], 'written after a reopen');
      await s.dropPartition(p);
      check(s, [], 'after a drop');
      const again = Array.from({ length: 50 }, (_, i) => e(`k${i}`, 5, 'v5', pk));
      await s.merge(again);
      check(s, again, 'written after a drop');
    } finally {
      await s.close();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

function leafOfKey(k: TableEntry): number {
  return leafOf(storageKey(k));
}

test('a write hands back the version held under each key asked, in the order asked, whether or not it wins', async () => {
  const s = await EntryStore.open(null, DISK);
  try {
    await s.merge([e('old', 1, 'one'), e('newer-here', 9, 'nine'), e(SEAL_SORT_KEY, 1, 'sealed', 'closed')]);
    const r = await s.write([e('old', 2, 'two'), e('fresh', 2, 'x'), e('newer-here', 2, 'loses'), e('k', 2, 'v', 'closed')], [2, 0, 1, 3]);
    assert.deepEqual(r.held?.map((h) => (h === null ? null : `${h.sk}=${h.value?.toString()}@${h.ts.wall}`)), ['newer-here=nine@9', 'old=one@1', null, null]);
    assert.deepEqual(r.sealed, [3]);
    assert.deepEqual(r.kept.map((k) => k.sk), ['old', 'fresh']);
    // What is handed back is a whole entry whose MAC still checks.
    assert.ok(r.held![1]!.mac.equals(e('old', 1, 'one').mac));
    // Asked nothing, nothing comes back; two writes of one key in one group see each other in order.
    assert.equal((await s.write([e('z', 1, 'z')])).held, undefined);
    const [a, b] = await Promise.all([s.write([e('g', 1, 'first')], [0]), s.write([e('g', 2, 'second')], [0])]);
    assert.equal(a.held![0], null);
    assert.equal(b.held![0]?.value?.toString(), 'first');
  } finally {
    await s.close();
  }
});
