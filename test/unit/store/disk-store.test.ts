import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm, writeFile, readFile, mkdir, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chunk, chunkStoreContract } from './contract.js';
import { DiskChunkStore } from '../../../src/store/disk-store.js';
import { isTesseraError } from '../../../src/errors.js';
import { MAX_CHUNK_BYTES } from '../../../src/limits.js';

const dirs: string[] = [];
async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'tessera-disk-'));
  dirs.push(d);
  return d;
}
test.after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

function pathOf(root: string, id: Buffer): string {
  const hex = id.toString('hex');
  return join(root, 'chunks', hex.slice(0, 2), hex.slice(2, 4), hex);
}

chunkStoreContract({
  name: 'disk',
  open: async (opts) => DiskChunkStore.open(await tempDir(), opts),
  rot: async (s, id) => {
    const p = pathOf((s as DiskChunkStore).root, id);
    const bytes = await readFile(p);
    bytes[7] = (bytes[7] ?? 0) ^ 1;
    await writeFile(p, bytes);
  },
});

test('disk: chunks land in a two-level sharded tree and nothing is left in tmp/', async () => {
  const root = await tempDir();
  const s = await DiskChunkStore.open(root);
  const a = chunk(1234);
  await s.put(a.id, a.data);
  assert.deepEqual(await readFile(pathOf(root, a.id)), a.data);
  assert.deepEqual(await readdir(join(root, 'chunks.tmp')), []);
  await s.close();
});

test('disk: usage, contents and quarantine survive a reopen', async () => {
  const root = await tempDir();
  let s = await DiskChunkStore.open(root, { quota: 1 << 20 });
  const chunks = Array.from({ length: 20 }, (_, i) => chunk(100 + i * 37));
  for (const c of chunks) await s.put(c.id, c.data);
  const first = chunks[0]!;
  await s.quarantine(first.id);
  const before = s.usage();
  await s.close();
  s = await DiskChunkStore.open(root, { quota: 1 << 20 });
  const after = s.usage();
  assert.equal(after.used, before.used);
  assert.equal(after.count, 19);
  assert.equal(after.quota, 1 << 20);
  for (const c of chunks.slice(1)) assert.deepEqual(await s.get(c.id), c.data);
  const q: string[] = [];
  for await (const id of s.listQuarantined()) q.push(id.toString('hex'));
  assert.deepEqual(q, [first.id.toString('hex')]);
  await s.close();
});

test('disk: open removes leftover temp files and ignores foreign files', async () => {
  const root = await tempDir();
  let s = await DiskChunkStore.open(root);
  const a = chunk(500);
  await s.put(a.id, a.data);
  await s.close();
  // What a crash mid-put leaves behind, plus junk a human might drop in the tree.
  await writeFile(join(root, 'chunks.tmp', `${a.id.toString('hex')}.1.0`), Buffer.alloc(100));
  await writeFile(join(root, 'chunks', 'README'), 'not a chunk');
  await mkdir(join(root, 'chunks', 'zz'), { recursive: true });
  s = await DiskChunkStore.open(root);
  assert.deepEqual(await readdir(join(root, 'chunks.tmp')), []);
  assert.equal(s.usage().used, 500);
  assert.equal(s.usage().count, 1);
  const listed: string[] = [];
  for await (const id of s.list()) listed.push(id.toString('hex'));
  assert.deepEqual(listed, [a.id.toString('hex')]);
  await s.close();
});

test('disk: an oversized file in the tree is quarantined at open, not counted or read', async () => {
  const root = await tempDir();
  let s = await DiskChunkStore.open(root);
  const a = chunk(10);
  await s.put(a.id, a.data);
  await s.close();
  await writeFile(pathOf(root, a.id), Buffer.alloc(MAX_CHUNK_BYTES + 1));
  s = await DiskChunkStore.open(root);
  assert.equal(s.usage().used, 0);
  assert.equal(await s.has(a.id), false);
  assert.equal((await stat(join(root, 'chunks.quarantine', a.id.toString('hex')))).size, MAX_CHUNK_BYTES + 1);
  await s.close();
});

test('disk: a second open of the same directory is refused while the first holds it', async () => {
  const root = await tempDir();
  const s = await DiskChunkStore.open(root);
  await assert.rejects(DiskChunkStore.open(root), (e) => isTesseraError(e, 'CONFLICT'));
  await s.close();
  const again = await DiskChunkStore.open(root);
  await again.close();
});

test('disk: a lock left by a dead process is taken over', async () => {
  const root = await tempDir();
  // PIDs are bounded by pid_max (at most 2^22 on Linux), so this one cannot be alive.
  await writeFile(join(root, 'chunks.lock'), '99999999');
  const s = await DiskChunkStore.open(root);
  assert.equal((await readFile(join(root, 'chunks.lock'), 'utf8')).trim(), String(process.pid));
  await s.close();
});
