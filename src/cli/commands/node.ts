import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Command } from 'commander';
import { parseHostPort } from '../../client/index.js';
import { API_TOKEN_FILE, checkZone } from '../../cluster/index.js';
import { TesseraError, badInput } from '../../errors.js';
import { createLogger, type LogLevel } from '../../log.js';
import { parseDiskEngine, startNode, type NodeConfig } from '../../node.js';
import { RUNTIME_FILE } from '../../runtime-file.js';
import { CONFIG_FILE, LOG_LEVELS as CONFIG_LOG_LEVELS, loadNodeConfig, type NodeFileConfig } from '../config.js';
import { parseSize } from '../format.js';
import { missingTuning } from '../runtime-tuning.js';
import { MAX_GC_GRACE_MS, MAX_RATE_BYTES, MAX_REPAIR_GRACE_MS, MAX_REPAIR_INTERVAL_MS, MAX_SCRUB_INTERVAL_MS, MIN_RATE_BYTES, MIN_REPAIR_INTERVAL_MS, MIN_SCRUB_INTERVAL_MS } from '../../files/index.js';
import { parsePolicy } from '../../content/index.js';

const LOG_LEVELS: readonly string[] = CONFIG_LOG_LEVELS;

export interface NodeFlags {
  data: string;
  listen: string;
  api: string;
  advertise?: string;
  bootstrap?: string;
  zone?: string;
  memory?: boolean;
  storeEngine?: string;
  quota?: string;
  logLevel: string;
  probeInterval?: string;
  suspicionTimeout?: string;
  gcGraceMs?: string;
  antiEntropyMs?: string;
  cors?: string;
  config?: string;
  defaultPolicy?: string;
  repairGraceMs?: string;
  repairRate?: string;
  repairIntervalMs?: string;
  scrubRate?: string;
  scrubIntervalMs?: string;
  apiTls?: boolean;
  apiCert?: string;
  apiKey?: string;
  apiPlainHttp?: boolean;
  apiOpenReads?: boolean;
  apiIdleTimeoutMs?: string;
  apiMaxTransfers?: string;
}

/** Bounds of the API flags: an idle timeout from 1 s to an hour, and up to 1024 transfers. */
const MIN_API_IDLE_TIMEOUT_MS = 1000;
const MAX_API_IDLE_TIMEOUT_MS = 3_600_000;
const MAX_API_TRANSFERS = 1024;

/** A whole number within bounds from a flag, or undefined when the flag is absent. */
function boundedInt(text: string | undefined, what: string, min: number, max: number): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!Number.isInteger(n) || n < min || n > max) throw badInput(`${what} must be a whole number from ${min} to ${max}`);
  return n;
}

/** Bytes per second from a rate such as 64M (per second). */
function rateFlag(text: string | undefined, what: string): number | undefined {
  if (text === undefined) return undefined;
  const n = parseSize(text, what);
  if (n < MIN_RATE_BYTES || n > MAX_RATE_BYTES) throw badInput(`${what} must be from ${MIN_RATE_BYTES} to ${MAX_RATE_BYTES} bytes per second (e.g. 64M)`);
  return n;
}

/** Config file key for each flag that the file may set. */
const FROM_FILE: Array<[keyof NodeFlags, keyof NodeFileConfig]> = [
  ['listen', 'listen'], ['api', 'api'], ['advertise', 'advertise'], ['bootstrap', 'bootstrap'], ['zone', 'zone'], ['memory', 'memory'],
  ['quota', 'quota'], ['logLevel', 'logLevel'], ['probeInterval', 'probeIntervalMs'], ['suspicionTimeout', 'suspicionTimeoutMs'],
  ['gcGraceMs', 'gcGraceMs'], ['antiEntropyMs', 'antiEntropyMs'], ['cors', 'cors'],
];

