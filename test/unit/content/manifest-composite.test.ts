import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Encoder } from 'cbor-x';
import { isTesseraError } from '../../../src/errors.js';
import { KEY_BYTES, encryptChunk, type EncryptedChunk } from '../../../src/content/crypto.js';
import { MIN_CHUNK_BYTES } from '../../../src/content/chunker.js';
import { formatFileId } from '../../../src/content/ids.js';
import { ManifestBuilder } from '../../../src/content/manifest-builder.js';
import { ManifestReader } from '../../../src/content/manifest-reader.js';
import { MAX_COMPOSITE_PARTS, decodeRoot, openFileManifest, sealComposite, type CompositePart } from '../../../src/content/manifest-composite.js';
import type { RedundancyPolicy } from '../../../src/content/policy.js';

const CS = MIN_CHUNK_BYTES;
const secret = randomBytes(KEY_BYTES);
const policy: RedundancyPolicy = { kind: 'replicas', r: 3, w: 2 };
const cbor = new Encoder({ useRecords: false, mapsAsObjects: true, tagUint8Array: false });

class Store {
  readonly chunks = new Map<string, Buffer>();
  readonly fetched: string[] = [];
  put(c: EncryptedChunk): void {
    this.chunks.set(c.id.toString('hex'), Buffer.from(c.data));
  }
  fetch = async (id: Buffer): Promise<Buffer> => {
    this.fetched.push(id.toString('hex'));
    const data = this.chunks.get(id.toString('hex'));
    if (!data) throw new Error(`missing ${id.toString('hex')}`);
    return data;
  };
}

/** An ordinary file of `size` bytes (fake chunk refs; only manifests are stored). */
function file(store: Store, size: number): CompositePart {
  const b = new ManifestBuilder({ manifestSecret: secret, chunkSize: CS, policy, pageEntries: 4 });
  for (let off = 0; off < size; off += CS) for (const p of b.add({ id: randomBytes(32), key: randomBytes(32), size: Math.min(CS, size - off) })) store.put(p);
  const built = b.finish();
  for (const p of built.pages) store.put(p);
  store.put(built.root);
  return { rootId: built.root.id, rootKey: built.root.key, size, chunks: built.info.chunkCount };
}

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

test('a composite reads its parts in order, with offsets and indexes running on across parts', async () => {
  const store = new Store();
  const parts = [file(store, 3 * CS + 10), file(store, 0), file(store, 20 * CS), file(store, 7)];
  const { root, manifest } = sealComposite({ parts, policy, chunkSize: CS, createdAt: 1_700_000_000_000 }, secret);
  store.put(root);
  assert.equal(manifest.info.fileSize, 23 * CS + 17);
  assert.equal(manifest.info.chunkCount, 4 + 20 + 1);
  const m = await openFileManifest(formatFileId(root.id, root.key), store.fetch);
  assert.equal(m.parts.length, 4);
  assert.deepEqual(m.info, manifest.info);
  const refs = await collect(m.refs());
  assert.equal(refs.length, 25);
  assert.deepEqual(refs.map((r) => r.index), Array.from({ length: 25 }, (_, i) => i));
  let expect = 0;
  for (const r of refs) {
    assert.equal(r.offset, expect);
    expect += r.size;
  }
  assert.equal(expect, m.info.fileSize);
  // An ordinary file opens as before.
  const plain = await openFileManifest({ rootId: parts[0]!.rootId, rootKey: parts[0]!.rootKey }, store.fetch);
  assert.ok(plain instanceof ManifestReader);
  assert.deepEqual(plain.parts, []);
});

test('a range across a part boundary yields only the chunks it touches and opens only those parts', async () => {
  const store = new Store();
  const parts = [file(store, 2 * CS + 5), file(store, 2 * CS), file(store, 3 * CS)];
  const { root } = sealComposite({ parts, policy, chunkSize: CS }, secret);
  store.put(root);
  const m = await openFileManifest(formatFileId(root.id, root.key), store.fetch);
  store.fetched.length = 0;
  // Last byte of part 1 to the first byte of part 2.
  const refs = await collect(m.refs(2 * CS + 4, 2 * CS + 6));
  assert.deepEqual(refs.map((r) => [r.index, r.offset, r.size]), [[2, 2 * CS, 5], [3, 2 * CS + 5, CS]]);
  assert.equal(store.fetched.length, 2, 'the roots of parts 1 and 2, not part 3');
  assert.ok(!store.fetched.includes(parts[2]!.rootId.toString('hex')));
  assert.deepEqual(await collect(m.refs(5, 5)), []);
  await assert.rejects(collect(m.refs(0, m.info.fileSize + 1)), (e: unknown) => isTesseraError(e, 'BAD_INPUT'));
});

