/** `tessera put`: streams a file or standard input to a node, which chunks, encrypts and places it. */
import { basename } from 'node:path';
import type { FileHandle } from 'node:fs/promises';
import { open } from 'node:fs/promises';
import type { PutResultView } from '../../api/types.js';
import { badInput } from '../../errors.js';
import { MAX_REPLICAS } from '../../limits.js';
import { majorityQuorum } from '../../content/majority.js';
import { clientFrom } from '../context.js';
import { formatBytes, parseSize } from '../format.js';
import { startProgress, wantProgress, type Progress } from '../progress.js';
import { abortOnInterrupt, asTransferError, ioError, type CommonFlags } from './transfer.js';

/** Bytes asked of the input file per read: large reads keep system calls few. */
const READ_PIECE_BYTES = 1 << 20;

export interface PutFlags extends CommonFlags {
  name?: string;
  replicas?: string;
  quorum?: string;
  chunkSize?: string;
  ec?: string;
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

function putSummary(r: PutResultView): string {
  const dedup = r.chunks - r.newChunks;
  return (
    `stored ${formatBytes(r.size)} as ${r.chunks} chunk${r.chunks === 1 ? '' : 's'}` +
    (dedup > 0 ? ` (${dedup} already in the cluster)` : '') +
    `, ${r.policy}, in ${(r.durationMs / 1000).toFixed(2)} s` +
    (r.name ? `, named '${r.name}'` : '')
  );
}

export async function putCommand(file: string, flags: PutFlags): Promise<void> {
  const policy = putPolicy(flags);
  let ec: string | undefined;
  if (flags.ec !== undefined) {
    if (flags.replicas !== undefined || flags.quorum !== undefined) throw badInput('--ec stores shards instead of copies: give it without --replicas or --quorum');
    // The policy parser brings a schema library; only a put that asks for shards loads it.
    const { parsePolicy } = await import('../../content/policy.js');
    const p = parsePolicy(flags.ec.trim());
    if (p.kind !== 'ec') throw badInput(`--ec ${flags.ec} is not data+parity shards such as 4+2 or 10+4`);
    ec = `${p.k}+${p.m}`;
  }
  const chunkSize = flags.chunkSize === undefined ? undefined : (await import('../../content/chunker.js')).checkChunkSize(parseSize(flags.chunkSize, '--chunk-size'));
  if (flags.name !== undefined && flags.name.trim() === '') throw badInput('--name must not be empty');
  const client = await clientFrom(flags);

  let source: AsyncIterable<Uint8Array>;
  let size: number | undefined;
  let handle: FileHandle | undefined;
  if (file === '-') {
    source = process.stdin;
  } else {
    ({ handle, size } = await openInput(file));
    source = handle.createReadStream({ highWaterMark: READ_PIECE_BYTES, autoClose: false });
  }
  const progress = await startProgress(`put ${file === '-' ? 'stdin' : basename(file)}`, size, wantProgress(flags));
  const abort = abortOnInterrupt();
  let result: PutResultView;
  try {
    result = await client.put(counted(wrapReadErrors(source, file), progress, abort.signal), {
      ...(flags.name !== undefined ? { name: flags.name } : {}),
      ...policy,
      ...(ec !== undefined ? { ec } : {}),
      ...(chunkSize !== undefined ? { chunkSize } : {}),
      ...(size !== undefined ? { size } : {}),
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
