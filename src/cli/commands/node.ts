/**
 * `tessera node`: its options and help. Starting the node (node-run.ts) is imported only when the
 * command runs, so other commands and `--help` do not load the storage engine.
 */
import type { Command } from 'commander';
import { CONFIG_FILE, LOG_LEVELS as CONFIG_LOG_LEVELS } from '../config-names.js';

export const LOG_LEVELS: readonly string[] = CONFIG_LOG_LEVELS;

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
  multipartAbandonMs?: string;
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
  s3?: string;
  s3Domain?: string;
  /** false with --no-bulk-plane. */
  bulkPlane?: boolean;
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
    .option('--multipart-abandon-ms <ms>', 'how long an S3 multipart upload may stay open before it is aborted and its parts removed (default 7 days)')
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
    .option('--no-bulk-plane', 'send chunk and volume payloads over TLS too, instead of the plain bulk connection beside it (they are sealed already; see docs/security.md)')
    .option('--api-max-transfers <n>', 'uploads and downloads served at once; more are answered 503 (default 16)')
    .option('--s3 <host:port>', 'serve an S3-compatible endpoint here (plain HTTP on loopback, HTTPS with the API\'s certificate beyond it); keys: tessera s3 key create')
    .option('--s3-domain <domain>', 'also answer virtual-host style S3 requests for BUCKET.DOMAIN')
    .option('--config <file>', `settings file (default: DATA/${CONFIG_FILE} when present); flags override it`)
    .option('--json', 'log JSON lines even on a terminal');
}

const CONFIG_HELP = `
Every flag can also be set in DATA/${CONFIG_FILE} (camelCase keys; the *-ms flags end in Ms), e.g.
  {"listen": "0.0.0.0:7400", "api": "127.0.0.1:7401", "bootstrap": ["10.0.0.2:7400"], "quota": "50G",
   "logLevel": "info", "probeIntervalMs": 1000, "suspicionTimeoutMs": 3000}
`;

export function registerNode(program: Command): void {
  addNodeOptions(program.command('node').description('run a storage node'), 'listen')
    .addHelpText('after', `${CONFIG_HELP}
Example:
  tessera node --data ./n2 --listen 127.0.0.1:7410 --api 127.0.0.1:7411 --bootstrap 127.0.0.1:7400`)
    .action(async (given: NodeFlags & { json?: boolean }, cmd: Command) => (await import('./node-run.js')).runNodeCommand(given, cmd, 'listen'));
}

