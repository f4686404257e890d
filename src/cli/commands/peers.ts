import type { Command } from 'commander';
import type { PeerView, StatusView } from '../../api/index.js';
import { clientFrom, type ClientFlags } from '../context.js';
import { formatAgo, formatBytes, table } from '../format.js';

/** Options every client command takes. */
export function withClientOptions(cmd: Command): Command {
  return cmd
    .option('--api <host:port>', 'API of the node to talk to (default: $TESSERA_API or 127.0.0.1:7401)')
    .option('--token <token>', 'API bearer token (default: $TESSERA_TOKEN, or DATA/api-token with --data)')
    .option('--data <dir>', "a local node's data directory, to find its API and token")
    .option('--json', 'print JSON for scripts');
}

export function peersTable(peers: PeerView[]): string {
  const rows = peers.map((p) => [
    p.nodeId.slice(0, 12) + (p.self ? '*' : ''),
    p.addr,
    p.zone || '-',
    p.state,
    formatBytes(p.capacity),
    formatBytes(p.used),
    formatAgo(p.lastSeenAgoMs),
  ]);
  return table(['NODE', 'ADDRESS', 'ZONE', 'STATE', 'CAPACITY', 'USED', 'LAST SEEN'], rows);
}

function statusText(s: StatusView): string {
  const m = s.members;
  return [
    `node       ${s.nodeId}`,
    `cluster    ${s.clusterId}`,
    `version    ${s.version}`,
    `listen     ${s.listen}    api ${s.api}    up ${s.uptimeSec} s`,
    `members    ${m.alive} alive, ${m.suspect} suspect, ${m.dead} dead, ${m.left} left`,
    `zone       ${s.zone || '-'}    (${s.zonesUp} zone${s.zonesUp === 1 ? '' : 's'} up)`,
    `store      ${s.store.engine}: ${formatBytes(s.store.used)} used in ${s.store.count} chunks, capacity ${formatBytes(s.store.capacity)}`,
    ...(s.repair
      ? [
          `redundancy ${formatBytes(s.repair.underReplicatedBytes)} under-replicated (${s.repair.underReplicatedChunks} copies missing, ${s.repair.waitingForGraceChunks} waiting for a dead member's grace period); ` +
            `repaired ${formatBytes(s.repair.totals.bytesRestored)} in ${s.repair.totals.copiesMade} copies${s.repair.running ? ', pass running' : ''}${s.repair.draining ? '; DRAINING' : ''}`,
        ]
      : []),
    ...(s.metadata ? [`metadata   ${s.metadata.fullNodes} full node(s) live, ${s.metadata.replicas} copies per table partition${s.metadata.warning ? `; WARNING: ${s.metadata.warning}` : ''}`, ...(s.metadata.lmdb ? [`           lmdb: ${s.metadata.lmdb.bounded ? 'bounded page cache' : 'prebuilt addon, unbounded encrypted page cache'} (${s.metadata.lmdb.detail})`] : [])] : []),
    '',
    peersTable(s.peers),
  ].join('\n');
}

export function registerPeers(program: Command): void {
  withClientOptions(program.command('peers').description('list the cluster members a node knows, with state and capacity'))
    .addHelpText('after', '\nExample:\n  tessera peers --api 127.0.0.1:7401')
    .action(async (opts: ClientFlags & { json?: boolean }) => {
      const peers = await (await clientFrom(opts)).peers();
      process.stdout.write((opts.json ? JSON.stringify(peers) : peersTable(peers)) + '\n');
    });

  withClientOptions(program.command('status').description("a node's view of the cluster: membership, health, capacity"))
    .addHelpText('after', '\nExample:\n  tessera status --data ./n1')
    .action(async (opts: ClientFlags & { json?: boolean }) => {
      const status = await (await clientFrom(opts)).status();
      process.stdout.write((opts.json ? JSON.stringify(status) : statusText(status)) + '\n');
    });
}
