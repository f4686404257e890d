/** MultipartService over real in-process table services; files and objects are in-memory stand-ins. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { silentLogger } from '../../../src/log.js';
import { TesseraError, isTesseraError } from '../../../src/errors.js';
import { DEFAULT_POLICY, formatFileId } from '../../../src/content/index.js';
import { BucketTable } from '../../../src/tables/buckets-objects.js';
import { MAX_PART_VERSIONS, type ObjectRecord } from '../../../src/tables/index.js';
import { MultipartService, multipartEtag, multipartFault, type MultipartFault, type MultipartFiles, type MultipartObjects } from '../../../src/files/multipart.js';
import { mesh } from '../tables/mesh.js';

const MIN = 1024;

async function setup(t: { after: (fn: () => Promise<unknown>) => void }, o: { abandonAfterMs?: number; now?: () => number } = {}) {
  const m = await mesh(3);
  t.after(() => m.close());
  const tables = m.services.get('node-0')!;
  const buckets = new BucketTable(tables);
  await buckets.create('bkt');
  const bodies = new Map<string, Buffer>();
  const removed: string[] = [];
  const composites = new Map<string, string[]>();
  const records = new Map<string, ObjectRecord>();
  const objects: MultipartObjects = {
    getBucket: (name) => buckets.get(name),
    async storeBody(body, opts) {
      const parts: Buffer[] = [];
      for await (const p of body as AsyncIterable<Buffer>) parts.push(Buffer.from(p));
      const data = Buffer.concat(parts);
      if (opts.expectedSize !== undefined && data.length !== opts.expectedSize) throw new TesseraError('BAD_INPUT', 'size mismatch');
      const fileId = formatFileId(randomBytes(32), randomBytes(32));
      bodies.set(fileId, data);
      return { fileId, size: data.length, md5: createHash('md5').update(data).digest() };
    },
    async openObject(bucket, key, range) {
      const rec = records.get(`${bucket}/${key}`);
      if (!rec) throw new TesseraError('NOT_FOUND', 'no such key');
      const all = Buffer.concat((composites.get(rec.fileId) ?? [rec.fileId]).map((id) => bodies.get(id)!));
      const bytes = range ? all.subarray(range.start, range.end + 1) : all;
      return { entry: { key, ...rec }, stream: Readable.from([bytes]) };
    },
    async headObject(bucket, key) {
      const rec = records.get(`${bucket}/${key}`);
      return rec ? { key, ...rec } : null;
    },
    async recordObject(bucket, key, record) {
      records.set(`${bucket}/${key}`, record);
    },
  };
  const files: MultipartFiles = {
    async putComposite(ids) {
      const fileId = formatFileId(randomBytes(32), randomBytes(32));
      composites.set(fileId, [...ids]);
      return { fileId, size: ids.reduce((n, id) => n + bodies.get(id)!.length, 0) };
    },
    async partSizes(id) {
      return (composites.get(id) ?? []).map((p) => bodies.get(p)!.length);
    },
    async removeFile(id) {
      if (removed.includes(id)) throw new TesseraError('NOT_FOUND', 'already removed');
      removed.push(id);
    },
  };
  const svc = new MultipartService({ tables, objects, files, log: silentLogger, minPartBytes: MIN, ...o });
  const read = (bucket: string, key: string) => {
    const rec = records.get(`${bucket}/${key}`)!;
    return Buffer.concat(composites.get(rec.fileId)!.map((id) => bodies.get(id)!));
  };
  return { svc, m, removed, records, read, bodies, initiator: { id: 'AKID', name: 'ana' } };
}

const faultOf = (want: MultipartFault) => (e: unknown) => multipartFault(e) === want;

test('parts uploaded out of order and one re-uploaded complete into the object; the replaced upload is removed', async (t) => {
  const { svc, read, removed, records, initiator } = await setup(t);
  const up = await svc.create('bkt', 'big/file.bin', { initiator, contentType: 'text/plain', userMeta: { a: 'b' } });
  const data = [randomBytes(MIN + 5), randomBytes(MIN), randomBytes(17)];
  const p3 = await svc.uploadPart('bkt', 'big/file.bin', up.uploadId, 3, [data[2]!]);
  const first2 = await svc.uploadPart('bkt', 'big/file.bin', up.uploadId, 2, [randomBytes(MIN)]);
  const p1 = await svc.uploadPart('bkt', 'big/file.bin', up.uploadId, 1, [data[0]!]);
  const p2 = await svc.uploadPart('bkt', 'big/file.bin', up.uploadId, 2, [data[1]!]);
  assert.equal(p1.etag, createHash('md5').update(data[0]!).digest('hex'));
  const listed = await svc.listParts('bkt', 'big/file.bin', up.uploadId);
  assert.deepEqual(listed.parts.map((p) => [p.partNumber, p.etag]), [[1, p1.etag], [2, p2.etag], [3, p3.etag]]);
  // The first upload of part 2 is no longer the part: its ETag is refused.
  await assert.rejects(svc.complete('bkt', 'big/file.bin', up.uploadId, [{ partNumber: 1, etag: p1.etag }, { partNumber: 2, etag: first2.etag }, { partNumber: 3, etag: p3.etag }]), faultOf('invalid-part'));
  const done = await svc.complete('bkt', 'big/file.bin', up.uploadId, [{ partNumber: 1, etag: `"${p1.etag}"` }, { partNumber: 2, etag: p2.etag }, { partNumber: 3, etag: p3.etag }]);
  assert.equal(done.etag, multipartEtag([p1.etag, p2.etag, p3.etag]));
  assert.match(done.etag, /^[0-9a-f]{32}-3$/);
  assert.equal(done.size, data.reduce((n, d) => n + d.length, 0));
  assert.ok(read('bkt', 'big/file.bin').equals(Buffer.concat(data)));
  assert.equal(records.get('bkt/big/file.bin')!.contentType, 'text/plain');
  assert.deepEqual(removed, [first2.fileId], 'only the superseded upload of part 2 was removed');
  // The same completion repeated (a retry after a lost answer) answers the same; another list finds no upload.
  const again = await svc.complete('bkt', 'big/file.bin', up.uploadId, [{ partNumber: 1, etag: `"${p1.etag}"` }, { partNumber: 2, etag: p2.etag }, { partNumber: 3, etag: p3.etag }]);
  assert.equal(again.etag, done.etag);
  assert.equal(again.fileId, done.fileId);
  await assert.rejects(svc.complete('bkt', 'big/file.bin', up.uploadId, [{ partNumber: 1, etag: p1.etag }]), faultOf('no-such-upload'));
  assert.deepEqual((await svc.listUploads('bkt')).uploads, [], 'a completed upload is not listed');
  const second = await svc.partRange('bkt', 'big/file.bin', 2);
  assert.deepEqual([second.start, second.end, second.count], [MIN + 5, 2 * MIN + 4, 3]);
  await assert.rejects(svc.partRange('bkt', 'big/file.bin', 4), faultOf('invalid-part'));
  await assert.rejects(svc.listParts('bkt', 'big/file.bin', up.uploadId), faultOf('no-such-upload'));
  await assert.rejects(svc.uploadPart('bkt', 'big/file.bin', up.uploadId, 4, [Buffer.from('late')]), faultOf('no-such-upload'));
});

test('completion refuses out-of-order lists, unknown parts, small middle parts and unknown uploads', async (t) => {
  const { svc, initiator } = await setup(t);
  const up = await svc.create('bkt', 'k', { initiator });
  const a = await svc.uploadPart('bkt', 'k', up.uploadId, 1, [randomBytes(MIN - 1)]);
  const b = await svc.uploadPart('bkt', 'k', up.uploadId, 2, [randomBytes(10)]);
  await assert.rejects(svc.complete('bkt', 'k', up.uploadId, [{ partNumber: 2, etag: b.etag }, { partNumber: 1, etag: a.etag }]), faultOf('invalid-part-order'));
  await assert.rejects(svc.complete('bkt', 'k', up.uploadId, [{ partNumber: 1, etag: a.etag }, { partNumber: 3, etag: b.etag }]), faultOf('invalid-part'));
  await assert.rejects(svc.complete('bkt', 'k', up.uploadId, [{ partNumber: 1, etag: a.etag }, { partNumber: 2, etag: b.etag }]), faultOf('entity-too-small'));
  await assert.rejects(svc.complete('bkt', 'k', up.uploadId, []), faultOf('malformed'));
  await assert.rejects(svc.complete('bkt', 'k', 'f'.repeat(32), [{ partNumber: 1, etag: a.etag }]), faultOf('no-such-upload'));
  await assert.rejects(svc.complete('bkt', 'k', '../../etc', [{ partNumber: 1, etag: a.etag }]), faultOf('no-such-upload'));
  await assert.rejects(svc.create('nope', 'k', { initiator }), faultOf('no-such-bucket'));
  await assert.rejects(svc.uploadPart('bkt', 'k', up.uploadId, 0, [Buffer.from('x')]), (e: unknown) => isTesseraError(e, 'BAD_INPUT'));
  await assert.rejects(svc.uploadPart('bkt', 'k', up.uploadId, 10_001, [Buffer.from('x')]), (e: unknown) => isTesseraError(e, 'BAD_INPUT'));
  // A single small part is a whole object (the last part may be any size); a number listed twice counts once, by its later entry.
  const c = await svc.uploadPart('bkt', 'k', up.uploadId, 1, [Buffer.from('A')]);
  const done = await svc.complete('bkt', 'k', up.uploadId, [{ partNumber: 1, etag: a.etag }, { partNumber: 1, etag: c.etag }]);
  assert.equal(done.size, 1);
});

test('a part number uploaded too many times is refused; abort removes every part file', async (t) => {
  const { svc, removed, initiator } = await setup(t);
  const up = await svc.create('bkt', 'k', { initiator });
  const ids: string[] = [];
  for (let i = 0; i < MAX_PART_VERSIONS; i++) ids.push((await svc.uploadPart('bkt', 'k', up.uploadId, 7, [Buffer.from(`v${i}`)])).fileId);
  await assert.rejects(svc.uploadPart('bkt', 'k', up.uploadId, 7, [Buffer.from('again')]), (e: unknown) => isTesseraError(e, 'TOO_LARGE'));
  ids.push((await svc.uploadPart('bkt', 'k', up.uploadId, 8, [Buffer.from('x')])).fileId);
  await svc.abort('bkt', 'k', up.uploadId);
  assert.deepEqual([...removed].sort(), [...ids].sort());
  await assert.rejects(svc.abort('bkt', 'k', up.uploadId), faultOf('no-such-upload'));
});

test('uploads list in key order with markers and a prefix; parts list in pages', async (t) => {
  const { svc, initiator } = await setup(t);
  const made = [];
  for (const key of ['b/2', 'a', 'b/1', 'b/1', 'c']) made.push(await svc.create('bkt', key, { initiator }));
  const all = await svc.listUploads('bkt');
  assert.deepEqual(all.uploads.map((u) => u.key), ['a', 'b/1', 'b/1', 'b/2', 'c']);
  assert.equal(all.uploads[0]!.initiator.name, 'ana');
  const b1 = all.uploads.filter((u) => u.key === 'b/1');
  assert.deepEqual((await svc.listUploads('bkt', { prefix: 'b/' })).uploads.map((u) => u.key), ['b/1', 'b/1', 'b/2']);
  const page = await svc.listUploads('bkt', { limit: 2 });
  assert.equal(page.truncated, true);
  assert.deepEqual((await svc.listUploads('bkt', { keyMarker: 'b/1' })).uploads.map((u) => u.key), ['b/2', 'c']);
  assert.deepEqual((await svc.listUploads('bkt', { keyMarker: 'b/1', uploadIdMarker: b1[0]!.uploadId })).uploads.map((u) => u.uploadId), [b1[1]!.uploadId, made[0]!.uploadId, made[4]!.uploadId]);
  const up = made[1]!;
  for (const n of [5, 1, 3, 2, 4]) await svc.uploadPart('bkt', 'a', up.uploadId, n, [Buffer.from(`part${n}`)]);
  const p1 = await svc.listParts('bkt', 'a', up.uploadId, { limit: 2 });
  assert.deepEqual(p1.parts.map((p) => p.partNumber), [1, 2]);
  assert.equal(p1.truncated, true);
  const p2 = await svc.listParts('bkt', 'a', up.uploadId, { marker: p1.next!, limit: 2 });
  assert.deepEqual(p2.parts.map((p) => p.partNumber), [3, 4]);
  const p3 = await svc.listParts('bkt', 'a', up.uploadId, { marker: p2.next!, limit: 2 });
  assert.deepEqual(p3.parts.map((p) => p.partNumber), [5]);
  assert.equal(p3.truncated, false);
});

test('part copy stores the source range as the part; a part larger than announced is refused', async (t) => {
  const { svc, records, read, initiator } = await setup(t);
  const src = await svc.create('bkt', 'src', { initiator });
  const body = randomBytes(3000);
  const sp = await svc.uploadPart('bkt', 'src', src.uploadId, 1, [body]);
  await svc.complete('bkt', 'src', src.uploadId, [{ partNumber: 1, etag: sp.etag }]);
  assert.ok(records.has('bkt/src'));
  const up = await svc.create('bkt', 'dst', { initiator });
  const part = await svc.uploadPartCopy('bkt', 'dst', up.uploadId, 1, { bucket: 'bkt', key: 'src', range: { start: 100, end: 1199 } });
  assert.equal(part.size, 1100);
  assert.equal(part.etag, createHash('md5').update(body.subarray(100, 1200)).digest('hex'));
  await svc.complete('bkt', 'dst', up.uploadId, [{ partNumber: 1, etag: part.etag }]);
  assert.ok(read('bkt', 'dst').equals(body.subarray(100, 1200)));
  const up2 = await svc.create('bkt', 'dst2', { initiator });
  await assert.rejects(svc.uploadPart('bkt', 'dst2', up2.uploadId, 1, [randomBytes(10)], { expectedSize: 6 * 2 ** 30 }), (e: unknown) => isTesseraError(e, 'TOO_LARGE'));
});

test('the sweep aborts uploads left open past the abandon period and removes their parts; newer ones stay', async (t) => {
  let now = 1_000_000;
  const { svc, removed, initiator } = await setup(t, { abandonAfterMs: 60_000, now: () => now });
  const old = await svc.create('bkt', 'old', { initiator });
  const oldPart = await svc.uploadPart('bkt', 'old', old.uploadId, 1, [Buffer.from('x')]);
  now += 50_000;
  const fresh = await svc.create('bkt', 'fresh', { initiator });
  const freshPart = await svc.uploadPart('bkt', 'fresh', fresh.uploadId, 1, [Buffer.from('y')]);
  now += 20_000;
  assert.equal(await svc.sweep(), 1);
  assert.deepEqual(removed, [oldPart.fileId]);
  assert.deepEqual((await svc.listUploads('bkt')).uploads.map((u) => u.key), ['fresh']);
  now += 60_000;
  assert.equal(await svc.sweep(), 1);
  assert.deepEqual(removed, [oldPart.fileId, freshPart.fileId]);
  assert.equal(await svc.sweep(), 0);
});
