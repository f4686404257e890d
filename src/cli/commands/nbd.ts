/** `tessera nbd`: its options and help; starting it (nbd-run.ts) is loaded when it runs. */
import type { Command } from 'commander';
import { DEFAULT_IDLE_TIMEOUT_MS } from '../../block/nbd/limits.js';
import { addNodeOptions, type NodeFlags } from './node.js';
import type { NbdFlags } from './nbd-run.js';

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
    .action(async (given: NodeFlags & NbdFlags, c: Command) => (await import('./nbd-run.js')).runNbdCommand(given, c));
}
