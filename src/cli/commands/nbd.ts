import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { parseHostPort } from '../../client/index.js';
import { badInput } from '../../errors.js';
import {
  checkTlsPolicy, DEFAULT_IDLE_TIMEOUT_MS, MAX_IDLE_TIMEOUT_MS, NBD_TLS_MODES, parsePskFile,
  type NbdTls, type NbdTlsCredentials, type NbdTlsMode,
} from '../../block/nbd/index.js';
import { addNodeOptions, runNodeCommand, type NodeFlags } from './node.js';

/** Bounds of --member-timeout: below a few ms every member looks dead; above ten minutes I/O hangs. */
const MIN_MEMBER_TIMEOUT_MS = 1;
const MAX_MEMBER_TIMEOUT_MS = 600_000;
/** Certificates and keys are a few KiB; a file far larger is the wrong file. */
const MAX_PEM_FILE_BYTES = 1 << 20;

interface NbdFlags {
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

export function registerNbd(program: Command): void {
  const cmd = program
    .command('nbd')
    .description("run a node that also serves every volume over NBD (the volumes' master)")
    .option('--listen <host:port>', 'NBD address for nbd-client, qemu and libnbd', '127.0.0.1:10809')
    .option('--socket <path>', 'serve NBD on this unix socket (mode 0600) instead of --listen')
    .option('--member-timeout <ms>', 'how long a volume member may take to answer before the volume runs degraded without it')
    .option('--tls <mode>', 'off, on (clients choose) or require; require when TLS credentials are given')
    .option('--tls-psk <file>', "pre-shared keys, one 'username:hexkey' per line (psktool -u NAME -p FILE)")
    .option('--tls-cert <file>', 'server certificate chain (PEM), with --tls-key')
    .option('--tls-key <file>', 'private key of --tls-cert (PEM)')
    .option('--tls-ca <file>', 'CA (PEM) that client certificates must chain to; clients without one are refused')
    .option('--allow-plaintext', 'serve NBD beyond loopback without required TLS (only on a network you trust)')
    .option('--nbd-idle-timeout <seconds>', `close client connections idle this long (0: never; default ${DEFAULT_IDLE_TIMEOUT_MS / 1000})`);
  addNodeOptions(cmd, 'peer')
    .addHelpText('after', '\nExamples:\n  tessera nbd --data ./m --listen 127.0.0.1:10809 --peer 127.0.0.1:7420 --api 127.0.0.1:7421 --bootstrap 127.0.0.1:7400\n  nbdinfo --list nbd://127.0.0.1:10809\n  psktool -u alice -p nbd.psk && tessera nbd ... --listen 0.0.0.0:10809 --tls-psk nbd.psk\n  nbdinfo --list "nbds://alice@host:10809/?tls-psk-file=nbd.psk"')
    .action(async (given: NodeFlags & NbdFlags, c: Command) => {
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
    });
}
