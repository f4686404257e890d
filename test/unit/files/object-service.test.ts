/**
 * ObjectService over real FileService and TableService instances wired in one process: ETags,
 * Content-MD5, ranges, overwrites and removals that must not leave a file behind, and files shared
 * by two objects.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { ObjectService, DEFAULT_BUCKET, FILE_REF_TABLE } from '../../../src/files/index.js';
import { MAX_OPENED_FILES } from '../../../src/files/object-service.js';
import { BucketTable, ObjectTable, type Tables } from '../../../src/tables/index.js';
import { isTesseraError } from '../../../src/errors.js';
import { silentLogger } from '../../../src/log.js';
import { formatFileId, INLINE_FILE_ID, MAX_INLINE_OBJECT_BYTES } from '../../../src/content/index.js';

const INLINE_FILE_ID_ROOT = '00'.repeat(32);
import { cluster } from '../../helpers/files-mesh.js';
import { mesh } from '../tables/mesh.js';

async function* pieces(...parts: Buffer[]) {
  for (const p of parts) yield p;
}

async function bytesOf(s: AsyncIterable<unknown>): Promise<Buffer> {
  const out: Buffer[] = [];
  for await (const p of s) out.push(p as Buffer);
  return Buffer.concat(out);
}

const md5 = (b: Buffer) => createHash('md5').update(b).digest();

async function setup(t: { after(fn: () => unknown): void }, tableNodes = 3, dataKey?: Buffer) {
  const files = await cluster(3, 4, { gcGraceMs: 0 });
  const m = await mesh(tableNodes);
  t.after(async () => {
    await m.close();
    await files.close();
  });
  const svc = m.services.get('node-0')!;
  const tables: Tables = { service: svc, buckets: new BucketTable(svc), objects: new ObjectTable(svc), close: async () => undefined };
  const node0 = files.services.get('node0')!;
  const objects = new ObjectService({ files: node0, tables, log: silentLogger, ...(dataKey ? { dataKey } : {}) });
  /** Chunks stored on all nodes, after every node collected what is due. */
  const storedChunks = async () => {
    let n = 0;
    for (const [id, s] of files.services) {
      await s.host.sweep();
      n += files.stores.get(id)!.usage().count;
    }
    return n;
  };
  return { files, objects, tables, node0, storedChunks, mesh: m };
}

test('a put records the MD5 of the plaintext as ETag, size and type; reads whole and by inclusive range', async (t) => {
  const { objects } = await setup(t);
  const data = randomBytes(3 * 4096 + 100);
  const put = await objects.putObject(DEFAULT_BUCKET, 'docs/a.bin', pieces(data.subarray(0, 5000), data.subarray(5000)), { chunkSize: 4096, contentType: 'text/plain', userMeta: { owner: 'ana' } });
  assert.equal(put.etag, md5(data).toString('hex'));
  assert.equal(put.size, data.length);
  const head = await objects.headObject(DEFAULT_BUCKET, 'docs/a.bin');
  assert.equal(head?.etag, md5(data).toString('hex'));
  assert.equal(head?.contentType, 'text/plain');
  assert.deepEqual(head?.userMeta, { owner: 'ana' });
  assert.ok((await bytesOf((await objects.openObject(DEFAULT_BUCKET, 'docs/a.bin')).stream)).equals(data));
  assert.ok((await bytesOf((await objects.openObject(DEFAULT_BUCKET, 'docs/a.bin', { start: 4090, end: 8200 })).stream)).equals(data.subarray(4090, 8201)));
  await assert.rejects(objects.openObject(DEFAULT_BUCKET, 'docs/a.bin', { start: 0, end: data.length }), (e) => isTesseraError(e, 'BAD_INPUT'));
  await assert.rejects(objects.openObject(DEFAULT_BUCKET, 'nope'), (e) => isTesseraError(e, 'NOT_FOUND'));
  const empty = await objects.putObject(DEFAULT_BUCKET, 'empty', pieces());
  assert.equal(empty.etag, md5(Buffer.alloc(0)).toString('hex'));
  assert.equal((await bytesOf((await objects.openObject(DEFAULT_BUCKET, 'empty')).stream)).length, 0);
  assert.deepEqual((await objects.listObjects(DEFAULT_BUCKET)).items.map((o) => o.key), ['docs/a.bin', 'empty']);
});

