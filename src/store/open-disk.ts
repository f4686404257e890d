/**
 * Picks the disk chunk engine for a data dir. Segments is the default (docs/storage.md has the
 * figures it was chosen by); a data dir that already holds chunks of one engine keeps using it,
 * since neither engine serves the other's files.
 */
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { badInput } from '../errors.js';
import type { Logger } from '../log.js';
import type { ChunkStore } from './chunk-store.js';
import { DiskChunkStore } from './disk-store.js';
import { errnoOf, fsError } from './fs-util.js';
import { SegmentChunkStore } from './segment-store.js';

export const DISK_ENGINES = ['segments', 'files'] as const;
export type DiskEngine = (typeof DISK_ENGINES)[number];
export const DEFAULT_DISK_ENGINE: DiskEngine = 'segments';

export function parseDiskEngine(text: string): DiskEngine {
  const e = DISK_ENGINES.find((x) => x === text);
  if (e === undefined) throw badInput(`store engine must be one of ${DISK_ENGINES.join(', ')}, got '${text}'`);
  return e;
}

async function entries(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (e) {
    if (errnoOf(e) === 'ENOENT') return [];
    throw fsError(e, `reading ${dir}`);
  }
}

/** The engine whose chunks `root` already holds, if any. */
export async function detectDiskEngine(root: string): Promise<DiskEngine | undefined> {
  if ((await entries(join(root, 'segments'))).some((n) => n.endsWith('.seg'))) return 'segments';
  if ((await entries(join(root, 'chunks'))).some((n) => /^[0-9a-f]{2}$/.test(n))) return 'files';
  return undefined;
}

export async function openDiskChunkStore(root: string, engine: DiskEngine | undefined, opts: { quota?: number; log?: Logger } = {}): Promise<ChunkStore> {
  const chosen = engine ?? (await detectDiskEngine(root)) ?? DEFAULT_DISK_ENGINE;
  const found = engine === undefined ? undefined : await detectDiskEngine(root);
  if (found !== undefined && found !== chosen) {
    opts.log?.warn({ engine: chosen, found }, `this data dir holds chunks of the ${found} engine, which the ${chosen} engine does not serve`);
  }
  return chosen === 'segments' ? SegmentChunkStore.open(root, opts) : DiskChunkStore.open(root, opts);
}
