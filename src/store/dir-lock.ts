/**
 * One process per store directory: two writers would each derive usage at open and then drift.
 * A pid file is enough here (same host, same user); a lock left by a killed process is taken over
 * because its pid is no longer alive.
 */
import { open, readFile, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { TesseraError } from '../errors.js';
import { errnoOf, fsError } from './fs-util.js';

/** A pid file is a few digits; anything longer is not ours. */
const MAX_LOCK_FILE_BYTES = 64;
const heldHere = new Set<string>();

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return errnoOf(e) === 'EPERM';
  }
}

export interface DirLock {
  release(): Promise<void>;
}

export async function lockDir(dir: string, file: string): Promise<DirLock> {
  const path = join(dir, file);
  if (heldHere.has(path)) throw new TesseraError('CONFLICT', `${dir} is already open in this process; close it first`);
  try {
    const fh = await open(path, 'wx');
    try {
      await fh.writeFile(String(process.pid));
    } finally {
      await fh.close();
    }
  } catch (e) {
    if (errnoOf(e) !== 'EEXIST') throw fsError(e, `locking ${dir}`);
    let owner = NaN;
    try {
      const text = (await readFile(path)).subarray(0, MAX_LOCK_FILE_BYTES).toString('utf8').trim();
      if (/^\d{1,10}$/.test(text)) owner = Number(text);
    } catch (readErr) {
      if (errnoOf(readErr) !== 'ENOENT') throw fsError(readErr, `reading lock ${path}`);
    }
    if (Number.isInteger(owner) && owner !== process.pid && alive(owner)) {
      throw new TesseraError('CONFLICT', `${dir} is in use by process ${owner}; stop it or use another data dir`, { pid: owner });
    }
    const tmp = `${path}.${process.pid}`;
    try {
      const fh = await open(tmp, 'w');
      try {
        await fh.writeFile(String(process.pid));
      } finally {
        await fh.close();
      }
      await rename(tmp, path);
    } catch (e2) {
      throw fsError(e2, `taking over stale lock ${path}`);
    }
  }
  heldHere.add(path);
  return {
    async release() {
      heldHere.delete(path);
      try {
        await unlink(path);
      } catch (e) {
        if (errnoOf(e) !== 'ENOENT') throw fsError(e, `releasing lock ${path}`);
      }
    },
  };
}
