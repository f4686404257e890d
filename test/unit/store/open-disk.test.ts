import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chunk } from './contract.js';
import { detectDiskEngine, openDiskChunkStore, parseDiskEngine } from '../../../src/store/open-disk.js';
import { DiskChunkStore } from '../../../src/store/disk-store.js';
import { SegmentChunkStore } from '../../../src/store/segment-store.js';
import { isTesseraError } from '../../../src/errors.js';

const dirs: string[] = [];
async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'tessera-open-'));
  dirs.push(d);
  return d;
}
test.after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

test('engine names: the two engines parse, anything else is BAD_INPUT', () => {
  assert.equal(parseDiskEngine('segments'), 'segments');
  assert.equal(parseDiskEngine('files'), 'files');
  assert.throws(() => parseDiskEngine('lmdb'), (e) => isTesseraError(e, 'BAD_INPUT'));
});

test('a fresh data dir gets the segment engine', async () => {
  const root = await tempDir();
  const s = await openDiskChunkStore(root, undefined);
  assert.ok(s instanceof SegmentChunkStore);
  await s.close();
});

test('a data dir holding file-engine chunks keeps the file engine unless told otherwise', async () => {
  const root = await tempDir();
  const a = chunk(100);
  const files = await DiskChunkStore.open(root);
  await files.put(a.id, a.data);
  await files.close();
  assert.equal(await detectDiskEngine(root), 'files');
  const s = await openDiskChunkStore(root, undefined);
  try {
    assert.ok(s instanceof DiskChunkStore);
    assert.deepEqual(await s.get(a.id), a.data);
  } finally {
    await s.close();
  }
  const forced = await openDiskChunkStore(root, 'segments');
  assert.ok(forced instanceof SegmentChunkStore);
  await forced.close();
});
