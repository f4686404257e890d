/**
 * Where `init` takes a join token from. A token holds the cluster secret (and, for a full node,
 * the data key), so the ways that keep it out of the process list and shell history come first:
 * a file (`--join-file FILE`, or `-` for standard input) or the TESSERA_JOIN_TOKEN variable.
 * `--join TOKEN` stays for scripts that already use it.
 */
import { readFile, stat } from 'node:fs/promises';
import { TesseraError, badInput } from '../errors.js';
import { MAX_JOIN_TOKEN_CHARS } from '../cluster/data-files.js';

export const JOIN_TOKEN_ENV = 'TESSERA_JOIN_TOKEN';
/** Bytes read from a token file or standard input before giving up: a token plus a newline or two. */
const MAX_TOKEN_SOURCE_BYTES = MAX_JOIN_TOKEN_CHARS + 16;

export interface JoinTokenOptions {
  join?: string;
  joinFile?: string;
}

/** The token to join with, or undefined for a new cluster. Refuses more than one source. */
export async function readJoinToken(
  opts: JoinTokenOptions,
  env: NodeJS.ProcessEnv = process.env,
  stdin: NodeJS.ReadableStream = process.stdin,
): Promise<string | undefined> {
  const fromEnv = env[JOIN_TOKEN_ENV];
  const given = [opts.join !== undefined && '--join', opts.joinFile !== undefined && '--join-file', fromEnv !== undefined && fromEnv !== '' && JOIN_TOKEN_ENV].filter(Boolean);
  if (given.length > 1) throw badInput(`the join token was given more than once (${given.join(', ')}); give it one way only`);
  if (opts.join !== undefined) return opts.join;
  if (fromEnv !== undefined && fromEnv !== '') return fromEnv.trim();
  if (opts.joinFile === undefined) return undefined;
  const text = opts.joinFile === '-' ? await readBounded(stdin) : await readTokenFile(opts.joinFile);
  const token = text.trim();
  if (token === '') throw badInput(`no join token in ${opts.joinFile === '-' ? 'standard input' : opts.joinFile}; get one with 'tessera token --data DIR' on a member`);
  return token;
}

async function readTokenFile(path: string): Promise<string> {
  let size: number;
  try {
    size = (await stat(path)).size;
  } catch (e) {
    throw new TesseraError('NOT_FOUND', `join token file ${path} cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); check the --join-file path`);
  }
  if (size > MAX_TOKEN_SOURCE_BYTES) throw badInput(`join token file ${path} is ${size} bytes, longer than any join token`);
  return readFile(path, 'utf8');
}

async function readBounded(stream: NodeJS.ReadableStream): Promise<string> {
  const parts: Buffer[] = [];
  let n = 0;
  for await (const chunk of stream) {
    const b = typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer);
    n += b.length;
    if (n > MAX_TOKEN_SOURCE_BYTES) throw badInput('standard input holds more than a join token; pipe only the token to --join-file -');
    parts.push(b);
  }
  return Buffer.concat(parts).toString('utf8');
}
