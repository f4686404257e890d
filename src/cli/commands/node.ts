import type { Command } from 'commander';
import { parseHostPort } from '../../client/index.js';
import { badInput } from '../../errors.js';
import { createLogger, type LogLevel } from '../../log.js';
import { startNode } from '../../node.js';
import { parseSize } from '../format.js';
import { MAX_GC_GRACE_MS } from '../../files/limits.js';

const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];

interface NodeFlags {
  data: string;
  listen: string;
  api: string;
  advertise?: string;
  bootstrap?: string;
  memory?: boolean;
  quota?: string;
  logLevel: string;
  probeInterval?: string;
  suspicionTimeout?: string;
  gcGraceMs?: string;
  antiEntropyMs?: string;
}

function positiveMs(text: string | undefined, what: string): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!Number.isInteger(n) || n <= 0 || n > 600_000) throw badInput(`${what} must be a whole number of milliseconds from 1 to 600000`);
  return n;
}

export function registerNode(program: Command): void {
  program
    .command('node')
    .description('run a storage node')
    .requiredOption('--data <dir>', 'data directory made by `tessera init`')
    .option('--listen <host:port>', 'address for peer connections', '127.0.0.1:7400')
    .option('--api <host:port>', 'address of the HTTP API (a token is required beyond loopback)', '127.0.0.1:7401')
    .option('--advertise <host:port>', 'address peers should dial (default: the listen address)')
    .option('--bootstrap <host:port,...>', 'addresses of members to join through')
    .option('--memory', 'keep chunks in memory instead of on disk (tests, constrained devices)')
    .option('--quota <size>', 'most bytes of chunks this node will store, e.g. 50G')
    .option('--log-level <level>', `one of ${LOG_LEVELS.join(', ')}`, 'info')
    .option('--probe-interval <ms>', 'failure detector probe period')
    .option('--gc-grace-ms <ms>', 'how long a chunk no file references any more is kept before deletion (default 10 minutes)')
    .option('--anti-entropy-ms <ms>', 'how often removals and names are pulled from a peer (default 30 s)')
    .option('--suspicion-timeout <ms>', 'how long a suspect member has to refute before it is declared dead')
    .addHelpText('after', '\nExample:\n  tessera node --data ./n2 --listen 127.0.0.1:7410 --api 127.0.0.1:7411 --bootstrap 127.0.0.1:7400')
    .action(async (flags: NodeFlags) => {
      if (!LOG_LEVELS.includes(flags.logLevel)) throw badInput(`--log-level must be one of ${LOG_LEVELS.join(', ')}`);
      const listen = parseHostPort(flags.listen, '--listen');
      const api = parseHostPort(flags.api, '--api');
      const bootstrap = (flags.bootstrap ?? '').split(',').map((s) => s.trim()).filter(Boolean);
      for (const b of bootstrap) parseHostPort(b, '--bootstrap address');
      if (flags.advertise) parseHostPort(flags.advertise, '--advertise');
      const probeIntervalMs = positiveMs(flags.probeInterval, '--probe-interval');
      const suspicionTimeoutMs = positiveMs(flags.suspicionTimeout, '--suspicion-timeout');
      let gcGraceMs: number | undefined;
      if (flags.gcGraceMs !== undefined) {
        gcGraceMs = Number(flags.gcGraceMs);
        if (!Number.isInteger(gcGraceMs) || gcGraceMs < 0 || gcGraceMs > MAX_GC_GRACE_MS) throw badInput(`--gc-grace-ms must be a whole number of milliseconds from 0 to ${MAX_GC_GRACE_MS}`);
      }
      const antiEntropyIntervalMs = positiveMs(flags.antiEntropyMs, '--anti-entropy-ms');
      const logger = createLogger({ level: flags.logLevel as LogLevel });
      const node = await startNode({
        dataDir: flags.data,
        listen,
        api,
        ...(flags.advertise ? { advertise: flags.advertise } : {}),
        bootstrap,
        memory: flags.memory === true,
        ...(flags.quota ? { quota: parseSize(flags.quota, '--quota') } : {}),
        files: {
          ...(gcGraceMs !== undefined ? { gcGraceMs } : {}),
          ...(antiEntropyIntervalMs ? { antiEntropyIntervalMs } : {}),
        },
        membership: {
          ...(probeIntervalMs ? { probeIntervalMs } : {}),
          ...(suspicionTimeoutMs ? { suspicionTimeoutMs } : {}),
        },
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
