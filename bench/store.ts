/**
 * Disk chunk engine throughput against plain fsynced writes measured in the same run.
 *   npm run bench -- store [--count N] [--size BYTES] [--concurrency C] [--dir DIR]
 * Baselines: one file per chunk written and fsynced (no rename, no directory sync), and one
 * sequential file with a single fsync at the end (the disk's ceiling).
 */
import { mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { DiskChunkStore } from '../src/store/disk-store.js';
import { MemoryChunkStore } from '../src/store/memory-store.js';
import { chunkIdOf } from '../src/store/chunk-store.js';
import type { ChunkStore } from '../src/store/chunk-store.js';

function arg(args: string[], name: string, def: number): number {
  const i = args.indexOf(name);
  const v = i >= 0 ? Number(args[i + 1]) : def;
  if (!Number.isSafeInteger(v) || v <= 0) throw new Error(`${name} must be a positive integer`);
  return v;
}

async function timed(fn: () => Promise<void>): Promise<number> {
  const t0 = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

async function pool(n: number, concurrency: number, fn: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(n, concurrency) }, async () => {
      while (next < n) await fn(next++);
    }),
  );
}

export async function main(args: string[]): Promise<void> {
  const count = arg(args, '--count', 200);
  const size = arg(args, '--size', 1 << 20);
  const concurrency = arg(args, '--concurrency', 8);
  const dirArg = args.indexOf('--dir');
  const base = await mkdtemp(join(dirArg >= 0 ? (args[dirArg + 1] ?? tmpdir()) : tmpdir(), 'tessera-bench-store-'));
  // Distinct chunks, made before timing; ids hashed up front so only storage is measured.
  const chunks = Array.from({ length: count }, () => {
    const data = randomBytes(size);
    return { id: chunkIdOf(data), data };
  });
  const total = count * size;
  const mbps = (s: number) => total / s / 1e6;
  const rows: Array<[string, number]> = [];
  try {
    const seq = await timed(async () => {
      const fh = await open(join(base, 'sequential'), 'w');
      for (const c of chunks) await fh.write(c.data);
      await fh.sync();
      await fh.close();
    });
    rows.push(['one file, one fsync (ceiling)', seq]);

    const plain = await timed(async () => {
      for (let i = 0; i < count; i++) {
        const fh = await open(join(base, `plain-${i}`), 'w');
        await fh.write(chunks[i]!.data);
        await fh.sync();
        await fh.close();
      }
    });
    rows.push(['file per chunk + fsync, sequential (baseline)', plain]);

    const plainPar = await timed(() =>
      pool(count, concurrency, async (i) => {
        const fh = await open(join(base, `plainp-${i}`), 'w');
        await fh.write(chunks[i]!.data);
        await fh.sync();
        await fh.close();
      }),
    );
    rows.push([`file per chunk + fsync, ${concurrency} in flight`, plainPar]);

    const run = async (label: string, store: ChunkStore, c: number) => {
      rows.push([`${label} put, ${c} in flight`, await timed(() => pool(count, c, async (i) => void (await store.put(chunks[i]!.id, chunks[i]!.data))))]);
    };
    let disk = await DiskChunkStore.open(join(base, 'store1'));
    await run('disk engine', disk, 1);
    await disk.close();
    disk = await DiskChunkStore.open(join(base, 'store2'));
    await run('disk engine', disk, concurrency);
    rows.push([`disk engine get (verified), ${concurrency} in flight`, await timed(() => pool(count, concurrency, async (i) => void (await disk.get(chunks[i]!.id))))]);
    const reopen = await timed(async () => {
      await disk.close();
      disk = await DiskChunkStore.open(join(base, 'store2'));
    });
    await disk.close();
    const mem = new MemoryChunkStore();
    await run('memory engine', mem, concurrency);
    await mem.close();

    process.stdout.write(`store: ${count} chunks × ${size} bytes (${(total / 1e6).toFixed(0)} MB) in ${base}\n`);
    for (const [label, s] of rows) {
      process.stdout.write(`  ${label.padEnd(50)} ${mbps(s).toFixed(0).padStart(6)} MB/s  ×${(plain / s).toFixed(2)} baseline\n`);
    }
    process.stdout.write(`  reopen (derive usage of ${count} chunks)              ${(reopen * 1000).toFixed(1)} ms\n`);
  } finally {
    await rm(base, { recursive: true, force: true });
  }
}