test('a Content-MD5 or length mismatch stores nothing and leaves the old object in place', async (t) => {
  const { objects, storedChunks } = await setup(t);
  const v1 = randomBytes(5000);
  await objects.putObject(DEFAULT_BUCKET, 'k', pieces(v1), { chunkSize: 4096, expectedMd5: md5(v1), expectedSize: v1.length });
  const before = await storedChunks();
  const v2 = randomBytes(5000);
  await assert.rejects(objects.putObject(DEFAULT_BUCKET, 'k', pieces(v2), { chunkSize: 4096, expectedMd5: md5(v1) }), (e) => isTesseraError(e, 'BAD_DIGEST'));
  await assert.rejects(objects.putObject(DEFAULT_BUCKET, 'fresh', pieces(v2), { expectedMd5: md5(v1) }), (e) => isTesseraError(e, 'BAD_DIGEST'));
  await assert.rejects(objects.putObject(DEFAULT_BUCKET, 'short', pieces(v2), { expectedSize: v2.length + 1 }), (e) => isTesseraError(e, 'BAD_INPUT'));
  await assert.rejects(objects.putObject(DEFAULT_BUCKET, 'long', pieces(v2), { expectedSize: v2.length - 1 }), (e) => isTesseraError(e, 'BAD_INPUT'));
  await assert.rejects(objects.putObject(DEFAULT_BUCKET, 'x', pieces(v2), { expectedMd5: Buffer.alloc(3) }), (e) => isTesseraError(e, 'BAD_INPUT'));
  await assert.rejects(objects.putObject(DEFAULT_BUCKET, 'meta', pieces(v2), { userMeta: { big: 'x'.repeat(3000) } }), (e) => isTesseraError(e));
  await assert.rejects(objects.putObject(DEFAULT_BUCKET, 'type', pieces(v2), { contentType: 't'.repeat(300) }), (e) => isTesseraError(e, 'BAD_INPUT'));
  assert.deepEqual((await objects.listObjects(DEFAULT_BUCKET)).items.map((o) => o.key), ['k']);
  assert.ok((await bytesOf((await objects.openObject(DEFAULT_BUCKET, 'k')).stream)).equals(v1));
  // The refused uploads' chunks are collected like any aborted put's.
  assert.equal(await storedChunks(), before);
});

test('overwriting a key removes the old file, removing the key removes the file', async (t) => {
  const { objects, node0, storedChunks } = await setup(t);
  assert.equal(await storedChunks(), 0);
  const v1 = await objects.putObject(DEFAULT_BUCKET, 'k', pieces(randomBytes(3 * 4096)), { chunkSize: 4096 });
  const one = await storedChunks();
  assert.ok(one > 0);
  const v2 = await objects.putObject(DEFAULT_BUCKET, 'k', pieces(randomBytes(3 * 4096)), { chunkSize: 4096 });
  assert.notEqual(v1.fileId, v2.fileId);
  await assert.rejects(node0.open(v1.fileId), (e) => isTesseraError(e, 'NOT_FOUND'));
  assert.equal(await storedChunks(), one, 'only the new file\'s chunks remain');
  assert.equal(await objects.references(v1.fileId), 0);
  assert.equal(await objects.removeObject(DEFAULT_BUCKET, 'k'), true);
  assert.equal(await objects.removeObject(DEFAULT_BUCKET, 'k'), false);
  await assert.rejects(node0.open(v2.fileId), (e) => isTesseraError(e, 'NOT_FOUND'));
  assert.equal(await storedChunks(), 0);
  assert.equal(await objects.headObject(DEFAULT_BUCKET, 'k'), null);
});

test('a file shared by two objects survives removing one of them', async (t) => {
  const { objects, node0 } = await setup(t);
  await objects.createBucket('photos');
  const data = randomBytes(6000);
  const a = await objects.putObject('photos', 'a', pieces(data));
  await objects.recordObject(DEFAULT_BUCKET, 'copy-of-a', { fileId: a.fileId, size: a.size, etag: a.etag, checksums: {}, contentType: a.contentType, userMeta: {}, mtime: Date.now() });
  assert.equal(await objects.references(a.fileId), 2);
  assert.equal(await objects.removeObject('photos', 'a'), true);
  assert.ok((await bytesOf((await objects.openObject(DEFAULT_BUCKET, 'copy-of-a')).stream)).equals(data));
  // Pointing the copy at the same file again changes nothing; removing it takes the file.
  await objects.recordObject(DEFAULT_BUCKET, 'copy-of-a', { fileId: a.fileId, size: a.size, etag: a.etag, checksums: {}, contentType: a.contentType, userMeta: {}, mtime: Date.now() });
  assert.ok((await bytesOf((await objects.openObject(DEFAULT_BUCKET, 'copy-of-a')).stream)).equals(data));
  assert.equal(await objects.removeObject(DEFAULT_BUCKET, 'copy-of-a'), true);
  await assert.rejects(node0.open(a.fileId), (e) => isTesseraError(e, 'NOT_FOUND'));
  assert.equal(await objects.references(a.fileId), 0);
});

