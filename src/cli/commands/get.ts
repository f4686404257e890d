/**
 * `tessera get`: streams a file to standard output or, with -o, to a file that appears only once
 * it is whole and durable (written beside the target, fsynced, renamed); an interrupted or failed
 * get leaves no partial output and any existing file untouched.
 */
import { fstatSync } from 'node:fs';
import { open, rename, stat as statPath, unlink, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { isatty } from 'node:tty';
import type { DownloadSink } from '../../client/index.js';
import { MAX_RANGES_IN_FLIGHT } from '../../client/ranges.js';
import { badInput, isTesseraError } from '../../errors.js';
import { clientFrom } from '../context.js';
import { FILE_WRITE_BYTES, fdSink, fileSink, streamSink } from '../download-sinks.js';
import { startProgress, wantProgress, type Progress } from '../progress.js';
import { abortOnInterrupt, asTransferError, ioError, type CommonFlags } from './transfer.js';

export interface GetFlags extends CommonFlags {
  output?: string;
  range?: string;
  streams?: string;
}

/** `--streams`: how many byte ranges of a large file are fetched at once. */
export function parseStreams(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!/^\d{1,2}$/.test(text.trim()) || n < 1 || n > MAX_RANGES_IN_FLIGHT) {
    throw badInput(`--streams '${text.slice(0, 20)}' is not a whole number from 1 to ${MAX_RANGES_IN_FLIGHT}`);
  }
  return n;
}

/** A byte range as typed by the user: `A-B` and `A-` from an offset, `-N` for the last N bytes. */
export type RangeSpec = { start: number; end?: number } | { suffix: number };

/** Parses `--range` the way HTTP Range reads it: both ends inclusive. */
export function parseRange(text: string): RangeSpec {
  const bad = (why: string) =>
    badInput(`--range '${text}' ${why}; use A-B (bytes A to B, both included), A- (from A to the end) or -N (the last N bytes)`);
  const m = /^\s*(\d*)\s*-\s*(\d*)\s*$/.exec(text);
  if (!m || (m[1] === '' && m[2] === '')) throw bad('is not a byte range');
  const num = (s: string) => {
    const n = Number(s);
    if (!Number.isSafeInteger(n)) throw bad('has a number too large');
    return n;
  };
  if (m[1] === '') {
    const suffix = num(m[2] as string);
    if (suffix === 0) throw bad('asks for the last 0 bytes');
    return { suffix };
  }
  const start = num(m[1] as string);
  if (m[2] === '') return { start };
  const end = num(m[2] as string);
  if (end < start) throw bad('ends before it starts');
  return { start, end };
}

/** Resolves the user's range into the inclusive offsets the client takes; a suffix needs the file's size. */
async function resolveRange(
  spec: RangeSpec | undefined,
  sizeOf: () => Promise<number>,
): Promise<{ start?: number; end?: number } | 'empty'> {
  if (spec === undefined) return {};
  if ('suffix' in spec) {
    const size = await sizeOf();
    if (size === 0) return 'empty';
    return { start: Math.max(0, size - spec.suffix), end: size - 1 };
  }
  return spec.end === undefined ? { start: spec.start } : { start: spec.start, end: spec.end };
}

/**
 * Where `-o` output goes until it is whole: beside the target, so the final rename stays on one
 * filesystem. node:crypto (a few dozen internal modules) is loaded only here: a get to standard
 * output does not pay for it.
 */
async function tempPathFor(out: string): Promise<string> {
  const { randomBytes } = await import('node:crypto');
  return join(dirname(out), `.${basename(out)}.${randomBytes(6).toString('hex')}.tessera-part`);
}

