import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { isTesseraError } from '../../../src/errors.js';
import {
  batchEntries, compareVersions, decodeStored, encodeStored, entryWireBytes, makeEntry, mergeVersions, verifyEntry, fromWire, toWire, MAX_SORT_KEY_BYTES, MAX_VALUE_BYTES, type TableEntry,
} from '../../../src/tables/entry.js';
import { decodeStorageKey, decodeToken, encodeToken, leafOf, LEAF_COUNT, MAX_CACHED_PARTITIONS, partitionOf, PARTITION_BITS, PARTITION_COUNT, prefixEnd, storageKey } from '../../../src/tables/keys.js';
import { diffKeyLists, digestOf, EMPTY_DIGEST, updateDigest, ancestorAt, TREE_DEPTH, digestCount } from '../../../src/tables/digest-tree.js';
import { compareUtf8, mergePages, mergePoint } from '../../../src/tables/page-merge.js';
import * as rpc from '../../../src/tables/rpc.js';
import { PROOF_BYTES } from '../../../src/tables/full-nodes.js';

const KEY = randomBytes(32);
const utf8 = fc.string({ unit: 'grapheme', maxLength: 40 });
const ts = (wall: number, logical = 0, node = 'n1') => ({ wall, logical, node });

test('a partition key falls in the partition its hash names, remembered or not, past the memory bound', () => {
  // The partition function is part of the stored layout: a change would strand every entry.
  const hashed = (table: string, pk: string) =>
    createHash('sha256').update('tessera/v1/table-partition\0').update(table).update('\0').update(pk).digest()[0]! >>> (8 - PARTITION_BITS);
  const pks = Array.from({ length: MAX_CACHED_PARTITIONS + 500 }, (_, i) => `bucket-${i}`);
  for (const round of [1, 2]) {
    for (const pk of pks) assert.equal(partitionOf('object', pk), hashed('object', pk), `round ${round}: ${pk}`);
  }
  assert.equal(partitionOf('bucket', 'b-7'), hashed('bucket', 'b-7'), 'the table is part of the hash');
});

test('stored keys decode to what was encoded and sort like their sort keys in UTF-8 byte order', () => {
  fc.assert(
    fc.property(utf8, utf8, utf8, (pk, a, b) => {
      const ka = storageKey({ table: 'object', pk, sk: a });
      const kb = storageKey({ table: 'object', pk, sk: b });
      assert.deepEqual(decodeStorageKey(ka), { partition: partitionOf('object', pk), table: 'object', pk, sk: a });
      assert.equal(Math.sign(Buffer.compare(ka, kb)), Math.sign(Buffer.compare(Buffer.from(a), Buffer.from(b))));
      const p = partitionOf('object', pk);
      assert.ok(p >= 0 && p < PARTITION_COUNT);
      const l = leafOf(ka);
      assert.ok(l >= 0 && l < LEAF_COUNT);
    }),
  );
});

test('a key past the sort-key limit is refused with TOO_LARGE', () => {
  assert.throws(() => storageKey({ table: 'object', pk: 'b', sk: 'x'.repeat(MAX_SORT_KEY_BYTES + 1) }), (e) => isTesseraError(e, 'TOO_LARGE'));
  assert.throws(() => storageKey({ table: 'Bad Name', pk: 'b', sk: 'x' }), (e) => isTesseraError(e, 'BAD_INPUT'));
});

test('continuation tokens round-trip and junk tokens are refused', () => {
  fc.assert(fc.property(utf8, (sk) => assert.equal(decodeToken(encodeToken(sk)), sk)));
  for (const bad of ['!!', 'AA', Buffer.from([2, 65]).toString('base64url'), 'A'.repeat(5000)]) {
    assert.throws(() => decodeToken(bad), (e) => isTesseraError(e));
  }
});

test('prefixEnd is greater than every key with the prefix and no greater than the next key without it', () => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 1, maxLength: 6 }), fc.uint8Array({ maxLength: 6 }), (p, tail) => {
      const prefix = Buffer.from(p);
      const end = prefixEnd(prefix);
      const inside = Buffer.concat([prefix, Buffer.from(tail)]);
      if (end === undefined) assert.ok(prefix.every((b) => b === 0xff));
      else {
        assert.ok(Buffer.compare(inside, end) < 0);
        assert.ok(!end.subarray(0, prefix.length).equals(prefix) || end.length < prefix.length);
      }
    }),
  );
});

test('entry MACs catch any change and a forged MAC is refused', () => {
  const e = makeEntry(KEY, { table: 'object', pk: 'b1', sk: 'photos/cat.jpg' }, ts(1000), Buffer.from('v'));
  verifyEntry(KEY, e);
  const changed: TableEntry[] = [
    { ...e, value: Buffer.from('w') },
    { ...e, value: null },
    { ...e, sk: 'photos/dog.jpg' },
    { ...e, ts: ts(1001) },
    { ...e, mac: randomBytes(32) },
  ];
  for (const c of changed) assert.throws(() => verifyEntry(KEY, c), (err) => isTesseraError(err, 'AUTH'));
  assert.throws(() => verifyEntry(randomBytes(32), e), (err) => isTesseraError(err, 'AUTH'));
  assert.deepEqual(fromWire(toWire(e)), e);
  assert.throws(() => makeEntry(KEY, { table: 'object', pk: 'b', sk: 'k' }, ts(1), Buffer.alloc(MAX_VALUE_BYTES + 1)), (err) => isTesseraError(err, 'TOO_LARGE'));
});