test('buckets: the default one appears on first put with a fixed id; others must exist; non-empty ones stay', async (t) => {
  const { objects } = await setup(t);
  assert.deepEqual((await objects.listObjects(DEFAULT_BUCKET)).items, []);
  assert.equal(await objects.getBucket(DEFAULT_BUCKET), null);
  await objects.putObject(DEFAULT_BUCKET, 'x', pieces(Buffer.from('hi')));
  const d = await objects.getBucket(DEFAULT_BUCKET);
  assert.ok(d);
  await assert.rejects(objects.createBucket(DEFAULT_BUCKET), (e) => isTesseraError(e, 'CONFLICT'));
  await assert.rejects(objects.putObject('missing', 'x', pieces(Buffer.from('hi'))), (e) => isTesseraError(e, 'NOT_FOUND'));
  await assert.rejects(objects.listObjects('missing'), (e) => isTesseraError(e, 'NOT_FOUND'));
  await assert.rejects(objects.removeBucket(DEFAULT_BUCKET), (e) => isTesseraError(e, 'CONFLICT'));
  await assert.rejects(objects.listObjects(DEFAULT_BUCKET, { limit: 0 }), (e) => isTesseraError(e, 'BAD_INPUT'));
  await assert.rejects(objects.putObject(DEFAULT_BUCKET, 'é'.repeat(513), pieces(Buffer.from('hi'))), (e) => isTesseraError(e, 'TOO_LARGE'));
  await objects.removeObject(DEFAULT_BUCKET, 'x');
  await objects.removeBucket(DEFAULT_BUCKET);
  const again = await objects.createBucket(DEFAULT_BUCKET);
  assert.equal(again.id, d.id);
  assert.deepEqual((await objects.listBuckets()).items.map((b) => b.name), [DEFAULT_BUCKET]);
});

test('migrated name records: the newest wins, a deletion keeps older records out, in any order', async (t) => {
  const { objects } = await setup(t);
  const f1 = formatFileId(randomBytes(32), randomBytes(32));
  const f2 = formatFileId(randomBytes(32), randomBytes(32));
  type Rec = [{ fileId: string; size: number; deleted?: boolean }, number];
  const live1: Rec = [{ fileId: f1, size: 1 }, 1000];
  const gone: Rec = [{ fileId: f1, size: 1, deleted: true }, 3000];
  const live2: Rec = [{ fileId: f2, size: 2 }, 5000];
  const orders: Rec[][] = [[live1, gone, live2], [live2, gone, live1], [gone, live1, live2], [gone, live2, live1], [live1, live2, gone], [live2, live1, gone]];
  for (const [i, order] of orders.entries()) {
    for (const [rec, at] of order) await objects.adoptName(`n${i}`, rec, at);
    const o = await objects.headObject(DEFAULT_BUCKET, `n${i}`);
    assert.equal(o?.fileId, f2, `order ${i}`);
    assert.equal(o?.mtime, 5000);
    for (const [rec, at] of [[live1, gone], [gone, live1]][i % 2]!) await objects.adoptName(`m${i}`, rec, at);
    assert.equal(await objects.headObject(DEFAULT_BUCKET, `m${i}`), null, `order ${i}: deleted after its only live record`);
  }
  assert.equal(await objects.adoptName('n0', live2[0], live2[1]), 'kept', 'adopting the same record again changes nothing');
  await assert.rejects(objects.adoptName('bad\u0001name', live1[0], 1), (e) => isTesseraError(e, 'BAD_INPUT'));
});

