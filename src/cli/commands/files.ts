/**
 * File commands: put, get, rm, ls, stat. They stream through the node's HTTP API; nothing here
 * holds a whole file, and `get -o` never leaves a half-written output behind.
 */
import { randomBytes } from 'node:crypto';
import { open, rename, stat as statPath, unlink, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Command } from 'commander';
import type { FileEntryView, FileStatView, PutResultView } from '../../api/types.js';
import { checkChunkSize } from '../../content/chunker.js';
import { MAX_REPLICAS, majorityQuorum, parsePolicy } from '../../content/policy.js';
import { TesseraError, badInput, isTesseraError } from '../../errors.js';
import { clientFrom, type ClientFlags } from '../context.js';
import { formatBytes, parseSize, table } from '../format.js';
import { startProgress, wantProgress, type Progress } from '../progress.js';
import { withClientOptions } from './peers.js';

interface CommonFlags extends ClientFlags {
  json?: boolean;
  quiet?: boolean;
}

interface PutFlags extends CommonFlags {
  name?: string;
  replicas?: string;
  quorum?: string;
  chunkSize?: string;
  ec?: string;
}

interface GetFlags extends CommonFlags {
  output?: string;
  range?: string;
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

function wholeNumber(text: string | undefined, what: string, min: number, max: number): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!/^\d+$/.test(text.trim()) || !Number.isSafeInteger(n) || n < min || n > max) {
    throw badInput(`${what} must be a whole number from ${min} to ${max}, not '${text}'`);
  }
  return n;
}

/** Put's redundancy flags: a quorum alone keeps the default replica count, replicas alone get a majority quorum. */
export function putPolicy(flags: { replicas?: string; quorum?: string }): { replicas?: number; quorum?: number } {
  const replicas = wholeNumber(flags.replicas, '--replicas', 1, MAX_REPLICAS);
  const quorum = wholeNumber(flags.quorum, '--quorum', 1, MAX_REPLICAS);
  if (replicas !== undefined && quorum !== undefined && quorum > replicas) {
    throw badInput(`--quorum ${quorum} is more than --replicas ${replicas}: a write cannot wait for more copies than it makes`);
  }
  const out: { replicas?: number; quorum?: number } = {};
  if (replicas !== undefined) {
    out.replicas = replicas;
    out.quorum = quorum ?? majorityQuorum(replicas);
  } else if (quorum !== undefined) {
    out.quorum = quorum;
  }
  return out;
}

