/**
 * Where `tessera get` puts what it downloads: a file descriptor taking plain writes (a file being
 * made, or standard output when it is a file or /dev/null), or process.stdout (pipes, terminals).
 */
import { fdatasync, write } from 'node:fs';
import type { DownloadSink } from '../client/index.js';

/** Written bytes after which a background fdatasync starts, when the file is to be made durable. */
export const SYNC_AHEAD_BYTES = 32 << 20;

export interface FdSink extends DownloadSink {
  /** Resolves once the last background flush is done; rejects with its error if it failed. */
  flushed(): Promise<void>;
}

/**
 * Writes each piece at the descriptor's position (so an O_APPEND descriptor appends). With
 * `syncAhead`, written data is flushed in the background as the download goes, so the final
 * fsync waits only for the tail instead of the whole file.
 */
export function fdSink(fd: number, opts: { syncAhead?: boolean; onBytes?: (n: number) => void; writeError: (err: unknown) => Error }): FdSink {
  let unsynced = 0;
  let syncing: Promise<void> | undefined;
  let syncError: unknown;
  const startSync = () => {
    unsynced = 0;
    syncing = new Promise<void>((resolve) =>
      fdatasync(fd, (err) => {
        if (err) syncError ??= err;
        syncing = undefined;
        resolve();
      }),
    );
  };
  return {
    async write(piece: Buffer): Promise<void> {
      if (syncError !== undefined) throw opts.writeError(syncError);
      try {
        await writeAll(fd, piece);
      } catch (err) {
        throw opts.writeError(err);
      }
      opts.onBytes?.(piece.length);
      unsynced += piece.length;
      if (opts.syncAhead && !syncing && unsynced >= SYNC_AHEAD_BYTES) startSync();
    },
    async flushed(): Promise<void> {
      await syncing;
      if (syncError !== undefined) throw opts.writeError(syncError);
    },
  };
}

/** Writes each piece to a stream; a piece is done once the stream has handed it to the system. */
export function streamSink(stream: NodeJS.WritableStream, onBytes?: (n: number) => void): DownloadSink {
  return {
    write: (piece: Buffer) =>
      new Promise<void>((resolve, reject) => {
        stream.write(piece, (err?: Error | null) => {
          if (err) return reject(err);
          onBytes?.(piece.length);
          resolve();
        });
      }),
  };
}

/** One write, repeated for what a short write left over. */
function writeAll(fd: number, piece: Buffer): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const step = (at: number) =>
      write(fd, piece, at, piece.length - at, null, (err, n) => {
        if (err) return reject(err);
        if (n === 0) return reject(Object.assign(new Error('the write made no progress'), { code: 'EIO' }));
        if (at + n < piece.length) return step(at + n);
        resolve();
      });
    step(0);
  });
}