test('a name operation costs O(R) table calls, whatever the number of table nodes', async (t) => {
  const R = 3;
  const costs: Record<string, number>[] = [];
  for (const n of [4, 16]) {
    const { objects, mesh: m } = await setup(t, n);
    // The first operation asks every member once whether it holds the data key; that is not per operation.
    await objects.putObject(DEFAULT_BUCKET, 'warm-up', pieces(Buffer.from('x')));
    const cost: Record<string, number> = {};
    const measure = async (what: string, op: () => Promise<unknown>) => {
      await new Promise((r) => setTimeout(r, 250));
      m.calls.clear();
      await op();
      // Read repairs and the last holder's late answers are sent without waiting; let them land
      // before counting, so none is counted against the next operation.
      await new Promise((r) => setTimeout(r, 250));
      cost[what] = [...m.calls.values()].reduce((a, b) => a + b, 0);
    };
    await measure('put', () => objects.putName('docs/a', pieces(Buffer.from('hello'))));
    await measure('overwrite', () => objects.putName('docs/a', pieces(Buffer.from('hello again'))));
    await measure('lookup', () => objects.resolveRef('docs/a'));
    await measure('list', () => objects.listObjects(DEFAULT_BUCKET, { prefix: 'docs/', limit: 10 }));
    await measure('rm', () => objects.removeRef('docs/a'));
    costs.push(cost);
  }
  // put: bucket, old object, reference, record, read-back; overwrite adds the old reference and its
  // count; a lookup or a page is one read (the default bucket's id is fixed); rm: object, bucket,
  // object again, removal (read + write), reference, count. Each table operation asks the R holders,
  // and a read may repair up to R - 1 of them: at most 2R calls, whatever N.
  const ops: Record<string, number> = { put: 5, overwrite: 7, lookup: 1, list: 1, rm: 7 };
  const bound = Object.fromEntries(Object.entries(ops).map(([k, n]) => [k, n * 2 * R]));
  for (const cost of costs) for (const [what, n] of Object.entries(cost)) assert.ok(n <= bound[what]!, `${what} took ${n} table calls (bound ${bound[what]})`);
  assert.deepEqual(Object.keys(costs[1]!), Object.keys(bound));
  t.diagnostic(`table calls per name operation with 4 and 16 table nodes: ${JSON.stringify(costs)}`);
});

test('small objects live sealed in their entry: no chunk, no reference; ETag, ranges, copies, overwrites and removal as for files', async (t) => {
  const { objects, tables, storedChunks } = await setup(t, 3, randomBytes(32));
  const small = randomBytes(MAX_INLINE_OBJECT_BYTES);
  // Sent in pieces, the body is still whole before it is sealed.
  const put = await objects.putObject(DEFAULT_BUCKET, 'small', pieces(small.subarray(0, 100), small.subarray(100)), { expectedMd5: md5(small), expectedSize: small.length });
  assert.equal(put.fileId, INLINE_FILE_ID);
  assert.equal(put.file, undefined);
  assert.equal(put.etag, md5(small).toString('hex'));
  assert.equal(await storedChunks(), 0);
  const head = await objects.headObject(DEFAULT_BUCKET, 'small');
  assert.equal(head?.size, small.length);
  assert.equal(Buffer.from(head!.inline!).indexOf(small.subarray(0, 32)), -1, 'the entry holds no plaintext');
  assert.ok((await bytesOf((await objects.openObject(DEFAULT_BUCKET, 'small')).stream)).equals(small));
  assert.ok((await bytesOf((await objects.openObject(DEFAULT_BUCKET, 'small', { start: 10, end: 99 })).stream)).equals(small.subarray(10, 100)));
  await assert.rejects(objects.openObject(DEFAULT_BUCKET, 'small', { start: 0, end: small.length }), (e) => isTesseraError(e, 'BAD_INPUT'));
  assert.equal((await tables.service.list(FILE_REF_TABLE, INLINE_FILE_ID_ROOT, { limit: 10 })).entries.length, 0);
  // A byte over the threshold is a file, with the same kind of ETag.
  const big = Buffer.concat([small, Buffer.from('x')]);
  const file = await objects.putObject(DEFAULT_BUCKET, 'big', pieces(big), { chunkSize: 4096 });
  assert.notEqual(file.fileId, INLINE_FILE_ID);
  assert.equal(file.etag, md5(big).toString('hex'));
  const chunks = await storedChunks();
  assert.ok(chunks > 0);
  // A Content-MD5 mismatch stores nothing, inline or not.
  await assert.rejects(objects.putObject(DEFAULT_BUCKET, 'bad', pieces(small), { expectedMd5: md5(big) }), (e) => isTesseraError(e, 'BAD_DIGEST'));
  assert.equal(await objects.headObject(DEFAULT_BUCKET, 'bad'), null);
  // A copy carries the sealed bytes; removing the source leaves the copy readable.
  const { key: _key, ...source } = head!;
  await objects.recordObject(DEFAULT_BUCKET, 'copy', { ...source, mtime: Date.now() });
  assert.equal(await objects.removeObject(DEFAULT_BUCKET, 'small'), true);
  assert.ok((await bytesOf((await objects.openObject(DEFAULT_BUCKET, 'copy')).stream)).equals(small));
  // Overwriting a file with an inline object takes the file; and back.
  await objects.putObject(DEFAULT_BUCKET, 'big', pieces(Buffer.from('now small')));
  assert.equal(await storedChunks(), 0);
  assert.equal(await objects.references(file.fileId), 0);
  const again = await objects.putObject(DEFAULT_BUCKET, 'big', pieces(big), { chunkSize: 4096 });
  assert.ok((await bytesOf((await objects.openObject(DEFAULT_BUCKET, 'big')).stream)).equals(big));
  assert.equal(await objects.references(again.fileId), 1);
  // Names stay files: the native put answers with a file id.
  const named = await objects.putName('named', pieces(Buffer.from('tiny')));
  assert.notEqual(named.fileId, INLINE_FILE_ID);
  assert.equal(named.file.chunks, 1);
  assert.deepEqual((await objects.listObjects(DEFAULT_BUCKET)).items.map((o) => [o.key, o.size]), [['big', big.length], ['copy', small.length], ['named', 4]]);
  await assert.rejects(objects.removeRef(INLINE_FILE_ID), (e) => isTesseraError(e, 'BAD_INPUT'));
  assert.equal(await objects.removeObject(DEFAULT_BUCKET, 'copy'), true);
  assert.equal(await objects.headObject(DEFAULT_BUCKET, 'copy'), null);
});

