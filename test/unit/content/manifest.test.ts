import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Encoder } from 'cbor-x';
import { isTesseraError } from '../../../src/errors.js';
import { KEY_BYTES, encryptChunk, type EncryptedChunk } from '../../../src/content/crypto.js';
import { MIN_CHUNK_BYTES } from '../../../src/content/chunker.js';
import { formatFileId, parseFileId } from '../../../src/content/ids.js';
import { MAX_MANIFEST_DEPTH, MAX_PAGE_ENTRIES, decodePage, sealPage, type ChunkRef } from '../../../src/content/manifest.js';
import { ManifestBuilder } from '../../../src/content/manifest-builder.js';
import { ManifestReader } from '../../../src/content/manifest-reader.js';
import type { RedundancyPolicy } from '../../../src/content/policy.js';

const CS = MIN_CHUNK_BYTES;
const secret = randomBytes(KEY_BYTES);
const policy: RedundancyPolicy = { kind: 'ec', k: 4, m: 2 };
const isCorrupt = (re?: RegExp) => (e: unknown) => isTesseraError(e, 'CORRUPT') && (re === undefined || re.test((e as Error).message));

class Store {
  readonly chunks = new Map<string, Buffer>();
  fetches = 0;
  put(c: EncryptedChunk): void {
    this.chunks.set(c.id.toString('hex'), Buffer.from(c.data));
  }
  fetch = async (id: Buffer): Promise<Buffer> => {
    this.fetches++;
    const data = this.chunks.get(id.toString('hex'));
    if (!data) throw new Error(`missing ${id.toString('hex')}`);
    return data;
  };
}

function fakeRefs(fileSize: number): ChunkRef[] {
  const refs: ChunkRef[] = [];
  for (let off = 0; off < fileSize; off += CS) refs.push({ id: randomBytes(32), key: randomBytes(32), size: Math.min(CS, fileSize - off) });
  return refs;
}

function build(refs: ChunkRef[], pageEntries: number, store: Store, createdAt = 1_700_000_000_000) {
  const builder = new ManifestBuilder({ manifestSecret: secret, chunkSize: CS, policy, createdAt, pageEntries });
  let emittedEarly = 0;
  for (const ref of refs) {
    for (const page of builder.add(ref)) {
      store.put(page);
      emittedEarly++;
    }
  }
  const built = builder.finish();
  for (const page of built.pages) store.put(page);
  store.put(built.root);
  return { ...built, emittedEarly, fileId: formatFileId(built.root.id, built.root.key) };
}

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

test('small manifest: the root lists chunks directly and reads back with metadata', async () => {
  const store = new Store();
  const refs = fakeRefs(3 * CS + 100);
  const built = build(refs, 8, store);
  assert.equal(built.info.depth, 0);
  assert.equal(store.chunks.size, 1);
  const reader = await ManifestReader.open(built.fileId, store.fetch);
  assert.deepEqual(reader.info, { version: 1, fileSize: 3 * CS + 100, chunkSize: CS, chunkCount: 4, policy, createdAt: 1_700_000_000_000, depth: 0 });
  const got = await collect(reader.refs());
  assert.deepEqual(got.map((r) => [r.id, r.key, r.size]), refs.map((r) => [r.id, r.key, r.size]));
  assert.deepEqual(got.map((r) => r.offset), [0, CS, 2 * CS, 3 * CS]);
  assert.deepEqual(await collect(reader.pages()), []);
});

test('empty file: no chunks, a root with zero entries', async () => {
  const store = new Store();
  const built = build([], 4, store);
  const reader = await ManifestReader.open(parseFileId(built.fileId), store.fetch);
  assert.equal(reader.info.fileSize, 0);
  assert.equal(reader.info.chunkCount, 0);
  assert.deepEqual(await collect(reader.refs()), []);
});