/** Flags typed on the command line win; the file fills in the rest, before the built-in defaults. */
function mergeConfig(flags: NodeFlags, peerFlag: PeerFlag, cmd: Command, file: NodeFileConfig): NodeFlags {
  const merged: Record<string, unknown> = { ...flags };
  for (const [flag, key] of FROM_FILE) {
    const source = cmd.getOptionValueSource(flag === 'listen' ? peerFlag : flag);
    const v = file[key];
    if (v === undefined || source === 'cli' || source === 'env') continue;
    merged[flag] = typeof v === 'boolean' ? v : Array.isArray(v) ? v.join(',') : String(v);
  }
  return merged as unknown as NodeFlags;
}

/** The dashboard address with the token in its fragment: browsers never send a fragment to a server. */
async function dashboardUrl(dataDir: string): Promise<{ url: string; api: string }> {
  let api: string;
  let scheme = 'http';
  try {
    const info = JSON.parse(await readFile(join(dataDir, RUNTIME_FILE), 'utf8')) as { api: string; apiScheme?: string };
    api = info.api;
    if (info.apiScheme === 'https') scheme = 'https';
  } catch {
    throw new TesseraError('UNAVAILABLE', `no node is running with data directory ${dataDir}; start it with \`tessera node --data ${dataDir}\``);
  }
  const token = (await readFile(join(dataDir, API_TOKEN_FILE), 'utf8')).trim();
  // A wildcard bind is reachable on loopback from this machine.
  const local = api.replace(/^0\.0\.0\.0:/, '127.0.0.1:').replace(/^\[::\]:/, '[::1]:');
  return { url: `${scheme}://${local}/#token=${encodeURIComponent(token)}`, api: local };
}

function positiveMs(text: string | undefined, what: string): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!Number.isInteger(n) || n <= 0 || n > 600_000) throw badInput(`${what} must be a whole number of milliseconds from 1 to 600000`);
  return n;
}

/**
 * How a command that runs a node names its peer address: `tessera node` calls it --listen;
 * `tessera nbd` keeps --listen for the NBD address, as clients expect, and calls it --peer.
 */
export type PeerFlag = 'listen' | 'peer';

/** The options of every command that runs a node (`tessera node`, `tessera nbd`). */
export function addNodeOptions(cmd: Command, peerFlag: PeerFlag): Command {
  return cmd
    .requiredOption('--data <dir>', 'data directory made by `tessera init`')
    .option(`--${peerFlag} <host:port>`, 'address for peer connections', '127.0.0.1:7400')
    .option('--api <host:port>', 'address of the HTTP API (a token is required beyond loopback)', '127.0.0.1:7401')
    .option('--advertise <host:port>', `address peers should dial (default: the --${peerFlag} address)`)
    .option('--bootstrap <host:port,...>', 'addresses of members to join through')
    .option('--zone <name>', 'failure domain of this node (rack, room, site): copies of every chunk go to distinct zones (default: the host name)')
    .option('--memory', 'keep chunks in memory instead of on disk (tests, constrained devices)')
    .option('--store-engine <engine>', 'disk chunk engine: segments (append-only files, group commit) or files (one file per chunk); default: the one the data dir already holds, else segments')
    .option('--quota <size>', 'most bytes of chunks this node will store, e.g. 50G')
    .option('--log-level <level>', `one of ${LOG_LEVELS.join(', ')}`, 'info')
    .option('--probe-interval <ms>', 'failure detector probe period')
    .option('--gc-grace-ms <ms>', 'how long a chunk no file references any more is kept before deletion (default 10 minutes)')
    .option('--anti-entropy-ms <ms>', 'how often removals and names are pulled from a peer (default 30 s)')
    .option('--suspicion-timeout <ms>', 'how long a suspect member has to refute before it is declared dead')
    .option('--default-policy <policy>', 'redundancy of puts that name none: a replica count such as 3, or shards such as 4+2 (default 3)')
    .option('--repair-grace-ms <ms>', 'how long a member must stay dead before its data is recreated elsewhere (default 5 minutes)')
    .option('--repair-rate <bytes>', 'bytes per second this node spends on repair, rebalance and drain, e.g. 64M (default 64M)')
    .option('--repair-interval-ms <ms>', 'how often a full repair pass runs when membership is quiet (default 60 s)')
    .option('--scrub-rate <bytes>', 'bytes per second the background scrub re-verifies, e.g. 32M (default 32M)')
    .option('--scrub-interval-ms <ms>', 'time between background scrub passes (default 24 h)')
    .option('--cors <origin>', 'let pages of this origin call the API from a browser (default: no cross-origin access)')
    .option('--api-tls', 'serve the API over HTTPS also on loopback (beyond loopback it is the default), with the self-signed certificate in DATA/api-cert.pem')
    .option('--api-cert <file>', 'serve the API over HTTPS with this PEM certificate (chain) instead of the self-signed one; needs --api-key')
    .option('--api-key <file>', 'PEM private key for --api-cert')
    .option('--api-plain-http', 'serve plain HTTP even beyond loopback (only behind a TLS-terminating proxy: the token and file contents would cross the network in clear)')
    .option('--api-open-reads', 'let local users read through a loopback API without the token (off by default)')
    .option('--api-idle-timeout-ms <ms>', 'close an API connection that moves no data for this long (default 30000)')
    .option('--api-max-transfers <n>', 'uploads and downloads served at once; more are answered 503 (default 16)')
    .option('--config <file>', `settings file (default: DATA/${CONFIG_FILE} when present); flags override it`)
    .option('--json', 'log JSON lines even on a terminal');
}

