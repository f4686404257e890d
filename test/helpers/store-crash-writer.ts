/**
 * Child process for the store crash test: opens a disk chunk store of the engine named by its
 * second argument (`files` or `segments`) and writes (and sometimes
 * deletes) chunks with a few puts in flight until killed, printing one line per completed
 * operation ("+hex" stored, "~hex" about to be deleted, "-hex" deleted, "#…" a note) so the parent knows what was acknowledged.
 * Bounded: stops by itself after MAX_OPS operations or MAX_RUN_MS.
 */
import { randomBytes, randomInt } from 'node:crypto';
import { DiskChunkStore } from '../../src/store/disk-store.js';
import { SegmentChunkStore } from '../../src/store/segment-store.js';
import { chunkIdOf } from '../../src/store/chunk-store.js';

const MAX_OPS = 20_000;
const MAX_RUN_MS = 30_000;
const IN_FLIGHT = 4;
const MAX_SIZE = 256 << 10;

/** Small segments, so a run crosses segment boundaries and the kill can land during a roll. */
const SEGMENT_BYTES = 4 << 20;
const COMPACT_EVERY_MS = 50;

async function main(root: string, engine: string): Promise<void> {
  const store =
    engine === 'segments'
      ? await SegmentChunkStore.open(root, { segmentBytes: SEGMENT_BYTES, compactBelow: 0.9, compactionBytesPerSecond: 256 << 20 })
      : await DiskChunkStore.open(root);
  // Compaction is asked for often, so kills also land while it copies records and drops segments.
  const compactor =
    store instanceof SegmentChunkStore
      ? setInterval(() => {
          store.compact().then(
            (r) => r.segments > 0 && process.stdout.write(`#compacted ${r.segments}\n`),
            () => undefined,
          );
        }, COMPACT_EVERY_MS)
      : undefined;
  process.stdout.write('ready\n');
  const deadline = Date.now() + MAX_RUN_MS;
  let ops = 0;
  const stored: Buffer[] = [];
  const worker = async (): Promise<void> => {
    while (ops < MAX_OPS && Date.now() < deadline) {
      ops++;
      if (stored.length > 4 && randomInt(8) === 0) {
        const id = stored.splice(randomInt(stored.length), 1)[0]!;
        // Announced first: the kill may land after the unlink but before the acknowledgement.
        process.stdout.write(`~${id.toString('hex')}\n`);
        if (await store.delete(id)) process.stdout.write(`-${id.toString('hex')}\n`);
        continue;
      }
      const data = randomBytes(randomInt(1, MAX_SIZE));
      const id = chunkIdOf(data);
      await store.put(id, data);
      stored.push(id);
      process.stdout.write(`+${id.toString('hex')}\n`);
    }
  };
  await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
  clearInterval(compactor);
  await store.close();
}

// `node --test dist/test/` also loads this file; without arguments it has nothing to do.
const root = process.argv[2];
if (root !== undefined) {
  main(root, process.argv[3] ?? 'files').catch((e: unknown) => {
    process.stderr.write(`${e instanceof Error ? e.stack : String(e)}\n`);
    process.exit(1);
  });
}