test('multi-level tree: pages are emitted while building and every range reads the right chunks', async () => {
  const store = new Store();
  const fileSize = 100 * CS - 7;
  const refs = fakeRefs(fileSize);
  const built = build(refs, 3, store);
  assert.ok(built.info.depth >= 3, `depth ${built.info.depth}`);
  assert.ok(built.emittedEarly > 0, 'full pages are handed out before finish');
  const reader = await ManifestReader.open(built.fileId, store.fetch);
  const all = await collect(reader.refs());
  assert.equal(all.length, refs.length);
  all.forEach((r, i) => {
    assert.equal(r.index, i);
    assert.equal(r.offset, i * CS);
    assert.deepEqual(r.id, refs[i]?.id);
  });
  const pages = await collect(reader.pages());
  assert.equal(pages.length + 1, store.chunks.size, 'pages() lists every stored page but the root');
  for (const [start, end] of [
    [0, 1],
    [CS - 1, CS + 1],
    [17 * CS, 17 * CS],
    [50 * CS + 3, 61 * CS],
    [fileSize - 1, fileSize],
    [0, fileSize],
  ] as const) {
    const got = await collect(reader.refs(start, end));
    const want = refs.map((r, i) => ({ r, i })).filter(({ i }) => i * CS < end && i * CS + CS > start);
    assert.deepEqual(got.map((r) => r.index), start === end ? [] : want.map((w) => w.i), `range ${start}-${end}`);
  }
});

test('a range read fetches only the pages on its path', async () => {
  const store = new Store();
  const refs = fakeRefs(81 * CS);
  const built = build(refs, 3, store); // 27 leaves, 9, 3, root
  const reader = await ManifestReader.open(built.fileId, store.fetch);
  store.fetches = 0;
  const one = await collect(reader.refs(40 * CS, 40 * CS + 1));
  assert.equal(one.length, 1);
  assert.equal(one[0]?.index, 40);
  assert.equal(store.fetches, built.info.depth, 'one page per level below the root');
});

test('bounds: invalid ranges, over-long or short chunks, builder misuse', async () => {
  const store = new Store();
  const built = build(fakeRefs(2 * CS), 4, store);
  const reader = await ManifestReader.open(built.fileId, store.fetch);
  for (const [s, e] of [[-1, 5], [5, 4], [0, 2 * CS + 1], [0.5, 3]] as const) {
    await assert.rejects(collect(reader.refs(s, e)), (e2) => isTesseraError(e2, 'BAD_INPUT'));
  }
  const builder = new ManifestBuilder({ manifestSecret: secret, chunkSize: CS, policy, pageEntries: 4 });
  assert.throws(() => builder.add({ id: randomBytes(32), key: randomBytes(32), size: CS + 1 }), (e) => isTesseraError(e, 'BAD_INPUT'));
  builder.add({ id: randomBytes(32), key: randomBytes(32), size: 10 });
  assert.throws(() => builder.add({ id: randomBytes(32), key: randomBytes(32), size: 10 }), (e) => isTesseraError(e, 'BAD_INPUT') && /last chunk/.test((e as Error).message));
  builder.finish();
  assert.throws(() => builder.finish(), (e) => isTesseraError(e, 'BAD_INPUT'));
  assert.throws(() => new ManifestBuilder({ manifestSecret: secret, chunkSize: CS, policy, pageEntries: 1 }), (e) => isTesseraError(e, 'BAD_INPUT'));
  assert.throws(() => new ManifestBuilder({ manifestSecret: secret, chunkSize: CS, policy, pageEntries: MAX_PAGE_ENTRIES + 1 }), (e) => isTesseraError(e, 'BAD_INPUT'));
  assert.throws(() => new ManifestBuilder({ manifestSecret: secret, chunkSize: CS, policy: { kind: 'replicas', r: 2, w: 3 } }), (e) => isTesseraError(e, 'BAD_INPUT') && /quorum/.test((e as Error).message));
});

test('a tree deeper than the bound is refused while building', () => {
  const builder = new ManifestBuilder({ manifestSecret: secret, chunkSize: CS, policy, pageEntries: 2 });
  const ref = () => ({ id: randomBytes(32), key: randomBytes(32), size: CS });
  assert.throws(() => {
    for (let i = 0; i < 2 ** (MAX_MANIFEST_DEPTH + 2); i++) builder.add(ref());
  }, (e) => isTesseraError(e, 'TOO_LARGE') && /deeper/.test((e as Error).message));
});

test('flipping a bit in any stored page is CORRUPT', async () => {
  const store = new Store();
  const built = build(fakeRefs(20 * CS), 3, store);
  for (const [hex, data] of store.chunks) {
    for (const pos of [0, data.length - 1]) {
      const tampered = new Store();
      for (const [h, d] of store.chunks) tampered.chunks.set(h, h === hex ? Buffer.from(d) : d);
      const bad = tampered.chunks.get(hex) as Buffer;
      bad[pos] = (bad[pos] ?? 0) ^ 1;
      await assert.rejects(
        (async () => collect((await ManifestReader.open(built.fileId, tampered.fetch)).refs()))(),
        isCorrupt(),
        `page ${hex.slice(0, 8)} byte ${pos}`,
      );
    }
  }
});

