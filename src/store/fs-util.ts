/** Small filesystem helpers the disk engines share: durable directory updates and error mapping. */
import { mkdir } from 'node:fs/promises';
import { TesseraError } from '../errors.js';
import { errnoOf } from '../disk-io.js';
import { noSpace } from './chunk-store.js';

export { errnoOf };

/** ENOSPC and EDQUOT become NO_SPACE; everything else that is not already typed becomes IO. */
export function fsError(e: unknown, what: string): TesseraError {
  if (e instanceof TesseraError) return e;
  const code = errnoOf(e);
  if (code === 'ENOSPC' || code === 'EDQUOT') {
    return noSpace(`disk full while ${what}; free space on the data disk or lower the quota`, { errno: code }, e);
  }
  const msg = e instanceof Error ? e.message : String(e);
  return new TesseraError('IO', `${what} failed: ${msg}`, code ? { errno: code } : undefined, { cause: e });
}

/** fsync a directory so a rename, create or unlink inside it survives a power cut. */
export { syncDirectory } from '../disk-io.js';

/** mkdir that reports whether it created the directory, so the caller knows to sync the parent. */
export async function mkdirFresh(dir: string): Promise<boolean> {
  try {
    await mkdir(dir);
    return true;
  } catch (e) {
    if (errnoOf(e) === 'EEXIST') return false;
    throw e;
  }
}

/** Runs `fn` over `items` with at most `limit` in flight. */
export async function forEachLimited<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const item = items[next++] as T;
      await fn(item);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}
