import type { Command } from 'commander';
import { badInput } from '../../errors.js';
import { addNodeOptions, type NodeFlags } from './node.js';

/** Bounds of --member-timeout: below a few ms every member looks dead; above ten minutes I/O hangs. */
const MIN_MEMBER_TIMEOUT_MS = 1;
const MAX_MEMBER_TIMEOUT_MS = 600_000;

export function registerNbd(program: Command): void {
  const cmd = program
    .command('nbd')
    .description("run a node that also serves every volume over NBD (the volumes' master)")
    .option('--listen <host:port>', 'NBD address for nbd-client, qemu and libnbd', '127.0.0.1:10809')
    .option('--socket <path>', 'serve NBD on this unix socket instead of --listen')
    .option('--member-timeout <ms>', 'how long a volume member may take to answer before the volume runs degraded without it');
  addNodeOptions(cmd, 'peer')
    .addHelpText('after', '\nExample:\n  tessera nbd --data ./m --listen 127.0.0.1:10809 --peer 127.0.0.1:7420 --api 127.0.0.1:7421 --bootstrap 127.0.0.1:7400\n  nbdinfo --list nbd://127.0.0.1:10809')
    .action(async (given: NodeFlags & { peer: string; socket?: string; memberTimeout?: string }, c: Command) => {
      const [{ parseHostPort }, { runNodeCommand }] = await Promise.all([import('../../client/index.js'), import('./node-run.js')]);
      const nbdListen = given.socket ? { socket: given.socket } : parseHostPort(given.listen, '--listen');
      let memberTimeoutMs: number | undefined;
      if (given.memberTimeout !== undefined) {
        memberTimeoutMs = Number(given.memberTimeout);
        if (!Number.isInteger(memberTimeoutMs) || memberTimeoutMs < MIN_MEMBER_TIMEOUT_MS || memberTimeoutMs > MAX_MEMBER_TIMEOUT_MS) {
          throw badInput(`--member-timeout must be a whole number of milliseconds from ${MIN_MEMBER_TIMEOUT_MS} to ${MAX_MEMBER_TIMEOUT_MS}`);
        }
      }
      await runNodeCommand(given, c, 'peer', { nbd: { listen: nbdListen, ...(memberTimeoutMs ? { memberTimeoutMs } : {}) } });
    });
}
