/**
 * Where `tessera get` puts what it downloads: a file being made (-o), a descriptor taking plain
 * writes at its own position (standard output when it is a file or /dev/null), or process.stdout
 * (pipes, terminals).
 */
import { write } from 'node:fs';
import type { DownloadSink } from '../client/index.js';

/**
 * Largest single write into a file. The download hands over 4 MiB batches; written whole, each
 * put that much into the page cache in one call, and on the development machine's kernel (6.18,
 * ext4, KVM) such writes cost 0.04–0.5 s of system time per 256 MiB and up to 1.5 s of wall time,
 * with `dd bs=4M` alike, where 256 KiB writes cost a steady 0.04–0.09 s. Smaller than this, the
 * per-write round trip through libuv's thread pool starts to show.
 */
export const FILE_WRITE_BYTES = 256 << 10;

interface SinkOptions {
  onBytes?: (n: number) => void;
  writeError: (err: unknown) => Error;
}

/**
 * Writes a file this process made and owns, from offset `at`: each batch as FILE_WRITE_BYTES
 * pieces at their own offsets, all in flight at once, so the thread pool copies them into the
 * page cache side by side. Flushing to the disk is the caller's, once: fdatasync every few tens of
 * MiB during the download, tried to overlap the flush with the network, made gets slower on a
 * busy disk than one fsync at the end.
 */
export function fileSink(fd: number, at: number, opts: SinkOptions): DownloadSink {
  let next = at;
  return {
    async write(piece: Buffer): Promise<void> {
      const start = next;
      next += piece.length;
      const writes: Promise<void>[] = [];
      for (let off = 0; off < piece.length; off += FILE_WRITE_BYTES) {
        writes.push(writeAll(fd, piece.subarray(off, off + FILE_WRITE_BYTES), start + off));
      }
      // Every write ends before a failure is told: the caller may close the descriptor next.
      const failed = (await Promise.allSettled(writes)).find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed) throw opts.writeError(failed.reason);
      opts.onBytes?.(piece.length);
    },
  };
}

/**
 * Writes each piece at the descriptor's own position (so an O_APPEND descriptor appends), in
 * order, at most `maxWriteBytes` per call: FILE_WRITE_BYTES for a regular file, a whole piece
 * for a device such as /dev/null.
 */
export function fdSink(fd: number, maxWriteBytes: number, opts: SinkOptions): DownloadSink {
  return {
    async write(piece: Buffer): Promise<void> {
      try {
        for (let off = 0; off < piece.length; off += maxWriteBytes) await writeAll(fd, piece.subarray(off, off + maxWriteBytes), null);
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

/** One write at `position` (null: the descriptor's own), repeated for what a short write left over. */
function writeAll(fd: number, piece: Buffer, position: number | null): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const step = (at: number) =>
      write(fd, piece, at, piece.length - at, position === null ? null : position + at, (err, n) => {
        if (err) return reject(err);
        if (n === 0) return reject(Object.assign(new Error('the write made no progress'), { code: 'EIO' }));
        if (at + n < piece.length) return step(at + n);
        resolve();
      });
    step(0);
  });
}