const CONFIG_HELP = `
Every flag can also be set in DATA/${CONFIG_FILE} (camelCase keys; the *-ms flags end in Ms), e.g.
  {"listen": "0.0.0.0:7400", "api": "127.0.0.1:7401", "bootstrap": ["10.0.0.2:7400"], "quota": "50G",
   "logLevel": "info", "probeIntervalMs": 1000, "suspicionTimeoutMs": 3000}
`;

/**
 * Starts a node from a command's flags (merged with the config file) and keeps it running
 * until SIGTERM or SIGINT, when it leaves the cluster and exits.
 */
export async function runNodeCommand(
  given: NodeFlags & { peer?: string; json?: boolean },
  cmd: Command,
  peerFlag: PeerFlag,
  extra: Pick<NodeConfig, 'nbd'> = {},
): Promise<void> {
  const file = await loadNodeConfig(given.data, given.config);
  // The config file's "listen" is always the peer address, whatever the flag is called.
  const flags = mergeConfig({ ...given, listen: peerFlag === 'peer' ? (given.peer as string) : given.listen }, peerFlag === 'peer' ? 'peer' : 'listen', cmd, file.config);
  if (!LOG_LEVELS.includes(flags.logLevel)) throw badInput(`--log-level must be one of ${LOG_LEVELS.join(', ')}`);
  const listen = parseHostPort(flags.listen, `--${peerFlag}`);
  const api = parseHostPort(flags.api, '--api');
  const bootstrap = (flags.bootstrap ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  for (const b of bootstrap) parseHostPort(b, '--bootstrap address');
  if (flags.advertise) parseHostPort(flags.advertise, '--advertise');
  if (flags.zone !== undefined) checkZone(flags.zone);
  const probeIntervalMs = positiveMs(flags.probeInterval, '--probe-interval');
  const suspicionTimeoutMs = positiveMs(flags.suspicionTimeout, '--suspicion-timeout');
  const gcGraceMs = boundedInt(flags.gcGraceMs, '--gc-grace-ms', 0, MAX_GC_GRACE_MS);
  const antiEntropyIntervalMs = positiveMs(flags.antiEntropyMs, '--anti-entropy-ms');
  const defaultPolicy = flags.defaultPolicy !== undefined ? parsePolicy(flags.defaultPolicy) : undefined;
  const repairGraceMs = boundedInt(flags.repairGraceMs, '--repair-grace-ms', 0, MAX_REPAIR_GRACE_MS);
  const repairIntervalMs = boundedInt(flags.repairIntervalMs, '--repair-interval-ms', MIN_REPAIR_INTERVAL_MS, MAX_REPAIR_INTERVAL_MS);
  const scrubIntervalMs = boundedInt(flags.scrubIntervalMs, '--scrub-interval-ms', MIN_SCRUB_INTERVAL_MS, MAX_SCRUB_INTERVAL_MS);
  const repairRateBytes = rateFlag(flags.repairRate, '--repair-rate');
  const scrubRateBytes = rateFlag(flags.scrubRate, '--scrub-rate');
  const apiIdleTimeoutMs = boundedInt(flags.apiIdleTimeoutMs, '--api-idle-timeout-ms', MIN_API_IDLE_TIMEOUT_MS, MAX_API_IDLE_TIMEOUT_MS);
  const apiMaxTransfers = boundedInt(flags.apiMaxTransfers, '--api-max-transfers', 1, MAX_API_TRANSFERS);
  const logger = createLogger({ level: flags.logLevel as LogLevel, ...(given.json ? { pretty: false } : {}) });
  if (file.path) logger.debug({ config: file.path }, 'settings read from the config file');
  const missing = missingTuning();
  if (missing.length > 0) logger.info({ missing }, 'started without the runtime tuning of the tessera command (see docs/development.md): encryption and hashing may run several times slower');
  const node = await startNode({
    dataDir: flags.data,
    listen,
    api,
    ...(flags.advertise ? { advertise: flags.advertise } : {}),
    bootstrap,
    ...(flags.zone !== undefined ? { zone: flags.zone } : {}),
    memory: flags.memory === true,
    ...(flags.storeEngine ? { storeEngine: parseDiskEngine(flags.storeEngine) } : {}),
    ...(flags.cors ? { cors: flags.cors } : {}),
    apiSecurity: {
      ...(flags.apiTls ? { tls: true } : {}),
      ...(flags.apiCert !== undefined ? { certFile: flags.apiCert } : {}),
      ...(flags.apiKey !== undefined ? { keyFile: flags.apiKey } : {}),
      ...(flags.apiPlainHttp ? { plainHttp: true } : {}),
      ...(flags.apiOpenReads ? { openReads: true } : {}),
      ...(apiIdleTimeoutMs !== undefined ? { idleTimeoutMs: apiIdleTimeoutMs } : {}),
      ...(apiMaxTransfers !== undefined ? { maxTransfers: apiMaxTransfers } : {}),
    },
    ...(flags.quota ? { quota: parseSize(flags.quota, '--quota') } : {}),
    files: {
      ...(gcGraceMs !== undefined ? { gcGraceMs } : {}),
      ...(antiEntropyIntervalMs ? { antiEntropyIntervalMs } : {}),
      ...(defaultPolicy ? { defaultPolicy } : {}),
      ...(repairGraceMs !== undefined ? { repairGraceMs } : {}),
      ...(repairIntervalMs !== undefined ? { repairIntervalMs } : {}),
      ...(scrubIntervalMs !== undefined ? { scrubIntervalMs } : {}),
      ...(repairRateBytes !== undefined ? { repairRateBytes } : {}),
      ...(scrubRateBytes !== undefined ? { scrubRateBytes } : {}),
    },
    membership: {
      ...(probeIntervalMs ? { probeIntervalMs } : {}),
      ...(suspicionTimeoutMs ? { suspicionTimeoutMs } : {}),
    },
    ...extra,
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
}

export function registerNode(program: Command): void {
  addNodeOptions(program.command('node').description('run a storage node'), 'listen')
    .addHelpText('after', `${CONFIG_HELP}
Example:
  tessera node --data ./n2 --listen 127.0.0.1:7410 --api 127.0.0.1:7411 --bootstrap 127.0.0.1:7400`)
    .action((given: NodeFlags & { json?: boolean }, cmd: Command) => runNodeCommand(given, cmd, 'listen'));
}

export function registerDashboard(program: Command): void {
  program
    .command('dashboard')
    .description("print the address of a local node's web dashboard, with its API token in the fragment")
    .requiredOption('--data <dir>', 'data directory of a running node')
    .option('--json', 'print {url, api} as JSON')
    .addHelpText('after', '\nThe token after # stays in the browser (saved in the page), it is never sent in a request line.\n\nExample:\n  tessera dashboard --data ./n1     # then open the printed address')
    .action(async (flags: { data: string; json?: boolean }) => {
      const d = await dashboardUrl(flags.data);
      process.stdout.write((flags.json ? JSON.stringify(d) : d.url) + '\n');
    });
}