test('an inline object cannot be read by a service without the data key', async (t) => {
  const { objects, files, tables } = await setup(t, 3, randomBytes(32));
  await objects.putObject(DEFAULT_BUCKET, 's', pieces(Buffer.from('secret bytes')));
  const keyless = new ObjectService({ files: files.services.get('node0')!, tables, log: silentLogger });
  await assert.rejects(keyless.openObject(DEFAULT_BUCKET, 's'), (e) => isTesseraError(e, 'AUTH'));
});

test('a small put into a remembered bucket reads no bucket; a bucket deleted (and made again) elsewhere is found by its seal', async (t) => {
  const dataKey = randomBytes(32);
  const { objects: a, node0, mesh: m } = await setup(t, 3, dataKey);
  const svc1 = m.services.get('node-1')!;
  const b = new ObjectService({ files: node0, tables: { service: svc1, buckets: new BucketTable(svc1), objects: new ObjectTable(svc1), close: async () => undefined }, log: silentLogger, dataKey });
  await a.createBucket('photos');
  await a.putObject('photos', 'one', pieces(Buffer.from('1')));
  m.calls.clear();
  await a.putObject('photos', 'two', pieces(Buffer.from('2')));
  // The write alone, to the two other holders, which say what it replaced: no read of the old
  // entry and no bucket-table read.
  assert.deepEqual([...m.calls], [['table.write-held', 2]]);

  // Another node deletes the bucket and makes one of the same name: a new id.
  for (const k of ['one', 'two']) await b.removeObject('photos', k);
  await b.removeBucket('photos');
  const made = await b.createBucket('photos');
  await a.putObject('photos', 'three', pieces(Buffer.from('3')));
  assert.deepEqual((await b.listObjects('photos')).items.map((o) => o.key), ['three']);
  assert.equal((await b.headObject('photos', 'three'))?.size, 1);
  assert.equal((await a.getBucket('photos'))?.id, made.id);

  // Deleted for good: the put is refused as for a bucket never made.
  await b.removeObject('photos', 'three');
  await b.removeBucket('photos');
  await assert.rejects(a.putObject('photos', 'four', pieces(Buffer.from('4'))), (e) => isTesseraError(e, 'NOT_FOUND'));
  assert.equal(await b.createBucket('photos').then(() => b.headObject('photos', 'four')), null);
});

