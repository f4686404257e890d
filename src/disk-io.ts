/**
 * Positional file I/O that does not stop short, and durable whole-file writes. Every layer that
 * keeps files (store/, block/ volume state, cluster/ identity) uses these, so a short read or
 * write, or a missing fsync, has one place to be right in.
 */
import { open, rename, stat, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { TesseraError } from './errors.js';

/** Short reads and writes are legal for positional I/O; a call that keeps making no progress is an I/O fault. */
export const MAX_IO_ROUNDS = 64;

/** The errno code of a Node fs error (ENOENT, ENOSPC, …), if it has one. */
export function errnoOf(e: unknown): string | undefined {
  return typeof e === 'object' && e !== null && 'code' in e && typeof e.code === 'string' ? e.code : undefined;
}

/** Reads into `buf` at `pos` until it is full or the file ends; returns the bytes read. */
export async function readAt(fh: FileHandle, buf: Buffer, pos: number): Promise<number> {
  let done = 0;
  for (let round = 0; done < buf.length; round++) {
    if (round >= MAX_IO_ROUNDS) throw new TesseraError('IO', `read made no progress after ${MAX_IO_ROUNDS} rounds`);
    const { bytesRead } = await fh.read(buf, done, buf.length - done, pos + done);
    if (bytesRead === 0) break;
    done += bytesRead;
  }
  return done;
}

/** Fills `buf` from `pos`; past the end of the file reads as zeroes, as a sparse file's holes do. */
export async function readAtZeroFilled(fh: FileHandle, buf: Buffer, pos: number): Promise<void> {
  const got = await readAt(fh, buf, pos);
  if (got < buf.length) buf.fill(0, got);
}

/** Writes all of `buf` at `pos`. */
export async function writeAt(fh: FileHandle, buf: Buffer, pos: number): Promise<void> {
  let done = 0;
  for (let round = 0; done < buf.length; round++) {
    if (round >= MAX_IO_ROUNDS) throw new TesseraError('IO', `write made no progress after ${MAX_IO_ROUNDS} rounds`);
    const { bytesWritten } = await fh.write(buf, done, buf.length - done, pos + done);
    done += bytesWritten;
  }
}

/** Buffers one gather write may pass: Linux's IOV_MAX is 1024, and half keeps each call modest. */
export const MAX_IOVECS_PER_CALL = 512;

/**
 * Writes all of `bufs`, back to back from `pos`, with one positional gather write per
 * MAX_IOVECS_PER_CALL buffers and more after a short write; a call that writes nothing is an I/O fault.
 */
export async function writevAt(fh: FileHandle, bufs: readonly Buffer[], pos: number): Promise<void> {
  const rest = bufs.slice();
  let i = 0;
  while (i < rest.length) {
    let { bytesWritten } = await fh.writev(rest.slice(i, i + MAX_IOVECS_PER_CALL), pos);
    if (bytesWritten === 0 && rest.slice(i).some((b) => b.length > 0)) throw new TesseraError('IO', 'gather write made no progress');
    pos += bytesWritten;
    // Skip what was written: whole buffers, then the front of a partly written one.
    while (i < rest.length && bytesWritten >= rest[i]!.length) bytesWritten -= rest[i++]!.length;
    if (bytesWritten > 0) rest[i] = rest[i]!.subarray(bytesWritten);
  }
}

/** Whether `path` exists; any error but "no such file" is thrown, never read as "absent". */
export async function pathExists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (e) {
    if (errnoOf(e) === 'ENOENT') return false;
    throw e;
  }
}

/** fsync a directory so a rename, create or unlink inside it survives a power cut. */
export async function syncDirectory(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Creates `path`, which must not exist, with exactly `data`, flushed to the device before resolving. */
export async function createFileDurably(path: string, data: Buffer | string, mode = 0o644): Promise<void> {
  // 'wx' refuses to overwrite; the mode applies at creation, so a secret is never readable by others.
  const fh = await open(path, 'wx', mode);
  try {
    await writeAt(fh, typeof data === 'string' ? Buffer.from(data) : data, 0);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * Replaces `path` with exactly `data`: a temporary file beside it, fsynced, renamed over it, and
 * the directory fsynced, so after a crash the file is the old one or the new one, whole.
 */
export async function replaceFileDurably(path: string, data: Buffer, mode = 0o644): Promise<void> {
  const tmp = join(dirname(path), `${basename(path)}.tmp`);
  const fh = await open(tmp, 'w', mode);
  try {
    await writeAt(fh, data, 0);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, path);
  await syncDirectory(dirname(path));
}
