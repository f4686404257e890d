/**
 * Looks at a node's chunks on disk from outside the node, whichever disk engine wrote them, so
 * tests can check what a node holds and rot a stored copy as bit rot would.
 */
import { open, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  RECORD_HEADER_BYTES,
  RecordKind,
  SEGMENT_HEADER_BYTES,
  decodeRecordHeader,
  decodeSegmentHeader,
  parseSegmentFileName,
} from '../../src/store/segment-format.js';

const HEX_ID = /^[0-9a-f]{64}$/;

async function names(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch {
    return [];
  }
}

/** Live records of the segment engine, replayed in log order: hex id → file and data offset. */
async function segmentIndex(dataDir: string): Promise<Map<string, { path: string; dataAt: number; len: number }>> {
  const index = new Map<string, { path: string; dataAt: number; len: number }>();
  const segs = (await names(join(dataDir, 'segments')))
    .map((n) => ({ n, seq: parseSegmentFileName(n) }))
    .filter((x): x is { n: string; seq: number } => x.seq !== undefined)
    .sort((a, b) => a.seq - b.seq);
  for (const { n, seq } of segs) {
    const path = join(dataDir, 'segments', n);
    const bytes = await readFile(path);
    const salt = decodeSegmentHeader(bytes, seq);
    if (salt === undefined) continue;
    let pos = SEGMENT_HEADER_BYTES;
    while (pos + RECORD_HEADER_BYTES <= bytes.length) {
      const h = decodeRecordHeader(salt, bytes.subarray(pos, pos + RECORD_HEADER_BYTES));
      if (h === undefined || pos + RECORD_HEADER_BYTES + h.length > bytes.length) break;
      const hex = h.id.toString('hex');
      if (h.kind === RecordKind.Put) index.set(hex, { path, dataAt: pos + RECORD_HEADER_BYTES, len: h.length });
      else index.delete(hex);
      pos += RECORD_HEADER_BYTES + h.length;
    }
  }
  return index;
}

async function walkIds(dir: string, out: Set<string>): Promise<void> {
  for (const e of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
    if (e.isDirectory()) await walkIds(join(dir, e.name), out);
    else if (HEX_ID.test(e.name)) out.add(e.name);
  }
}

/** Hex ids of the chunks stored under a node's data dir (either engine). */
export async function storedChunkIds(dataDir: string): Promise<Set<string>> {
  const out = new Set<string>(await segmentIndex(dataDir).then((m) => [...m.keys()]));
  await walkIds(join(dataDir, 'chunks'), out);
  return out;
}

/** Hex ids with a quarantined copy under a node's data dir (either engine). */
export async function quarantinedChunkIds(dataDir: string): Promise<Set<string>> {
  const out = new Set<string>();
  for (const d of ['chunks.quarantine', 'segments.quarantine']) for (const n of await names(join(dataDir, d))) if (HEX_ID.test(n)) out.add(n);
  return out;
}

/** Flips one byte of the stored copy of `hex`; false when this data dir holds no copy. */
export async function rotStoredChunk(dataDir: string, hex: string, at = 7): Promise<boolean> {
  const seg = (await segmentIndex(dataDir)).get(hex);
  const target = seg
    ? { path: seg.path, pos: seg.dataAt + Math.min(at, Math.max(seg.len - 1, 0)), len: seg.len }
    : { path: join(dataDir, 'chunks', hex.slice(0, 2), hex.slice(2, 4), hex), pos: at, len: 1 };
  if (target.len === 0) return false;
  let fh;
  try {
    fh = await open(target.path, 'r+');
  } catch {
    return false;
  }
  try {
    const b = Buffer.alloc(1);
    const { bytesRead } = await fh.read(b, 0, 1, target.pos);
    if (bytesRead === 0) return false;
    b[0] = (b[0] ?? 0) ^ 1;
    await fh.write(b, 0, 1, target.pos);
    return true;
  } finally {
    await fh.close();
  }
}