async function checkOutputPath(out: string): Promise<void> {
  try {
    if ((await statPath(out)).isDirectory()) throw badInput(`-o '${out}' is a directory; give a file name`);
  } catch (err) {
    if (isTesseraError(err)) throw err;
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw ioError(err, `cannot write '${out}'`);
  }
  try {
    if (!(await statPath(dirname(out))).isDirectory()) throw badInput(`cannot write '${out}': '${dirname(out)}' is not a directory`);
  } catch (err) {
    if (isTesseraError(err)) throw err;
    throw ioError(err, `cannot write '${out}': directory '${dirname(out)}'`);
  }
}

/**
 * How standard output takes the bytes: plain writes of at most so many bytes when it is a file
 * (FILE_WRITE_BYTES, see there) or a device that is not a terminal (/dev/null: whole pieces), or
 * undefined for pipes and terminals, which go through process.stdout (it handles their
 * non-blocking writes and a reader that goes away).
 */
function stdoutPlainWriteBytes(): number | undefined {
  try {
    const st = fstatSync(1);
    if (st.isFile()) return FILE_WRITE_BYTES;
    if (st.isCharacterDevice() && !isatty(1)) return Number.MAX_SAFE_INTEGER;
  } catch {
    // Closed or odd: process.stdout reports what is wrong when written.
  }
  return undefined;
}

export async function getCommand(ref: string, flags: GetFlags): Promise<void> {
  const spec = flags.range === undefined ? undefined : parseRange(flags.range);
  const inFlight = parseStreams(flags.streams);
  const out = flags.output === undefined || flags.output === '-' ? undefined : flags.output;
  if (out !== undefined) await checkOutputPath(out);
  const client = await clientFrom(flags);
  const range = await resolveRange(spec, async () => (await client.stat(ref)).size);

  const abort = abortOnInterrupt();
  let temp: string | undefined;
  let fh: FileHandle | undefined;
  let progress: Progress | undefined;
  try {
    // Bytes going to the same terminal would tear the bar apart, and the bar the bytes.
    const barOk = wantProgress(flags) && (out !== undefined || process.stdout.isTTY !== true);
    const bar = await startProgress(`get ${basename(out ?? ref).slice(0, 40)}`, undefined, barOk);
    progress = bar;
    const onBytes = (n: number) => bar.add(n);
    let sink: DownloadSink;
    if (out === undefined) {
      const maxWrite = stdoutPlainWriteBytes();
      sink =
        maxWrite === undefined
          ? streamSink(process.stdout, onBytes)
          : fdSink(1, maxWrite, { onBytes, writeError: (err) => ioError(err, 'cannot write to standard output') });
    } else {
      temp = await tempPathFor(out);
      try {
        fh = await open(temp, 'wx', 0o666);
      } catch (err) {
        throw ioError(err, `cannot write '${out}'`);
      }
      sink = fileSink(fh.fd, 0, { onBytes, writeError: (err) => ioError(err, `cannot write '${out}'`) });
    }
    sink.begin = (info) => bar.setTotal(info.size);
    const res = range === 'empty' ? undefined : await client.download(ref, sink, { ...range, signal: abort.signal, ...(inFlight !== undefined ? { inFlight } : {}) });
    if (fh && temp && out) {
      try {
        await fh.sync();
      } catch (err) {
        throw ioError(err, `cannot write '${out}'`);
      }
      await fh.close();
      fh = undefined;
      await rename(temp, out);
      temp = undefined;
    }
    progress.stop();
    if (flags.json && out !== undefined && res) {
      process.stdout.write(JSON.stringify({ fileId: res.fileId, output: out, bytes: res.size, totalSize: res.totalSize }) + '\n');
    }
  } catch (err) {
    progress?.stop();
    if ((err as NodeJS.ErrnoException)?.code === 'EPIPE' && out === undefined) {
      // The reader of stdout went away (`| head`): that is how such pipelines end, not a failure.
      return;
    }
    throw asTransferError(err, abort.interrupted(), 'get');
  } finally {
    abort.dispose();
    if (fh) await fh.close().catch(() => {});
    if (temp) await unlink(temp).catch(() => {});
  }
}