test('bounds: no parts, more than the part limit, sizes that do not add up', () => {
  assert.throws(() => sealComposite({ parts: [], policy, chunkSize: CS }, secret), (e: unknown) => isTesseraError(e, 'BAD_INPUT'));
  const one: CompositePart = { rootId: randomBytes(32), rootKey: randomBytes(32), size: 10, chunks: 1 };
  const many = Array.from({ length: MAX_COMPOSITE_PARTS + 1 }, () => one);
  assert.throws(() => sealComposite({ parts: many, policy, chunkSize: CS }, secret), (e: unknown) => isTesseraError(e, 'TOO_LARGE'));
  // Exactly the limit is fine, and still one chunk.
  const max = sealComposite({ parts: many.slice(1), policy, chunkSize: CS }, secret);
  assert.equal(max.manifest.parts.length, MAX_COMPOSITE_PARTS);
  assert.ok(max.root.data.length < 1 << 20, `${max.root.data.length} bytes`);
  assert.throws(() => sealComposite({ parts: [{ ...one, chunks: 0 }], policy, chunkSize: CS }, secret), /claims 0 chunks/);
  assert.throws(() => sealComposite({ parts: [{ ...one, rootId: randomBytes(31) }], policy, chunkSize: CS }, secret), (e: unknown) => isTesseraError(e, 'BAD_INPUT'));
});

test('a forged composite root is CORRUPT, never trusted: counts, part count, entry shapes', () => {
  const entry = [randomBytes(32), randomBytes(32), 100, 1];
  const base = { v: 1, t: 'composite', e: [entry], size: 100, cs: CS, n: 1, p: policy, at: 1 };
  assert.equal(decodeRoot(cbor.encode(base)).kind, 'composite');
  const bad: Record<string, unknown>[] = [
    { ...base, size: 101 },
    { ...base, n: 2 },
    { ...base, e: [] },
    { ...base, e: Array.from({ length: MAX_COMPOSITE_PARTS + 1 }, () => entry) },
    { ...base, e: [[randomBytes(31), randomBytes(32), 100, 1]] },
    { ...base, e: [[randomBytes(32), randomBytes(32), -1, 1]] },
    { ...base, e: [[randomBytes(32), randomBytes(32), 100, 101]], n: 101 },
    { ...base, extra: 1 },
  ];
  for (const b of bad) assert.throws(() => decodeRoot(cbor.encode(b)), (e: unknown) => isTesseraError(e, 'CORRUPT'), JSON.stringify(Object.keys(b)));
});

test('a part whose manifest disagrees with the composite fails CORRUPT when read', async () => {
  const store = new Store();
  const real = file(store, 2 * CS);
  const { root } = sealComposite({ parts: [{ ...real, size: 2 * CS - 1 }], policy, chunkSize: CS }, secret);
  store.put(root);
  const m = await openFileManifest(formatFileId(root.id, root.key), store.fetch);
  await assert.rejects(collect(m.refs()), (e: unknown) => isTesseraError(e, 'CORRUPT'));
  // Bytes that are not a root of either kind.
  const junk = encryptChunk(Buffer.from('not cbor \xff'), secret);
  store.put(junk);
  await assert.rejects(openFileManifest(formatFileId(junk.id, junk.key), store.fetch), (e: unknown) => isTesseraError(e, 'CORRUPT'));
});

test('a root nonce makes the same file a different root, and a nonce of the wrong size is CORRUPT', async () => {
  const { decodePage, MANIFEST_NONCE_BYTES } = await import('../../../src/content/manifest.js');
  const build = (nonce?: Buffer) => {
    const b = new ManifestBuilder({ manifestSecret: secret, chunkSize: CS, policy, createdAt: 5, ...(nonce ? { nonce } : {}) });
    b.add({ id: Buffer.alloc(32, 1), key: Buffer.alloc(32, 2), size: 10 });
    return b.finish();
  };
  const plain = build();
  const n = randomBytes(MANIFEST_NONCE_BYTES);
  const unique = build(n);
  assert.ok(!plain.root.id.equals(unique.root.id));
  assert.ok(build().root.id.equals(plain.root.id), 'without a nonce the root is convergent');
  const store = new Store();
  store.put(unique.root);
  const m = await openFileManifest({ rootId: unique.root.id, rootKey: unique.root.key }, store.fetch);
  assert.ok(m.info.nonce?.equals(n));
  assert.throws(() => new ManifestBuilder({ manifestSecret: secret, chunkSize: CS, policy, nonce: randomBytes(3) }), (e: unknown) => isTesseraError(e, 'BAD_INPUT'));
  const forged = cbor.encode({ v: 1, t: 'root', d: 0, e: [], size: 0, cs: CS, n: 0, p: policy, at: 1, u: randomBytes(5) });
  assert.throws(() => decodePage(forged, true), (e: unknown) => isTesseraError(e, 'CORRUPT'));
});
