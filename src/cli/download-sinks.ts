/**
 * Where `tessera get` puts what it downloads: a file being made (-o), a descriptor taking plain
 * writes at its own position (standard output when it is a file or /dev/null), or process.stdout
 * (pipes, terminals).
 */
import { write, writeSync } from 'node:fs';
import type { DownloadSink } from '../client/index.js';

/**
 * Largest single write into a file. The kernel gives a write a page-cache folio about as large as
 * the write; on the development machine (a KVM guest that returns free memory blocks of 8 MiB to
 * the host: page_reporting_order=11) 1 MiB writes after other processes had freed memory got
 * folios the host had to fault in again, and each get -o then cost 650–770 ms of system time where
 * curl (writes of 16–100 KiB) cost 220–300. With 128 KiB writes a get -o cost 190–210 ms in every
 * round; 64 KiB cost more user time in round trips through libuv's thread pool.
 */
export const FILE_WRITE_BYTES = 128 << 10;

interface SinkOptions {
  onBytes?: (n: number) => void;
  writeError: (err: unknown) => Error;
}

/**
 * Writes a file this process made and owns, from offset `at`. `write` continues where the last
 * piece ended; `writeAt` puts a piece where it belongs while other ranges of the file arrive (a
 * download in several ranges); `writeNow` continues where the last piece ended and returns once
 * it is written (a download in one request hands over each socket read so; no other write may be
 * in flight meanwhile). The writes go one at a time, in the order they were asked for:
 * ext4 lets one writer at a time into a file's page cache (the inode lock), so writes in flight
 * side by side gain nothing, and while one copy was slow (see FILE_WRITE_BYTES) the others spun
 * on that lock: 18 % of a slow get -o's samples (perf). Flushing to the disk is the caller's, once:
 * fdatasync every few tens of MiB during the download, tried to overlap the flush with the
 * network, made gets slower on a busy disk than one fsync at the end.
 */
export function fileSink(fd: number, at: number, opts: SinkOptions): DownloadSink {
  let next = 0;
  let queue: Promise<void> = Promise.resolve();
  const writeAt = async (piece: Buffer, offset: number): Promise<void> => {
    const mine = queue.then(async () => {
      for (let off = 0; off < piece.length; off += FILE_WRITE_BYTES) {
        await writeAll(fd, piece.subarray(off, off + FILE_WRITE_BYTES), at + offset + off);
      }
    });
    // A failed write fails its own piece; the pieces queued behind it still run, so that when
    // any failure is told no write is left in flight (the caller may close the descriptor next).
    queue = mine.catch(() => {});
    try {
      await mine;
    } catch (err) {
      throw opts.writeError(err);
    }
    opts.onBytes?.(piece.length);
  };
  return {
    write(piece: Buffer): Promise<void> {
      const offset = next;
      next += piece.length;
      return writeAt(piece, offset);
    },
    writeAt,
    writeNow(piece: Buffer): void {
      writeNowInParts(fd, piece, FILE_WRITE_BYTES, at + next, opts);
      next += piece.length;
    },
  };
}

/**
 * Writes each piece at the descriptor's own position (so an O_APPEND descriptor appends), in
 * order, at most `maxWriteBytes` per call: FILE_WRITE_BYTES for a regular file, a whole piece
 * for a device such as /dev/null. For files and devices only: `writeNow` blocks until written.
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
    writeNow(piece: Buffer): void {
      writeNowInParts(fd, piece, maxWriteBytes, null, opts);
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

/**
 * A sink's writeNow: the piece in writes of at most `maxBytes`, from `position` (null: the
 * descriptor's own), blocking until all are done; a failure is the sink's error.
 */
function writeNowInParts(fd: number, piece: Buffer, maxBytes: number, position: number | null, opts: SinkOptions): void {
  try {
    for (let off = 0; off < piece.length; off += maxBytes) writeAllNow(fd, piece.subarray(off, off + maxBytes), position === null ? null : position + off);
  } catch (err) {
    throw opts.writeError(err);
  }
  opts.onBytes?.(piece.length);
}

/** writeAll's blocking twin, for a sink's writeNow. */
function writeAllNow(fd: number, piece: Buffer, position: number | null): void {
  for (let at = 0; at < piece.length; ) {
    const n = writeSync(fd, piece, at, piece.length - at, position === null ? null : position + at);
    if (n === 0) throw Object.assign(new Error('the write made no progress'), { code: 'EIO' });
    at += n;
  }
}
