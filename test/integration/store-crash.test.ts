/**
 * kill -9 a process in the middle of writing chunks (either disk engine), then reopen its store: only whole,
 * verifiable chunks are visible, every acknowledged put is there, no temp file remains and the
 * usage derived at open matches what is on disk.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomInt } from 'node:crypto';
import { DiskChunkStore } from '../../src/store/disk-store.js';
import { SegmentChunkStore } from '../../src/store/segment-store.js';
import { type ChunkStore, chunkIdOf } from '../../src/store/chunk-store.js';

const ROUNDS = 4;
const ROUND_TIMEOUT_MS = 30_000;

const fromSource = import.meta.url.endsWith('.ts');
const helper = fileURLToPath(new URL(`../helpers/store-crash-writer.${fromSource ? 'ts' : 'js'}`, import.meta.url));

/** Runs the writer until it has acknowledged some operations, then SIGKILLs it at a random moment. */
function runAndKill(root: string, engine: Engine): Promise<{ stored: Set<string>; deleted: Set<string>; compactions: number }> {
  return new Promise((resolve, reject) => {
    const args = fromSource ? ['--import', 'tsx', helper, root, engine] : [helper, root, engine];
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const stored = new Set<string>();
    const deleted = new Set<string>();
    let compactions = 0;
    let buffered = '';
    let stderr = '';
    let killTimer: NodeJS.Timeout | undefined;
    const guard = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`writer did not get going within ${ROUND_TIMEOUT_MS} ms: ${stderr}`));
    }, ROUND_TIMEOUT_MS);
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdout.on('data', (d: Buffer) => {
      buffered += d.toString();
      const lines = buffered.split('\n');
      buffered = lines.pop() ?? '';
      for (const line of lines) {
        if (line === 'ready') {
          killTimer = setTimeout(() => child.kill('SIGKILL'), randomInt(100, 700));
        } else if (line.startsWith('+')) {
          stored.add(line.slice(1));
          deleted.delete(line.slice(1));
        } else if (line.startsWith('~')) {
          // May or may not be gone: the kill can land between the unlink and its acknowledgement.
          stored.delete(line.slice(1));
        } else if (line.startsWith('#compacted ')) {
          compactions += Number(line.slice('#compacted '.length));
        } else if (line.startsWith('-')) {
          stored.delete(line.slice(1));
          deleted.add(line.slice(1));
        }
      }
    });
    child.on('exit', (code, signal) => {
      clearTimeout(guard);
      if (killTimer) clearTimeout(killTimer);
      if (signal === 'SIGKILL') resolve({ stored, deleted, compactions });
      else reject(new Error(`writer exited on its own (code ${code}) before being killed: ${stderr}`));
    });
  });
}

type Engine = 'files' | 'segments';

async function reopen(root: string, engine: Engine): Promise<ChunkStore> {
  if (engine === 'files') return DiskChunkStore.open(root);
  return SegmentChunkStore.open(root, { autoCompact: false });
}

for (const engine of ['files', 'segments'] as const) test(`${engine} store survives kill -9 mid-write: whole chunks only, acknowledged puts and deletes kept, usage right`, async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'tessera-crash-'));
  try {
    const everStored = new Set<string>();
    for (let round = 0; round < ROUNDS; round++) {
      const { stored, deleted, compactions } = await runAndKill(root, engine);
      for (const id of stored) everStored.add(id);
      const store = await reopen(root, engine);
      try {
        if (engine === 'files') assert.deepEqual(await readdir(join(root, 'chunks.tmp')), [], 'temp files remain after open');
        else assert.deepEqual((await readdir(join(root, 'segments.quarantine'))).filter((n) => n.endsWith('.tmp')), [], 'temp files remain after open');
        let used = 0;
        let count = 0;
        const present = new Set<string>();
        for await (const id of store.list()) {
          const data = await store.get(id); // throws CORRUPT on a torn chunk
          assert.ok(chunkIdOf(data).equals(id));
          used += data.length;
          count++;
          present.add(id.toString('hex'));
        }
        for (const id of stored) assert.ok(present.has(id), `acknowledged chunk ${id} is missing`);
        for (const id of deleted) assert.ok(!present.has(id), `acknowledged delete of ${id} was undone`);
        assert.equal(store.usage().used, used);
        assert.equal(store.usage().count, count);
        t.diagnostic(`round ${round}: ${stored.size} acknowledged live chunks, ${count} present, ${used} bytes, ${compactions} segments compacted`);
        const quarantined: Buffer[] = [];
        for await (const id of store.listQuarantined()) quarantined.push(id);
        assert.deepEqual(quarantined, []);
      } finally {
        await store.close();
      }
    }
    assert.ok(everStored.size > 0, 'the writer never acknowledged a put');
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});
