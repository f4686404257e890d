import { randomBytes } from 'node:crypto';
import { Layout, MIN_MEMBERS, type LayoutKind } from '../../../src/block/volume/layout.js';
import { MemoryMember } from '../../../src/block/volume/memory-member.js';
import { MemoryBlobStorage, type BlobStorage, type LogStorage } from '../../../src/block/volume/storage.js';
import { StripedVolume } from '../../../src/block/volume/striped-volume.js';
import { MemoryVersionTable } from '../../../src/block/volume/version-table.js';

export const UNIT = 4096;
export const STRIPES = 12;

export interface Rig {
  layout: Layout;
  members: MemoryMember[];
  volume: StripedVolume;
  ref: Buffer;
  health: BlobStorage;
  intents: LogStorage;
}

export async function rig(kind: LayoutKind, opts: { members?: number; maxDelayMs?: number; timeoutMs?: number } = {}): Promise<Rig> {
  const n = opts.members ?? MIN_MEMBERS[kind] + 1;
  const layout = new Layout({ kind, members: n, unitSize: UNIT, memberSize: STRIPES * UNIT });
  const members = Array.from({ length: n }, (_, i) => new MemoryMember({ id: `m${i}`, size: layout.memberSize, unitSize: UNIT, maxDelayMs: opts.maxDelayMs ?? 0 }));
  const health = new MemoryBlobStorage();
  const intents = new MemoryBlobStorage();
  const volume = await StripedVolume.open({ layout, members, healthStorage: health, intentStorage: intents, memberTimeoutMs: opts.timeoutMs ?? 2_000 });
  return { layout, members, volume, ref: Buffer.alloc(layout.size), health, intents };
}

/** Writes and mirrors the write into the reference buffer. */
export async function put(r: Rig, offset: number, data: Buffer): Promise<void> {
  await r.volume.write(offset, data);
  data.copy(r.ref, offset);
}

export async function fill(r: Rig): Promise<void> {
  await put(r, 0, randomBytes(r.layout.size));
}

export const tolerance: Record<LayoutKind, number> = { raid0: 0, raid1: 2, raid5: 1, raid6: 2 };

/** A sealed volume's version storage (log and table) in memory; reopening with the same object is a restart. */
export function memoryVersionStorage(): { log: MemoryBlobStorage; table: MemoryVersionTable } {
  return { log: new MemoryBlobStorage(), table: new MemoryVersionTable() };
}