test('stored versions round-trip, tombstones included', () => {
  const e = makeEntry(KEY, { table: 't', pk: 'p', sk: 's' }, ts(123456789, 7, 'node-x'), Buffer.from('hello'));
  const d = decodeStored(encodeStored(e));
  assert.deepEqual(d, { ts: e.ts, value: e.value, mac: e.mac });
  const t = makeEntry(KEY, { table: 't', pk: 'p', sk: 's' }, ts(5), null);
  assert.equal(decodeStored(encodeStored(t)).value, null);
});

test('last-writer-wins merge is commutative, associative and picks the latest timestamp', () => {
  const version = fc.record({ wall: fc.integer({ min: 0, max: 5 }), logical: fc.integer({ min: 0, max: 3 }), node: fc.constantFrom('a', 'b'), v: fc.string({ maxLength: 3 }) });
  // A fresh timestamp object: fast-check may hand over records without a prototype, which
  // deepEqual would tell apart from the same fields in a plain object.
  const mk = (x: { wall: number; logical: number; node: string; v: string }) =>
    makeEntry(KEY, { table: 't', pk: 'p', sk: 'k' }, { wall: x.wall, logical: x.logical, node: x.node }, Buffer.from(x.v));
  fc.assert(
    fc.property(version, version, version, (x, y, z) => {
      const [a, b, c] = [mk(x), mk(y), mk(z)];
      // Two writes of the same version make equal entries, not the same object: compare contents.
      assert.deepEqual(mergeVersions(a, b), mergeVersions(b, a));
      assert.deepEqual(mergeVersions(mergeVersions(a, b), c), mergeVersions(a, mergeVersions(b, c)));
      const w = mergeVersions(a, b);
      assert.ok(compareVersions(w, a) >= 0 && compareVersions(w, b) >= 0);
    }),
  );
});

test('incremental digests equal digests computed from scratch, whatever the order of changes', () => {
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 9 }), fc.uint8Array({ minLength: 32, maxLength: 32 })), { maxLength: 60 }), (ops) => {
      const held = new Map<number, Buffer>();
      let d: Buffer = EMPTY_DIGEST;
      for (const [k, h] of ops) {
        const cur = held.get(k);
        if (cur !== undefined && h[0]! < 40) {
          d = updateDigest(d, cur, undefined);
          held.delete(k);
        } else {
          d = updateDigest(d, cur, h);
          held.set(k, Buffer.from(h));
        }
      }
      assert.ok(d.equals(digestOf(held.values())));
      assert.equal(digestCount(d), held.size);
    }),
  );
  assert.equal(ancestorAt(LEAF_COUNT - 1, 0), 0);
  assert.equal(ancestorAt(LEAF_COUNT - 1, TREE_DEPTH), LEAF_COUNT - 1);
});

test('key-list diff names exactly the keys missing or different on each side', () => {
  const list = fc.uniqueArray(fc.tuple(fc.integer({ min: 0, max: 50 }), fc.integer({ min: 0, max: 2 })), { selector: (x) => x[0], maxLength: 30 });
  fc.assert(
    fc.property(list, list, (a, b) => {
      const kh = (xs: [number, number][]) => xs.sort((x, y) => x[0] - y[0]).map(([k, h]) => ({ key: Buffer.from([k]), hash: Buffer.from([h]) }));
      const ours = kh(a);
      const theirs = kh(b);
      const { pull, push } = diffKeyLists(ours, theirs);
      const om = new Map(a.map(([k, h]) => [k, h]));
      const tm = new Map(b.map(([k, h]) => [k, h]));
      const expectPull = [...tm].filter(([k, h]) => om.get(k) !== h).map(([k]) => k).sort((x, y) => x - y);
      const expectPush = [...om].filter(([k, h]) => tm.get(k) !== h).map(([k]) => k).sort((x, y) => x - y);
      assert.deepEqual(pull.map((x) => x[0]), expectPull);
      assert.deepEqual(push.map((x) => x[0]), expectPush);
    }),
  );
});

