import type { Command } from 'commander';
import { parseHostPort } from '../../client/index.js';
import { badInput } from '../../errors.js';
import { createLogger, type LogLevel } from '../../log.js';
import { startNode } from '../../node.js';
import { parseSize } from '../format.js';

const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];

interface NbdFlags {
  data: string;
  listen: string;
  socket?: string;
  peer: string;
  api: string;
  advertise?: string;
  bootstrap?: string;
  quota?: string;
  logLevel: string;
  probeInterval?: string;
  suspicionTimeout?: string;
  memberTimeout?: string;
}

function positiveMs(text: string | undefined, what: string): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!Number.isInteger(n) || n <= 0 || n > 600_000) throw badInput(`${what} must be a whole number of milliseconds from 1 to 600000`);
  return n;
}

export function registerNbd(program: Command): void {
  program
    .command('nbd')
    .description('run a node that also serves every volume over NBD (the volumes\' master)')
    .requiredOption('--data <dir>', 'data directory made by `tessera init`')
    .option('--listen <host:port>', 'NBD address for nbd-client, qemu and libnbd', '127.0.0.1:10809')
    .option('--socket <path>', 'serve NBD on this unix socket instead of --listen')
    .option('--peer <host:port>', 'address for peer connections', '127.0.0.1:7400')
    .option('--api <host:port>', 'address of the HTTP API (a token is required beyond loopback)', '127.0.0.1:7401')
    .option('--advertise <host:port>', 'address peers should dial (default: the peer address)')
    .option('--bootstrap <host:port,...>', 'addresses of members to join through')
    .option('--quota <size>', 'most bytes of chunks this node will store, e.g. 50G')
    .option('--log-level <level>', `one of ${LOG_LEVELS.join(', ')}`, 'info')
    .option('--probe-interval <ms>', 'failure detector probe period')
    .option('--suspicion-timeout <ms>', 'how long a suspect member has to refute before it is declared dead')
    .option('--member-timeout <ms>', 'how long a volume member may take to answer before the volume runs degraded without it')
    .addHelpText('after', '\nExample:\n  tessera nbd --data ./m --listen 127.0.0.1:10809 --peer 127.0.0.1:7420 --api 127.0.0.1:7421 --bootstrap 127.0.0.1:7400\n  nbdinfo --list nbd://127.0.0.1:10809')
    .action(async (flags: NbdFlags) => {
      if (!LOG_LEVELS.includes(flags.logLevel)) throw badInput(`--log-level must be one of ${LOG_LEVELS.join(', ')}`);
      const nbdListen = flags.socket ? { socket: flags.socket } : parseHostPort(flags.listen, '--listen');
      const listen = parseHostPort(flags.peer, '--peer');
      const api = parseHostPort(flags.api, '--api');
      const bootstrap = (flags.bootstrap ?? '').split(',').map((s) => s.trim()).filter(Boolean);
      for (const b of bootstrap) parseHostPort(b, '--bootstrap address');
      if (flags.advertise) parseHostPort(flags.advertise, '--advertise');
      const probeIntervalMs = positiveMs(flags.probeInterval, '--probe-interval');
      const suspicionTimeoutMs = positiveMs(flags.suspicionTimeout, '--suspicion-timeout');
      const memberTimeoutMs = positiveMs(flags.memberTimeout, '--member-timeout');
      const logger = createLogger({ level: flags.logLevel as LogLevel });
      const node = await startNode({
        dataDir: flags.data,
        listen,
        api,
        ...(flags.advertise ? { advertise: flags.advertise } : {}),
        bootstrap,
        memory: false,
        ...(flags.quota ? { quota: parseSize(flags.quota, '--quota') } : {}),
        membership: {
          ...(probeIntervalMs ? { probeIntervalMs } : {}),
          ...(suspicionTimeoutMs ? { suspicionTimeoutMs } : {}),
        },
        nbd: { listen: nbdListen, ...(memberTimeoutMs ? { memberTimeoutMs } : {}) },
        logger,
      });
      let stopping = false;
      const stop = (signal: string) => {
        if (stopping) return;
        stopping = true;
        logger.info({ signal }, 'leaving the cluster');
        node.stop({ leave: true }).then(
          () => process.exit(0),
          (err: unknown) => {
            logger.error({ err }, 'unclean stop');
            process.exit(1);
          },
        );
      };
      process.on('SIGTERM', () => stop('SIGTERM'));
      process.on('SIGINT', () => stop('SIGINT'));
    });
}
