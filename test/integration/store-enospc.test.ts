/**
 * A real full disk: a 1 MiB tmpfs. Needs permission to mount (root in a container); skipped
 * otherwise, since no other way makes the kernel return ENOSPC.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { DiskChunkStore } from '../../src/store/disk-store.js';
import { SegmentChunkStore } from '../../src/store/segment-store.js';
import { chunkIdOf } from '../../src/store/chunk-store.js';
import { isTesseraError } from '../../src/errors.js';

const FS_BYTES = 1 << 20;
const CHUNK = 200 << 10;
/** 1 MiB cannot hold more than 5 chunks of 200 KiB: the loop must hit the wall well before this. */
const MAX_PUTS = 20;

async function withTinyFs(fn: (dir: string) => Promise<void>): Promise<boolean> {
  const dir = await mkdtemp(join(tmpdir(), 'tessera-full-'));
  try {
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${FS_BYTES}`, 'tmpfs', dir], { stdio: 'ignore' });
    } catch {
      return false;
    }
    try {
      await fn(dir);
    } finally {
      execFileSync('umount', [dir], { stdio: 'ignore' });
    }
    return true;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test('disk full: a put gets NO_SPACE, leaves no partial file, and the store stays consistent', async (t) => {
  const ran = await withTinyFs(async (dir) => {
    const s = await DiskChunkStore.open(dir);
    try {
      assert.ok(s.usage().capacity <= FS_BYTES, `capacity ${s.usage().capacity} exceeds the filesystem`);
      const stored: Buffer[] = [];
      let failure: unknown;
      for (let i = 0; i < MAX_PUTS; i++) {
        const data = randomBytes(CHUNK);
        try {
          await s.put(chunkIdOf(data), data);
          stored.push(data);
        } catch (e) {
          failure = e;
          break;
        }
      }
      assert.ok(isTesseraError(failure, 'NO_SPACE'), `expected NO_SPACE, got ${String(failure)}`);
      assert.match((failure as Error).message, /disk full/);
      assert.ok(stored.length > 0 && stored.length < MAX_PUTS);
      assert.deepEqual(await readdir(join(dir, 'chunks.tmp')), []);
      const listed: string[] = [];
      for await (const id of s.list()) listed.push(id.toString('hex'));
      assert.deepEqual(listed.sort(), stored.map((d) => chunkIdOf(d).toString('hex')).sort());
      for (const d of stored) assert.deepEqual(await s.get(chunkIdOf(d)), d);
      assert.equal(s.usage().used, stored.length * CHUNK);
      // Freeing space makes room again.
      await s.delete(chunkIdOf(stored[0]!));
      const again = randomBytes(CHUNK);
      assert.equal(await s.put(chunkIdOf(again), again), true);
    } finally {
      await s.close();
    }
  });
  if (!ran) t.skip('cannot mount a tmpfs here (needs root)');
});

test('segments, disk full: a put gets NO_SPACE, no partial record survives a reopen, and compaction makes room again', async (t) => {
  // One chunk per segment, so a deleted chunk's segment can be dropped whole by compaction.
  const opts = { segmentBytes: CHUNK + (8 << 10), autoCompact: false };
  const ran = await withTinyFs(async (dir) => {
    let s = await SegmentChunkStore.open(dir, opts);
    const stored: Buffer[] = [];
    try {
      let failure: unknown;
      for (let i = 0; i < MAX_PUTS; i++) {
        const data = randomBytes(CHUNK);
        try {
          await s.put(chunkIdOf(data), data);
          stored.push(data);
        } catch (e) {
          failure = e;
          break;
        }
      }
      assert.ok(isTesseraError(failure, 'NO_SPACE'), `expected NO_SPACE, got ${String(failure)}`);
      assert.match((failure as Error).message, /disk full/);
      assert.ok(stored.length > 0 && stored.length < MAX_PUTS);
      assert.equal(s.usage().used, stored.length * CHUNK);
    } finally {
      await s.close();
    }
    s = await SegmentChunkStore.open(dir, opts);
    try {
      const listed: string[] = [];
      for await (const id of s.list()) listed.push(id.toString('hex'));
      assert.deepEqual(listed.sort(), stored.map((d) => chunkIdOf(d).toString('hex')).sort());
      for (const d of stored) assert.deepEqual(await s.get(chunkIdOf(d)), d);
      assert.equal(s.usage().used, stored.length * CHUNK);
      await s.delete(chunkIdOf(stored[0]!));
      const { segments } = await s.compact();
      assert.ok(segments > 0, 'compaction dropped no segment');
      const again = randomBytes(CHUNK);
      assert.equal(await s.put(chunkIdOf(again), again), true);
      assert.deepEqual(await s.get(chunkIdOf(again)), again);
    } finally {
      await s.close();
    }
  });
  if (!ran) t.skip('cannot mount a tmpfs here (needs root)');
});
