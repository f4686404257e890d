/** Pieces both disk engines share: the quarantine directory and the free-space reading behind `usage()`. */
import { statfsSync } from 'node:fs';
import { readdir, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { checkChunkId } from './chunk-store.js';
import { errnoOf, fsError, syncDirectory } from './fs-util.js';

export const HEX_ID = /^[0-9a-f]{64}$/;
/** usage() is synchronous and may be polled often; free space is re-read at most this often. */
const FREE_SPACE_REFRESH_MS = 500;

/** Ids of the bad copies kept aside in `dir` (one file per chunk, named by its hex id). */
export async function* listQuarantineDir(dir: string): AsyncIterable<Buffer> {
  for (const name of await readdir(dir)) {
    if (HEX_ID.test(name)) yield Buffer.from(name, 'hex');
  }
}

/** Drops a quarantined copy for good (after repair); false when there was none. */
export async function purgeFromQuarantineDir(dir: string, id: Buffer): Promise<boolean> {
  checkChunkId(id);
  try {
    await unlink(join(dir, id.toString('hex')));
    await syncDirectory(dir);
    return true;
  } catch (e) {
    if (errnoOf(e) === 'ENOENT') return false;
    throw fsError(e, `purging quarantined chunk ${id.toString('hex')}`);
  }
}

/** Free bytes on the filesystem holding `root`, cached briefly. */
export class FreeSpace {
  #free = 0;
  #at = -Infinity;

  constructor(private readonly root: string) {}

  bytes(): number {
    const now = Date.now();
    if (now - this.#at > FREE_SPACE_REFRESH_MS) {
      try {
        const fs = statfsSync(this.root);
        this.#free = fs.bavail * fs.bsize;
      } catch {
        // Keep the last figure: usage() must not throw for a transient statfs failure.
      }
      this.#at = now;
    }
    return this.#free;
  }
}