test('paging over replicas that each miss entries returns every live winner exactly once, in order', () => {
  const keys = fc.uniqueArray(fc.string({ unit: fc.constantFrom('a', 'b', 'é', '\u{1F600}'), minLength: 1, maxLength: 4 }), { maxLength: 40 });
  fc.assert(
    fc.property(keys, fc.array(fc.tuple(fc.boolean(), fc.boolean(), fc.integer({ min: 0, max: 2 })), { minLength: 40, maxLength: 40 }), fc.integer({ min: 1, max: 7 }), (ks, shape, limit) => {
      const model = new Map<string, TableEntry>();
      const replicas: TableEntry[][] = [[], [], []];
      ks.forEach((k, i) => {
        const [inA, inB, newest] = shape[i]!;
        const versions = [0, 1, 2].map((r) => makeEntry(KEY, { table: 't', pk: 'p', sk: k }, ts(100 + (r === newest ? 10 : r)), Buffer.from(`${k}${r}`)));
        const winner = versions[newest]!;
        model.set(k, winner);
        replicas[newest]!.push(winner);
        if (inA && newest !== 0) replicas[0]!.push(versions[0]!);
        if (inB && newest !== 1) replicas[1]!.push(versions[1]!);
      });
      const cmp = (x: TableEntry, y: TableEntry) => Buffer.compare(Buffer.from(x.sk), Buffer.from(y.sk));
      for (const r of replicas) r.sort(cmp);
      const got: TableEntry[] = [];
      let after: string | null = null;
      for (let round = 0; round < 200; round++) {
        const pages = replicas.map((r, i) => {
          const rest = r.filter((e) => after === null || Buffer.compare(Buffer.from(e.sk), Buffer.from(after)) > 0);
          return { nodeId: `n${i}`, entries: rest.slice(0, limit), more: rest.length > limit };
        });
        const m = mergePages(pages);
        got.push(...m.entries);
        if (m.next === null) break;
        after = m.next;
      }
      assert.deepEqual(got, [...model.values()].sort(cmp));
    }),
  );
});

test('a point read picks the newest version and names every replica behind it', () => {
  const old = makeEntry(KEY, { table: 't', pk: 'p', sk: 'k' }, ts(1), Buffer.from('old'));
  const cur = makeEntry(KEY, { table: 't', pk: 'p', sk: 'k' }, ts(2), Buffer.from('new'));
  const r = mergePoint([{ nodeId: 'a', entry: old }, { nodeId: 'b', entry: cur }, { nodeId: 'c', entry: null }]);
  assert.equal(r.winner, cur);
  assert.deepEqual(r.repairs.map((x) => x.nodeId).sort(), ['a', 'c']);
  assert.equal(mergePoint([{ nodeId: 'a', entry: null }]).winner, null);
});

test('entry batches keep order and stay within their count and byte bounds', () => {
  fc.assert(
    fc.property(fc.array(fc.integer({ min: 0, max: 4000 }), { maxLength: 60 }), fc.integer({ min: 1, max: 10 }), (sizes, maxCount) => {
      const entries = sizes.map((n, i) => makeEntry(KEY, { table: 't', pk: 'p', sk: `k${i}` }, ts(1), Buffer.alloc(n)));
      const batches = batchEntries(entries, maxCount, 8000);
      assert.deepEqual(batches.flat(), entries);
      for (const b of batches) {
        assert.ok(b.length >= 1 && b.length <= maxCount);
        if (b.length > 1) assert.ok(b.reduce((n, e) => n + entryWireBytes(e), 0) <= 8000);
      }
    }),
  );
});

test('compareUtf8 orders strings as their UTF-8 bytes, astral characters and U+E000..U+FFFF included', () => {
  const mixed = fc.string({ unit: fc.constantFrom('a', 'z', 'é', '\uE000', '\uFFFD', '\u{10000}', '\u{1F600}', '/', '\u07FF'), maxLength: 12 });
  for (const gen of [mixed, fc.string({ unit: 'grapheme', maxLength: 20 })]) {
    fc.assert(fc.property(gen, gen, (a, b) => {
      assert.equal(compareUtf8(a, b), Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8')));
    }));
  }
});

test('a table.versions request is bounded: at most MAX_VERSION_KEYS keys, each sort key bounded as for table.get', () => {
  const auth = randomBytes(PROOF_BYTES);
  const keys = (n: number, s = 'k') => Array.from({ length: n }, () => ({ t: 'object', p: 'bucket', s }));
  assert.equal(rpc.parseBody(rpc.versionsRequest, { auth, keys: keys(rpc.MAX_VERSION_KEYS) }, 'table.versions').keys.length, rpc.MAX_VERSION_KEYS);
  for (const body of [{ auth, keys: keys(rpc.MAX_VERSION_KEYS + 1) }, { auth, keys: [] }, { auth, keys: keys(1, 'x'.repeat(MAX_SORT_KEY_BYTES + 1)) }]) {
    assert.throws(() => rpc.parseBody(rpc.versionsRequest, body, 'table.versions'), (e) => isTesseraError(e, 'PROTOCOL') && /table\.versions message does not match its schema/.test((e as Error).message));
  }
  // A reply with more versions than any request may ask for is refused too.
  assert.throws(() => rpc.parseBody(rpc.versionsReply, { m: Array.from({ length: rpc.MAX_VERSION_KEYS + 1 }, () => null) }, 'table.versions'), (e) => isTesseraError(e, 'PROTOCOL'));
});