test('ranged reads of one object open its file once; a removed file is not served from what was kept open', async (t) => {
  const { objects, node0 } = await setup(t);
  const data = randomBytes(5 * 4096);
  await objects.putObject(DEFAULT_BUCKET, 'ranged', pieces(data), { chunkSize: 4096 });
  let opens = 0;
  const open = node0.open.bind(node0);
  node0.open = (ref: string) => {
    opens++;
    return open(ref);
  };
  for (let i = 0; i < 5; i++) {
    const got = await bytesOf((await objects.openObject(DEFAULT_BUCKET, 'ranged', { start: i * 4096, end: i * 4096 + 4095 })).stream);
    assert.ok(got.equals(data.subarray(i * 4096, (i + 1) * 4096)), `range ${i}`);
  }
  assert.equal(opens, 1, 'the manifest is fetched once for all five ranges');
  const entry = (await objects.headObject(DEFAULT_BUCKET, 'ranged'))!;
  assert.equal(await objects.removeObject(DEFAULT_BUCKET, 'ranged'), true);
  await assert.rejects(objects.readEntry(entry), (e) => isTesseraError(e, 'NOT_FOUND'));
  assert.equal(opens, 2);
});

test('at most MAX_OPENED_FILES files are kept open: one more pushes out the oldest', async (t) => {
  const { objects, node0 } = await setup(t);
  const data = randomBytes(3 * 4096);
  const keys = Array.from({ length: MAX_OPENED_FILES + 1 }, (_, i) => `kept-${i}`);
  for (const k of keys) await objects.putObject(DEFAULT_BUCKET, k, pieces(Buffer.concat([Buffer.from(k), data])), { chunkSize: 4096 });
  let opens = 0;
  const open = node0.open.bind(node0);
  node0.open = (ref: string) => {
    opens++;
    return open(ref);
  };
  const read = async (k: string) => bytesOf((await objects.openObject(DEFAULT_BUCKET, k, { start: 0, end: 99 })).stream);
  for (const k of keys) await read(k);
  assert.equal(opens, keys.length, 'each file opened once');
  await read(keys[keys.length - 1]!);
  assert.equal(opens, keys.length, 'the newest is still kept open');
  assert.ok((await read(keys[0]!)).subarray(0, 6).equals(Buffer.from('kept-0')));
  assert.equal(opens, keys.length + 1, 'the oldest was pushed out and is opened again');
});

test('chunks the put thread seals carry the body MD5: ETags right in odd pieces, a Content-MD5 mismatch stores nothing', async (t) => {
  // With a data key, a body's head is read first to see whether it is small enough to keep inline.
  const { objects, storedChunks } = await setup(t, 3, randomBytes(32));
  const chunkSize = 256 << 10;
  // The first pieces are read (and hashed) by the body itself to see whether the object is small;
  // the rest is hashed from the chunks the put seals, the chunk holding the boundary from its middle.
  const body = randomBytes(3 * chunkSize + 12_345);
  const cuts = [5000, 5000 + 70_000, 300_000, 2 * chunkSize + 1, body.length];
  const split = () => cuts.map((end, i) => body.subarray(i === 0 ? 0 : cuts[i - 1], end));
  const put = await objects.putObject(DEFAULT_BUCKET, 'sealed', pieces(...split()), { chunkSize, expectedMd5: md5(body) });
  assert.equal(put.etag, md5(body).toString('hex'));
  assert.ok((await bytesOf((await objects.openObject(DEFAULT_BUCKET, 'sealed')).stream)).equals(body));
  // A body that does not start with a small head, and one of exactly one chunk.
  for (const b of [randomBytes(2 * chunkSize), randomBytes(chunkSize)]) {
    const p = await objects.putObject(DEFAULT_BUCKET, `whole-${b.length}`, pieces(b), { chunkSize });
    assert.equal(p.etag, md5(b).toString('hex'));
  }
  const before = await storedChunks();
  const other = Buffer.from(body);
  other[body.length - 1]! ^= 1;
  await assert.rejects(objects.putObject(DEFAULT_BUCKET, 'mismatch', pieces(other), { chunkSize, expectedMd5: md5(body) }), (e) => isTesseraError(e, 'BAD_DIGEST'));
  assert.equal(await objects.headObject(DEFAULT_BUCKET, 'mismatch'), null);
  assert.equal(await storedChunks(), before);
});
