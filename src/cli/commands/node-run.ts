/** Starts a node from the flags of `tessera node` or `tessera nbd` and keeps it running. */
import type { Command } from 'commander';
import { parseHostPort } from '../../client/index.js';
import { badInput } from '../../errors.js';
import { createLogger, type LogLevel } from '../../log.js';
import { parseDiskEngine, startNode, type NodeConfig } from '../../node.js';
import { checkZone } from '../../cluster/index.js';
import { loadNodeConfig, type NodeFileConfig } from '../config.js';
import { parseSize } from '../format.js';
import { missingTuning } from '../runtime-tuning.js';
import { MAX_ABANDON_AFTER_MS, MAX_GC_GRACE_MS, MAX_RATE_BYTES, MAX_REPAIR_GRACE_MS, MAX_REPAIR_INTERVAL_MS, MAX_SCRUB_INTERVAL_MS, MIN_RATE_BYTES, MIN_REPAIR_INTERVAL_MS, MIN_SCRUB_INTERVAL_MS } from '../../files/index.js';
import { parsePolicy } from '../../content/index.js';
import { LOG_LEVELS, type NodeFlags, type PeerFlag } from './node.js';

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

function positiveMs(text: string | undefined, what: string): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!Number.isInteger(n) || n <= 0 || n > 600_000) throw badInput(`${what} must be a whole number of milliseconds from 1 to 600000`);
  return n;
}

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
  if (flags.s3Domain !== undefined && flags.s3 === undefined) throw badInput('--s3-domain names the domain of the S3 endpoint: give --s3 HOST:PORT too');
  const bootstrap = (flags.bootstrap ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  for (const b of bootstrap) parseHostPort(b, '--bootstrap address');
  if (flags.advertise) parseHostPort(flags.advertise, '--advertise');
  if (flags.zone !== undefined) checkZone(flags.zone);
  const probeIntervalMs = positiveMs(flags.probeInterval, '--probe-interval');
  const suspicionTimeoutMs = positiveMs(flags.suspicionTimeout, '--suspicion-timeout');
  const gcGraceMs = boundedInt(flags.gcGraceMs, '--gc-grace-ms', 0, MAX_GC_GRACE_MS);
  const multipartAbandonMs = boundedInt(flags.multipartAbandonMs, '--multipart-abandon-ms', 0, MAX_ABANDON_AFTER_MS);
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
    ...(flags.bulkPlane === false ? { bulkPlane: false } : {}),
    apiSecurity: {
      ...(flags.apiTls ? { tls: true } : {}),
      ...(flags.apiCert !== undefined ? { certFile: flags.apiCert } : {}),
      ...(flags.apiKey !== undefined ? { keyFile: flags.apiKey } : {}),
      ...(flags.apiPlainHttp ? { plainHttp: true } : {}),
      ...(flags.apiOpenReads ? { openReads: true } : {}),
      ...(apiIdleTimeoutMs !== undefined ? { idleTimeoutMs: apiIdleTimeoutMs } : {}),
      ...(apiMaxTransfers !== undefined ? { maxTransfers: apiMaxTransfers } : {}),
    },
    ...(flags.s3 !== undefined ? { s3: { ...parseHostPort(flags.s3, '--s3'), ...(flags.s3Domain ? { domain: flags.s3Domain } : {}) } } : {}),
    ...(flags.quota ? { quota: parseSize(flags.quota, '--quota') } : {}),
    files: {
      ...(gcGraceMs !== undefined ? { gcGraceMs } : {}),
      ...(multipartAbandonMs !== undefined ? { multipartAbandonMs } : {}),
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
