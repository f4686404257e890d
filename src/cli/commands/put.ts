/** `tessera put`: streams a file or standard input to a node, which chunks, encrypts and places it. */
import { basename } from 'node:path';
import type { FileHandle } from 'node:fs/promises';
import { open } from 'node:fs/promises';
import type { PutResultView } from '../../api/types.js';
import type { PieceReader } from '../../client/index.js';
import { badInput } from '../../errors.js';
import { MAX_REPLICAS } from '../../limits.js';
import { checkPutPolicy, parseShards, type PutPolicyNames } from '../../content/put-policy.js';
import { majorityQuorum } from '../../content/majority.js';
import { clientFrom } from '../context.js';
import { formatBytes, parseSize } from '../format.js';
import { startProgress, wantProgress, type Progress } from '../progress.js';
import { abortOnInterrupt, asTransferError, ioError, type CommonFlags } from './transfer.js';

export interface PutFlags extends CommonFlags {
  name?: string;
  replicas?: string;
  quorum?: string;
  chunkSize?: string;
  ec?: string;
}

/** Put's redundancy flags, as the shared rules name them in a refusal. */
const PUT_FLAGS: PutPolicyNames = { replicas: '--replicas', quorum: '--quorum', ec: '--ec' };

/** A count flag as a number; its range is the shared rules' business. */
function count(text: string | undefined, field: 'replicas' | 'quorum'): number | undefined {
  if (text === undefined) return undefined;
  if (!/^\d{1,6}$/.test(text.trim())) throw badInput(`${PUT_FLAGS[field]} must be a whole number from 1 to ${MAX_REPLICAS}, not '${text.slice(0, 20)}'`, { field });
  return Number(text);
}

/**
 * Put's redundancy flags, checked by the rules the API and the service apply (content/put-policy.ts)
 * so a refusal names the flag: replicas alone get a majority quorum, a quorum alone keeps the node's
 * default replica count.
 */
export function putPolicy(flags: { replicas?: string; quorum?: string; ec?: string }): { replicas?: number; quorum?: number; ec?: string } {
  const replicas = count(flags.replicas, 'replicas');
  const quorum = count(flags.quorum, 'quorum');
  const ec = flags.ec === undefined ? undefined : parseShards(flags.ec.trim(), PUT_FLAGS);
  checkPutPolicy({ ...(replicas !== undefined ? { replicas } : {}), ...(quorum !== undefined ? { quorum } : {}), ...(ec !== undefined ? { ec } : {}) }, PUT_FLAGS);
  const out: { replicas?: number; quorum?: number; ec?: string } = {};
  if (replicas !== undefined) {
    out.replicas = replicas;
    out.quorum = quorum ?? majorityQuorum(replicas);
  } else if (quorum !== undefined) {
    out.quorum = quorum;
  }
  if (ec !== undefined) out.ec = `${ec.k}+${ec.m}`;
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
  const chunkSize = flags.chunkSize === undefined ? undefined : (await import('../../content/chunker.js')).checkChunkSize(parseSize(flags.chunkSize, '--chunk-size'));
  if (flags.name !== undefined && flags.name.trim() === '') throw badInput('--name must not be empty');
  const client = await clientFrom(flags);

  let size: number | undefined;
  let handle: FileHandle | undefined;
  if (file !== '-') ({ handle, size } = await openInput(file));
  const progress = await startProgress(`put ${file === '-' ? 'stdin' : basename(file)}`, size, wantProgress(flags));
  const abort = abortOnInterrupt();
  // A file is read by the client into buffers it uses again and again; standard input comes as
  // the stream's own pieces.
  const source = handle === undefined ? counted(wrapReadErrors(process.stdin, file), progress, abort.signal) : fileReader(handle, file, progress, abort.signal);
  let result: PutResultView;
  try {
    result = await client.put(source, {
      ...(flags.name !== undefined ? { name: flags.name } : {}),
      ...policy,
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

/**
 * Reads the input file from where the last read ended, into the client's buffers; counts for the
 * bar and stops at Ctrl-C like `counted`, and names the file in a read error.
 */
export function fileReader(handle: FileHandle, file: string, progress: Progress, signal: AbortSignal): PieceReader {
  return {
    async readInto(into: Buffer): Promise<number> {
      signal.throwIfAborted();
      let bytesRead: number;
      try {
        ({ bytesRead } = await handle.read(into, 0, into.length, null));
      } catch (err) {
        throw ioError(err, `cannot read '${file}'`);
      }
      progress.add(bytesRead);
      return bytesRead;
    },
  };
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
