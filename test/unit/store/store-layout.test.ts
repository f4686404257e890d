import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chunk } from './contract.js';
import { openDiskChunkStore } from '../../../src/store/open-disk.js';
import { isTesseraError } from '../../../src/errors.js';
import { quarantinedChunkIds, rotStoredChunk, storedChunkIds } from '../../helpers/store-layout.js';

for (const engine of ['segments', 'files'] as const) {
  test(`store-layout helper reads and rots ${engine} data dirs from outside the store`, async () => {
    const root = await mkdtemp(join(tmpdir(), 'tessera-layout-'));
    try {
      const s = await openDiskChunkStore(root, engine);
      const [a, b, c] = [chunk(3000), chunk(40), chunk(500)];
      for (const x of [a, b, c]) await s.put(x.id, x.data);
      await s.delete(b.id);
      assert.deepEqual([...(await storedChunkIds(root))].sort(), [a, c].map((x) => x.id.toString('hex')).sort());
      assert.equal(await rotStoredChunk(root, b.id.toString('hex')), false);
      assert.equal(await rotStoredChunk(root, a.id.toString('hex')), true);
      await assert.rejects(s.get(a.id), (e) => isTesseraError(e, 'CORRUPT'));
      assert.deepEqual([...(await quarantinedChunkIds(root))], [a.id.toString('hex')]);
      assert.deepEqual(await s.get(c.id), c.data);
      await s.close();
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
}
