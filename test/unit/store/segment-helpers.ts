/** Segment-engine test helpers: its files, and a rotten byte in one of them. */
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseSegmentFileName } from '../../../src/store/segment-format.js';
import type { SegmentChunkStore } from '../../../src/store/segment-store.js';

export async function segmentFiles(root: string): Promise<string[]> {
  return (await readdir(join(root, 'segments'))).filter((n) => parseSegmentFileName(n) !== undefined).sort();
}

/** Flips one byte of `data` wherever it sits in the segment files. */
export async function rotData(root: string, data: Buffer): Promise<void> {
  for (const name of await segmentFiles(root)) {
    const p = join(root, 'segments', name);
    const bytes = await readFile(p);
    const at = bytes.indexOf(data.subarray(0, Math.min(32, data.length)));
    if (at >= 0) {
      bytes[at + 7] = (bytes[at + 7] ?? 0) ^ 1;
      await writeFile(p, bytes);
      return;
    }
  }
  throw new Error('chunk data not found in any segment');
}

/** The contract's `rot` for a segment store: it rots a chunk it just stored, found through a read. */
export async function rotStored(s: unknown, id: Buffer): Promise<void> {
  const store = s as SegmentChunkStore;
  await rotData(store.root, await store.get(id));
}
