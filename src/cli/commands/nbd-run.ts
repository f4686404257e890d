/** Starts `tessera nbd`: its NBD flags checked, then a node that serves the volumes (node-run.ts). */
import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { parseHostPort } from '../../client/index.js';
import { badInput } from '../../errors.js';
import {
  checkTlsPolicy, DEFAULT_IDLE_TIMEOUT_MS, MAX_IDLE_TIMEOUT_MS, NBD_TLS_MODES, parsePskFile,
  type NbdTls, type NbdTlsCredentials, type NbdTlsMode,
} from '../../block/nbd/index.js';
import type { NodeFlags } from './node.js';
import { runNodeCommand } from './node-run.js';

/** Bounds of --member-timeout: below a few ms every member looks dead; above ten minutes I/O hangs. */
const MIN_MEMBER_TIMEOUT_MS = 1;
const MAX_MEMBER_TIMEOUT_MS = 600_000;
/** Certificates and keys are a few KiB; a file far larger is the wrong file. */
const MAX_PEM_FILE_BYTES = 1 << 20;

export interface NbdFlags {
  peer: string;
  socket?: string;
  memberTimeout?: string;
  tls?: string;
  tlsPsk?: string;
  tlsCert?: string;
  tlsKey?: string;
  tlsCa?: string;
  allowPlaintext?: boolean;
  nbdIdleTimeout?: string;
}

async function readBounded(path: string, what: string): Promise<Buffer> {
  const b = await readFile(path).catch((e: NodeJS.ErrnoException) => { throw badInput(`cannot read ${what} ${path}: ${e.message}`); });
  if (b.length > MAX_PEM_FILE_BYTES) throw badInput(`${what} ${path} is over ${MAX_PEM_FILE_BYTES} bytes; give the PEM file itself`);
  return b;
}

/** The TLS setting the flags ask for: with credentials and no --tls, TLS is required. */
async function tlsFromFlags(f: NbdFlags): Promise<NbdTls> {
  const credentials: NbdTlsCredentials = {};
  if (f.tlsPsk !== undefined) credentials.psk = parsePskFile((await readBounded(f.tlsPsk, '--tls-psk file')).toString('utf8'), f.tlsPsk);
  if ((f.tlsCert === undefined) !== (f.tlsKey === undefined)) throw badInput('--tls-cert and --tls-key go together: give both PEM files');
  if (f.tlsCa !== undefined && f.tlsCert === undefined) throw badInput('--tls-ca verifies client certificates and needs the server\'s own --tls-cert and --tls-key');
  if (f.tlsCert !== undefined && f.tlsKey !== undefined) {
    credentials.cert = { cert: await readBounded(f.tlsCert, '--tls-cert'), key: await readBounded(f.tlsKey, '--tls-key') };
    if (f.tlsCa !== undefined) credentials.cert.ca = await readBounded(f.tlsCa, '--tls-ca');
  }
  const has = credentials.psk !== undefined || credentials.cert !== undefined;
  const mode = (f.tls ?? (has ? 'require' : 'off')) as NbdTlsMode;
  if (!NBD_TLS_MODES.includes(mode)) throw badInput(`--tls must be one of ${NBD_TLS_MODES.join(', ')}, got '${f.tls}'`);
  return has ? { mode, credentials } : { mode };
}

function idleFromFlags(text: string | undefined): number {
  if (text === undefined) return DEFAULT_IDLE_TIMEOUT_MS;
  const s = Number(text);
  if (!Number.isFinite(s) || s < 0 || s * 1000 > MAX_IDLE_TIMEOUT_MS) throw badInput(`--nbd-idle-timeout must be 0 (never) to ${MAX_IDLE_TIMEOUT_MS / 1000} seconds, got '${text}'`);
  return Math.round(s * 1000);
}

export async function runNbdCommand(given: NodeFlags & NbdFlags, c: Command): Promise<void> {
  const nbdListen = given.socket ? { socket: given.socket } : parseHostPort(given.listen, '--listen');
  let memberTimeoutMs: number | undefined;
  if (given.memberTimeout !== undefined) {
    memberTimeoutMs = Number(given.memberTimeout);
    if (!Number.isInteger(memberTimeoutMs) || memberTimeoutMs < MIN_MEMBER_TIMEOUT_MS || memberTimeoutMs > MAX_MEMBER_TIMEOUT_MS) {
      throw badInput(`--member-timeout must be a whole number of milliseconds from ${MIN_MEMBER_TIMEOUT_MS} to ${MAX_MEMBER_TIMEOUT_MS}`);
    }
  }
  const tls = await tlsFromFlags(given);
  const allowPlaintext = given.allowPlaintext === true;
  // Refused before the node starts: a misconfigured face should not join the cluster first.
  checkTlsPolicy(tls, 'socket' in nbdListen ? null : nbdListen.host, allowPlaintext);
  const server = { tls, allowPlaintext, idleTimeoutMs: idleFromFlags(given.nbdIdleTimeout) };
  await runNodeCommand(given, c, 'peer', { nbd: { listen: nbdListen, server, ...(memberTimeoutMs ? { memberTimeoutMs } : {}) } });
}
