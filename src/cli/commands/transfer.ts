/** What put and get share: file-system errors named for the user, and Ctrl-C as a clean stop. */
import { TesseraError, badInput } from '../../errors.js';
import type { ClientFlags } from '../context.js';

export interface CommonFlags extends ClientFlags {
  json?: boolean;
  quiet?: boolean;
}

export function ioError(err: unknown, what: string): TesseraError {
  const e = err as NodeJS.ErrnoException;
  switch (e?.code) {
    case 'ENOENT':
      return new TesseraError('NOT_FOUND', `${what}: no such file or directory`);
    case 'EACCES':
    case 'EPERM':
      return new TesseraError('IO', `${what}: permission denied`);
    case 'EISDIR':
      return badInput(`${what}: is a directory`);
    case 'ENOSPC':
      return new TesseraError('NO_SPACE', `${what}: no space left on the device`);
    default:
      return new TesseraError('IO', `${what}: ${e?.message ?? String(err)}`);
  }
}

/** Ctrl-C aborts the transfer (so temporary output is removed) instead of killing the process mid-write. */
export function abortOnInterrupt(): { signal: AbortSignal; interrupted: () => boolean; dispose: () => void } {
  const ctl = new AbortController();
  let hit = false;
  const onSig = () => {
    // A second Ctrl-C means now: the user no longer waits for a clean stop.
    if (hit) process.exit(130);
    hit = true;
    ctl.abort(new TesseraError('CANCELLED', 'interrupted'));
  };
  process.on('SIGINT', onSig);
  process.on('SIGTERM', onSig);
  return {
    signal: ctl.signal,
    interrupted: () => hit,
    dispose: () => {
      process.off('SIGINT', onSig);
      process.off('SIGTERM', onSig);
    },
  };
}

export function asTransferError(err: unknown, interrupted: boolean, what: string): TesseraError {
  if (interrupted) {
    return new TesseraError('CANCELLED', what === 'put' ? 'put interrupted: the file was not stored' : 'get interrupted: no output file was written');
  }
  if (err instanceof TesseraError) return err;
  const e = err as NodeJS.ErrnoException;
  if (e?.name === 'AbortError' && e.cause instanceof TesseraError) return e.cause;
  return new TesseraError('UNAVAILABLE', `${what} broke off: ${e?.message ?? String(err)}`);
}