const cbor = new Encoder({ useRecords: false, mapsAsObjects: true, tagUint8Array: false });

/** Stores a hand-made (validly encrypted) root and opens it, so only the decoder can object. */
async function openForged(root: unknown, extra: EncryptedChunk[] = []): Promise<ManifestReader> {
  const store = new Store();
  const sealed = encryptChunk(cbor.encode(root), secret);
  store.put(sealed);
  for (const c of extra) store.put(c);
  return ManifestReader.open({ rootId: sealed.id, rootKey: sealed.key }, store.fetch);
}

test('forged manifests are rejected with CORRUPT naming the problem', async () => {
  const ref = [randomBytes(32), randomBytes(32), CS];
  const good = { v: 1, t: 'root', d: 0, e: [ref], size: CS, cs: CS, n: 1, p: policy, at: 0 };
  await openForged(good);
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ v: 2 }, /version 2/],
    [{ t: 'page' }, /malformed/],
    [{ n: 2 }, /claims 2 chunks/],
    [{ size: CS + 1 }, /claims/],
    [{ e: [[randomBytes(31), randomBytes(32), CS]] }, /entry 0.*32-byte id/],
    [{ e: [[randomBytes(32), randomBytes(32), -1]] }, /entry 0/],
    [{ e: new Array(MAX_PAGE_ENTRIES + 1).fill(ref) }, /malformed/],
    [{ d: MAX_MANIFEST_DEPTH + 1 }, /malformed/],
    [{ cs: 1 }, /malformed/],
    [{ p: { kind: 'replicas', r: 1000, w: 1 } }, /malformed/],
    [{ extra: 1 }, /malformed/],
    [{ d: 1, e: [] }, /no pages/],
  ];
  for (const [patch, re] of cases) {
    await assert.rejects(openForged({ ...good, ...patch }), isCorrupt(re), JSON.stringify(Object.keys(patch)));
  }
  await assert.rejects(
    (async () => {
      const sealed = encryptChunk(Buffer.from([0xff, 0x00]), secret);
      const store = new Store();
      store.put(sealed);
      await ManifestReader.open({ rootId: sealed.id, rootKey: sealed.key }, store.fetch);
    })(),
    isCorrupt(/CBOR/),
  );
});

test('a child page that disagrees with its parent is CORRUPT', async () => {
  const leaf = sealPage({ depth: 0, entries: [[randomBytes(32), randomBytes(32), CS]] }, secret);
  const lying = { v: 1, t: 'root', d: 1, e: [[leaf.id, leaf.key, 2, 2 * CS]], size: 2 * CS, cs: CS, n: 2, p: policy, at: 0 };
  const reader = await openForged(lying, [leaf]);
  await assert.rejects(collect(reader.refs()), isCorrupt(/parent claims 2/));
  const wrongDepth = sealPage({ depth: 1, entries: [[leaf.id, leaf.key, 1, CS]] }, secret);
  const deep = { v: 1, t: 'root', d: 1, e: [[wrongDepth.id, wrongDepth.key, 1, CS]], size: CS, cs: CS, n: 1, p: policy, at: 0 };
  await assert.rejects(collect((await openForged(deep, [wrongDepth, leaf])).refs()), isCorrupt(/depth 1 sits under/));
  const shortMiddle = { v: 1, t: 'root', d: 0, e: [[randomBytes(32), randomBytes(32), 10], [randomBytes(32), randomBytes(32), CS]], size: CS + 10, cs: CS, n: 2, p: policy, at: 0 };
  await assert.rejects(collect((await openForged(shortMiddle)).refs()), isCorrupt(/chunk 0 of 10 bytes/));
  assert.throws(() => decodePage(cbor.encode({ v: 1, t: 'page', d: 0, e: [] }), true), isCorrupt(/root/));
});

test('same content and time give the same file id (manifest dedup); another time gives another', () => {
  const refs = fakeRefs(5 * CS);
  const a = build(refs, 2, new Store());
  const b = build(refs, 2, new Store());
  const c = build(refs, 2, new Store(), 1_700_000_000_001);
  assert.equal(a.fileId, b.fileId);
  assert.notEqual(a.fileId, c.fileId);
});
