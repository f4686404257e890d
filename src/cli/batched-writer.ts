/**
 * Writes a download to a file descriptor in large batches. The socket keeps being read while
 * the previous batch is written (one writev of many received pieces), so the disk and the
 * network overlap instead of taking turns; for a file that is to be made durable, written data
 * is flushed in the background as the download goes, so the final fsync waits only for the tail.
 */
import { fdatasync, writev } from 'node:fs';
import type { Readable } from 'node:stream';
import { TesseraError } from '../errors.js';

/** Most bytes handed to one writev: larger batches save no system calls worth having. */
export const MAX_BATCH_BYTES = 8 << 20;
/** Most buffers in one writev (Linux's IOV_MAX). */
export const MAX_BATCH_BUFFERS = 1024;
/** Received bytes held while the disk is behind; beyond this the socket is no longer read until it catches up. */
export const MAX_BUFFERED_BYTES = 32 << 20;
/** Written bytes after which a background fdatasync starts (with `syncAhead`). */
export const SYNC_AHEAD_BYTES = 32 << 20;

export interface BatchedWriteOptions {
  /** Flush written data to the disk in the background while the download goes on. */
  syncAhead?: boolean;
  /** Called as bytes arrive, for a progress bar. */
  onBytes?: (n: number) => void;
  /** The error the user sees when writing or flushing fails. */
  writeError: (err: unknown) => Error;
}

/**
 * Copies `source` to `fd` at its current position (so an O_APPEND descriptor appends) and
 * resolves with the number of bytes written once every byte is written, and with `syncAhead`
 * once the last background flush is done. Rejects on the first read or write error, and when
 * the source closes before its end; the source is destroyed then.
 */
export function writeBatched(source: Readable, fd: number, opts: BatchedWriteOptions): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    // Received pieces not yet handed to writev, oldest first; `head` avoids shifting the array.
    let queue: Buffer[] = [];
    let head = 0;
    let queuedBytes = 0;
    let written = 0;
    let unsynced = 0;
    let writing = false;
    let syncing = false;
    let ended = false;
    let settled = false;

    const detach = () => {
      source.off('data', onData);
      source.off('end', onEnd);
      source.off('error', onError);
      source.off('close', onClose);
    };
    const fail = (err: unknown) => {
      if (settled) return;
      settled = true;
      detach();
      source.destroy();
      reject(err);
    };
    const finishIfDone = () => {
      if (settled || !ended || writing || syncing || queuedBytes > 0) return;
      settled = true;
      detach();
      resolve(written);
    };

    const takeBatch = (): { bufs: Buffer[]; bytes: number } => {
      const bufs: Buffer[] = [];
      let bytes = 0;
      while (head < queue.length && bufs.length < MAX_BATCH_BUFFERS && bytes < MAX_BATCH_BYTES) {
        const b = queue[head++] as Buffer;
        bufs.push(b);
        bytes += b.length;
      }
      if (head === queue.length) {
        queue = [];
        head = 0;
      }
      queuedBytes -= bytes;
      return { bufs, bytes };
    };

    const maybeSync = () => {
      if (!opts.syncAhead || syncing || unsynced < SYNC_AHEAD_BYTES) return;
      syncing = true;
      unsynced = 0;
      fdatasync(fd, (err) => {
        syncing = false;
        if (err) return fail(opts.writeError(err));
        finishIfDone();
      });
    };

    const writeNext = () => {
      if (settled || writing) return;
      if (queuedBytes === 0) return finishIfDone();
      const { bufs, bytes } = takeBatch();
      writing = true;
      if (source.isPaused() && !ended && queuedBytes < MAX_BUFFERED_BYTES / 2) source.resume();
      writeAll(fd, bufs, (err) => {
        writing = false;
        if (err) return fail(opts.writeError(err));
        written += bytes;
        unsynced += bytes;
        maybeSync();
        writeNext();
      });
    };

    const onData = (piece: Buffer | string) => {
      // The response is a byte stream; a string would only appear if someone set an encoding.
      const buf = typeof piece === 'string' ? Buffer.from(piece) : piece;
      queue.push(buf);
      queuedBytes += buf.length;
      opts.onBytes?.(buf.length);
      if (queuedBytes >= MAX_BUFFERED_BYTES) source.pause();
      writeNext();
    };
    const onEnd = () => {
      ended = true;
      writeNext();
    };
    const onError = (err: Error) => fail(err);
    const onClose = () => {
      if (!ended) fail(new TesseraError('UNAVAILABLE', 'the node closed the download before the end of the file'));
    };
    source.on('data', onData);
    source.on('end', onEnd);
    source.on('error', onError);
    source.on('close', onClose);
  });
}

/** One writev, repeated for what a short write left over. */
function writeAll(fd: number, bufs: Buffer[], done: (err: NodeJS.ErrnoException | null) => void): void {
  writev(fd, bufs, (err, n) => {
    if (err) return done(err);
    if (n === 0) return done(Object.assign(new Error('the write made no progress'), { code: 'EIO' }));
    let left = n;
    let i = 0;
    while (i < bufs.length && left >= (bufs[i] as Buffer).length) left -= (bufs[i++] as Buffer).length;
    if (i === bufs.length) return done(null);
    const rest = bufs.slice(i);
    rest[0] = (rest[0] as Buffer).subarray(left);
    writeAll(fd, rest, done);
  });
}
