/**
 * Disk chunk engines (files: one file per chunk; segments: append-only segment files with group
 * commit) against plain fsynced writes measured in the same run.
 *   npm run bench -- store [--mb MB] [--rounds R] [--concurrency C] [--dir DIR] [--sizes 1048576,262144]
 * Baseline: the same bytes appended to one file with an fdatasync after each chunk, one at a time
 * (what a store that makes each chunk durable before the next cannot beat without batching).
 * Ceiling: one file, one fsync at the end. For each chunk size and engine: puts with 1 and C in
 * flight into a fresh store, verified gets with C in flight (from the page cache: the chunks were
 * just written), and the time to reopen the store.
 */
import { mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { DiskChunkStore } from '../src/store/disk-store.js';
import { SegmentChunkStore } from '../src/store/segment-store.js';
import { chunkIdOf } from '../src/store/chunk-store.js';
import type { ChunkStore } from '../src/store/chunk-store.js';
import { median } from './bench-stats.js';
import { intArg as arg } from './cli-args.js';
import { pool, timed } from './bench-run.js';

const ENGINES: Record<string, (dir: string) => Promise<ChunkStore>> = {
  files: (dir) => DiskChunkStore.open(dir),
  segments: (dir) => SegmentChunkStore.open(dir),
};

const BASELINE = 'baseline: one file, fdatasync per chunk, 1 at a time';

export async function main(args: string[]): Promise<void> {
  const mb = arg(args, '--mb', 32);
  const rounds = arg(args, '--rounds', 3);
  const concurrency = arg(args, '--concurrency', 32);
  const sizesArg = args.indexOf('--sizes');
  const sizes = (sizesArg >= 0 ? (args[sizesArg + 1] ?? '') : `${1 << 20},${256 << 10}`).split(',').map(Number);
  if (sizes.some((s) => !Number.isSafeInteger(s) || s <= 0)) throw new Error('--sizes must list positive integers');
  const dirArg = args.indexOf('--dir');
  const base = await mkdtemp(join(dirArg >= 0 ? (args[dirArg + 1] ?? tmpdir()) : tmpdir(), 'tessera-bench-store-'));
  process.stdout.write(`store: ${mb} MB per case, ${concurrency} in flight for the parallel cases, in ${base}\n`);
  try {
    for (const size of sizes) {
      const count = Math.max(1, Math.floor((mb * 1e6) / size));
      // Distinct chunks, made before timing; ids hashed up front so only storage is measured.
      const chunks = Array.from({ length: count }, () => {
        const data = randomBytes(size);
        return { id: chunkIdOf(data), data };
      });
      const total = count * size;
      // The machine is shared: every case runs once per round, interleaved, and the median is kept.
      const times = new Map<string, number[]>();
      const record = (label: string, s: number) => times.set(label, [...(times.get(label) ?? []), s]);
      let n = 0;
      for (let round = 0; round < rounds; round++) {
        record(
          BASELINE,
          await timed(async () => {
            const fh = await open(join(base, `baseline-${size}`), 'w');
            let pos = 0;
            for (const c of chunks) {
              await fh.write(c.data, 0, c.data.length, pos);
              pos += c.data.length;
              await fh.datasync();
            }
            await fh.close();
          }),
        );
        record(
          'ceiling: one file, one fsync at the end',
          await timed(async () => {
            const fh = await open(join(base, `ceiling-${size}`), 'w');
            for (const c of chunks) await fh.write(c.data);
            await fh.sync();
            await fh.close();
          }),
        );
        await rm(join(base, `baseline-${size}`), { force: true });
        await rm(join(base, `ceiling-${size}`), { force: true });
        for (const [engine, openStore] of Object.entries(ENGINES)) {
          for (const c of [1, concurrency]) {
            const dir = join(base, `${engine}-${n++}`);
            let store = await openStore(dir);
            record(`${engine} put, ${c} in flight`, await timed(() => pool(count, c, async (i) => void (await store.put(chunks[i]!.id, chunks[i]!.data)))));
            if (c === concurrency) {
              record(`${engine} get (verified), ${c} in flight`, await timed(() => pool(count, c, async (i) => void (await store.get(chunks[i]!.id)))));
              record(
                `${engine} reopen`,
                await timed(async () => {
                  await store.close();
                  store = await openStore(dir);
                }),
              );
            }
            await store.close();
            await rm(dir, { recursive: true, force: true });
          }
        }
      }
      const baseline = median(times.get(BASELINE)!);
      process.stdout.write(`\n${count} chunks × ${size} bytes (${(total / 1e6).toFixed(0)} MB), median of ${rounds} rounds\n`);
      for (const [label, all] of times) {
        const s = median(all);
        if (label.endsWith('reopen')) {
          process.stdout.write(`  ${`${label} (index ${count} chunks)`.padEnd(52)} ${(s * 1000).toFixed(1).padStart(6)} ms\n`);
          continue;
        }
        const perSec = (count / s).toFixed(0).padStart(6);
        process.stdout.write(`  ${label.padEnd(52)} ${(total / s / 1e6).toFixed(0).padStart(6)} MB/s ${perSec} chunks/s  ×${(baseline / s).toFixed(2)} baseline\n`);
      }
    }
  } finally {
    await rm(base, { recursive: true, force: true });
  }
}
