/**
 * Where `tessera get` puts what it downloads: a file descriptor taking plain writes (a file being
 * made, or standard output when it is a file or /dev/null), or process.stdout (pipes, terminals).
 */
import { write } from 'node:fs';
import type { DownloadSink } from '../client/index.js';

/**
 * Writes each piece at the descriptor's position (so an O_APPEND descriptor appends). Flushing
 * to the disk is the caller's, once: fdatasync every few tens of MiB during the download, tried
 * to overlap the flush with the network, made gets slower on a busy disk than one fsync at the end.
 */
export function fdSink(fd: number, opts: { onBytes?: (n: number) => void; writeError: (err: unknown) => Error }): DownloadSink {
  return {
    async write(piece: Buffer): Promise<void> {
      try {
        await writeAll(fd, piece);
      } catch (err) {
        throw opts.writeError(err);
      }
      opts.onBytes?.(piece.length);
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