function ioError(err: unknown, what: string): TesseraError {
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

/** Opens the file to store, refusing directories and other things that are not a byte stream. */
async function openInput(path: string): Promise<{ handle: FileHandle; size: number | undefined }> {
  let handle: FileHandle;
  try {
    handle = await open(path, 'r');
  } catch (err) {
    throw ioError(err, `cannot read '${path}'`);
  }
  const st = await handle.stat();
  if (st.isDirectory()) {
    await handle.close();
    throw badInput(`'${path}' is a directory; put stores one file (for a directory: tar -c DIR | tessera put - --name DIR.tar)`);
  }
  // Pipes and devices have no size up front; the bar then shows bytes and rate without an ETA.
  return { handle, size: st.isFile() ? st.size : undefined };
}

/** Counts for the bar, and stops feeding the upload at Ctrl-C whatever the client does with the signal. */
async function* counted(source: AsyncIterable<Uint8Array>, progress: Progress, signal: AbortSignal): AsyncGenerator<Uint8Array> {
  for await (const piece of source) {
    signal.throwIfAborted();
    progress.add(piece.length);
    yield piece;
  }
}

/** Ctrl-C aborts the transfer (so temporary output is removed) instead of killing the process mid-write. */
function abortOnInterrupt(): { signal: AbortSignal; interrupted: () => boolean; dispose: () => void } {
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

function asTransferError(err: unknown, interrupted: boolean, what: string): TesseraError {
  if (interrupted) {
    return new TesseraError('CANCELLED', what === 'put' ? 'put interrupted: the file was not stored' : 'get interrupted: no output file was written');
  }
  if (err instanceof TesseraError) return err;
  const e = err as NodeJS.ErrnoException;
  if (e?.name === 'AbortError' && e.cause instanceof TesseraError) return e.cause;
  return new TesseraError('UNAVAILABLE', `${what} broke off: ${e?.message ?? String(err)}`);
}

function putSummary(r: PutResultView): string {
  const dedup = r.chunks - r.newChunks;
  return (
    `stored ${formatBytes(r.size)} as ${r.chunks} chunk${r.chunks === 1 ? '' : 's'}` +
    (dedup > 0 ? ` (${dedup} already in the cluster)` : '') +
    `, ${r.policy}, in ${(r.durationMs / 1000).toFixed(2)} s` +
    (r.name ? `, named '${r.name}'` : '')
  );
}

async function putCommand(file: string, flags: PutFlags): Promise<void> {
  const policy = putPolicy(flags);
  let ec: string | undefined;
  if (flags.ec !== undefined) {
    if (flags.replicas !== undefined || flags.quorum !== undefined) throw badInput('--ec stores shards instead of copies: give it without --replicas or --quorum');
    const p = parsePolicy(flags.ec.trim());
    if (p.kind !== 'ec') throw badInput(`--ec ${flags.ec} is not data+parity shards such as 4+2 or 10+4`);
    ec = `${p.k}+${p.m}`;
  }
  const chunkSize = flags.chunkSize === undefined ? undefined : checkChunkSize(parseSize(flags.chunkSize, '--chunk-size'));
  if (flags.name !== undefined && flags.name.trim() === '') throw badInput('--name must not be empty');
  const client = await clientFrom(flags);

  let source: AsyncIterable<Uint8Array>;
  let size: number | undefined;
  let handle: FileHandle | undefined;
  if (file === '-') {
    source = process.stdin;
  } else {
    ({ handle, size } = await openInput(file));
    source = handle.createReadStream({ highWaterMark: 1 << 20, autoClose: false });
  }
  const progress = startProgress(`put ${file === '-' ? 'stdin' : basename(file)}`, size, wantProgress(flags));
  const abort = abortOnInterrupt();
  let result: PutResultView;
  try {
    result = await client.put(counted(wrapReadErrors(source, file), progress, abort.signal), {
      ...(flags.name !== undefined ? { name: flags.name } : {}),
      ...policy,
      ...(ec !== undefined ? { ec } : {}),
      ...(chunkSize !== undefined ? { chunkSize } : {}),
      signal: abort.signal,
    });
  } catch (err) {
    throw asTransferError(err, abort.interrupted(), 'put');
  } finally {
    progress.stop();
    abort.dispose();
    await handle?.close();
  }
  if (flags.json) {
    process.stdout.write(JSON.stringify(result) + '\n');
    return;
  }
  process.stdout.write(result.fileId + '\n');
  if (wantProgress(flags)) process.stderr.write(putSummary(result) + '\n');
}

/** A read error on the input file must name the file, not surface as a network failure. */
async function* wrapReadErrors(source: AsyncIterable<Uint8Array>, file: string): AsyncGenerator<Uint8Array> {
  const it = source[Symbol.asyncIterator]();
  for (;;) {
    let step: IteratorResult<Uint8Array>;
    try {
      step = await it.next();
    } catch (err) {
      throw ioError(err, `cannot read '${file === '-' ? 'stdin' : file}'`);
    }
    if (step.done) return;
    yield step.value;
  }
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

/** Where `-o` output goes until it is whole: beside the target, so the final rename stays on one filesystem. */
function tempPathFor(out: string): string {
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

async function getCommand(ref: string, flags: GetFlags): Promise<void> {
  const spec = flags.range === undefined ? undefined : parseRange(flags.range);
  const out = flags.output === undefined || flags.output === '-' ? undefined : flags.output;
  if (out !== undefined) await checkOutputPath(out);
  const client = await clientFrom(flags);
  const range = await resolveRange(spec, async () => (await client.stat(ref)).size);

  const abort = abortOnInterrupt();
  let temp: string | undefined;
  let fh: FileHandle | undefined;
  let progress: Progress | undefined;
  let written = 0;
  try {
    const res = range === 'empty' ? undefined : await client.get(ref, { ...range, signal: abort.signal });
    const expected = res?.size ?? 0;
    // Bytes going to the same terminal would tear the bar apart, and the bar the bytes.
    const barOk = wantProgress(flags) && (out !== undefined || process.stdout.isTTY !== true);
    progress = startProgress(`get ${basename(out ?? ref).slice(0, 40)}`, expected, barOk);
    const count = async function* (src: AsyncIterable<Buffer | string>): AsyncGenerator<Buffer> {
      for await (const raw of src) {
        // The response is a byte stream; a string would only appear if someone set an encoding.
        const piece = typeof raw === 'string' ? Buffer.from(raw) : raw;
        written += piece.length;
        progress?.add(piece.length);
        yield piece;
      }
    };
    if (out === undefined) {
      if (res) await pipeline(res.stream, count, process.stdout, { signal: abort.signal, end: false });
    } else {
      temp = tempPathFor(out);
      try {
        fh = await open(temp, 'wx', 0o666);
      } catch (err) {
        throw ioError(err, `cannot write '${out}'`);
      }
      if (res) {
        const file = fh;
        const sink = async (src: AsyncIterable<Buffer>) => {
          for await (const piece of src) {
            try {
              await file.write(piece);
            } catch (err) {
              throw ioError(err, `cannot write '${out}'`);
            }
          }
        };
        await pipeline(res.stream, count, sink, { signal: abort.signal });
      }
    }
    // A stream that ends early without an error must not pass for the whole file.
    if (written !== expected) {
      throw new TesseraError('UNAVAILABLE', `the node sent ${written} of ${expected} bytes before the transfer ended; nothing was kept`);
    }
    if (fh && temp && out) {
      await fh.sync();
      await fh.close();
      fh = undefined;
      await rename(temp, out);
      temp = undefined;
    }
    progress.stop();
    if (flags.json && out !== undefined && res) {
      process.stdout.write(JSON.stringify({ fileId: res.fileId, output: out, bytes: written, totalSize: res.totalSize }) + '\n');
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

function formatDate(iso: string): string {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}`;
}

export function filesTable(files: FileEntryView[]): string {
  const rows = [...files]
    .sort((a, b) => a.name.localeCompare(b.name))
    .map((f) => [f.name, formatBytes(f.size), formatDate(f.createdAt), f.policy, f.fileId.slice(0, 16) + '…']);
  return table(['NAME', 'SIZE', 'CREATED', 'POLICY', 'ID'], rows);
}

const short = (id: string) => id.slice(0, 12);

function zoneText(s: FileStatView): string {
  const over = `copies over ${s.zones} zone${s.zones === 1 ? '' : 's'}`;
  if (s.zoneLossesSurvived < 0) return `${over}; some chunk is unreadable now`;
  if (s.zoneLossesSurvived === 0) return `${over}; the loss of any one zone may make it unreadable`;
  return `${over}; survives the loss of any ${s.zoneLossesSurvived} zone${s.zoneLossesSurvived === 1 ? '' : 's'} at once`;
}

export function statText(s: FileStatView): string {
  const h = s.health;
  const lines = [
    `file     ${s.fileId}`,
    `name     ${s.name ?? '-'}`,
    `size     ${formatBytes(s.size)} (${s.size} bytes)`,
    `chunks   ${s.chunks} of ${formatBytes(s.chunkSize)}`,
    `policy   ${s.policy}`,
    `created  ${formatDate(s.createdAt)}`,
    `health   ${h.fullRedundancy} at full redundancy, ${h.degraded} degraded, ${h.lost} lost`,
    `zones    ${zoneText(s)}`,
  ];
  if (s.chunkHealth.length > 0) {
    const rows = s.chunkHealth.map((c) => {
      const missing = c.expected.filter((n) => !c.holders.includes(n));
      return [
        String(c.index),
        short(c.id),
        formatBytes(c.size),
        `${c.holders.length}/${c.expected.length}`,
        c.holders.map(short).join(',') || '-',
        missing.map(short).join(',') || '-',
      ];
    });
    lines.push('', table(['CHUNK', 'ID', 'SIZE', 'COPIES', 'HOLDERS', 'MISSING FROM'], rows));
    if (s.chunkHealth.length < s.chunks) lines.push(`(first ${s.chunkHealth.length} of ${s.chunks} chunks shown; --json has the same)`);
  }
  return lines.join('\n');
}

export function registerFiles(program: Command): void {
  withClientOptions(
    program
      .command('put')
      .description("store a file in the cluster and print its id (whoever holds the id can read the file)")
      .argument('<file>', "the file to store, or '-' for standard input"),
  )
    .option('--name <name>', 'also record the file under this name (without one it is reachable only by its id)')
    .option('--replicas <r>', `copies of every chunk, 1 to ${MAX_REPLICAS} (default 3)`)
    .option('--quorum <w>', 'copies that must be durable before put succeeds (default: a majority of the replicas)')
    .option('--chunk-size <size>', 'chunk size, e.g. 256K or 4M (default 1M)')
    .option('--ec <k+m>', 'erasure coding instead of copies: k data and m parity shards per chunk on k+m nodes, e.g. 4+2')
    .option('-q, --quiet', 'no progress bar')
    .addHelpText(
      'after',
      '\nExamples:\n  tessera put ./photo.jpg --name photos/2024/beach.jpg\n  tar -c ./project | tessera put - --name project.tar --replicas 2',
    )
    .action((file: string, flags: PutFlags) => putCommand(file, flags));

  withClientOptions(
    program
      .command('get')
      .description('read a file by id or name; to standard output unless -o is given')
      .argument('<ref>', 'file id (tsr1…) or name'),
  )
    .option('-o, --output <file>', 'write here; the file appears only once it is complete')
    .option('--range <A-B>', 'only bytes A to B (both included); also A- (from A) and -N (the last N bytes)')
    .option('-q, --quiet', 'no progress bar')
    .addHelpText(
      'after',
      '\nExamples:\n  tessera get photos/2024/beach.jpg -o beach.jpg\n  tessera get tsr1… --range 0-1023 | xxd | head\n  tessera get logs.tar --range -4096 > tail.bin',
    )
    .action((ref: string, flags: GetFlags) => getCommand(ref, flags));

  withClientOptions(program.command('rm').description('delete a file: its name and its chunks, on every node').argument('<ref>', 'file id or name'))
    .addHelpText('after', '\nExample:\n  tessera rm photos/2024/beach.jpg')
    .action(async (ref: string, flags: CommonFlags) => {
      const r = await (await clientFrom(flags)).rm(ref);
      process.stdout.write((flags.json ? JSON.stringify(r) : `removed ${r.name ? `'${r.name}' ` : ''}${r.fileId}`) + '\n');
    });

  withClientOptions(program.command('ls').description('list named files: name, size, date, redundancy policy'))
    .addHelpText('after', '\nExample:\n  tessera ls --api 127.0.0.1:7401')
    .action(async (flags: CommonFlags) => {
      const files = await (await clientFrom(flags)).ls();
      if (flags.json) process.stdout.write(JSON.stringify(files) + '\n');
      else process.stdout.write((files.length === 0 ? 'no named files' : filesTable(files)) + '\n');
    });

  withClientOptions(
    program
      .command('stat')
      .description("a file's chunks, policy and health: which nodes hold each chunk")
      .argument('<ref>', 'file id or name'),
  )
    .addHelpText('after', '\nExample:\n  tessera stat photos/2024/beach.jpg --json')
    .action(async (ref: string, flags: CommonFlags) => {
      const s = await (await clientFrom(flags)).stat(ref);
      process.stdout.write((flags.json ? JSON.stringify(s) : statText(s)) + '\n');
    });
}
