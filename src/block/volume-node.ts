/**
 * Block volumes on one node: the extent store and its minion, the replicated volume records, the
 * volume operations the API calls and, on a master, the VolumeMaster the NBD face serves.
 * The composition root calls startVolumes(), which registers its own peer handlers.
 */
import { join } from 'node:path';
import { badInput, TesseraError } from '../errors.js';
import { silentLogger, type Logger } from '../log.js';
import type { Membership, NodeCalls } from '../cluster/index.js';
import type { PeerHandlers } from '../net/index.js';
import { ExtentStore, type Metadata } from '../store/index.js';
import { VolumeMaster } from './master.js';
import { EXTENT_RPC_PREFIX, Minion } from './minion.js';
import type { MemberNet } from './remote-member.js';
import { VolumeAuthority } from './volume-authority.js';
import { extentName, VOLUME_RPC_PREFIX, VolumeRegistry, VolumeService, type ClusterView } from './volumes.js';

/** Background anti-entropy: records also reach nodes that missed a push and a join exchange. */
export const RECORD_EXCHANGE_MS = 15_000;

export interface VolumeNodeOptions {
  dataDir: string;
  selfId: string;
  meta: Metadata;
  membership: Membership;
  /** The node's caller; a master that is a member of its own volumes reaches itself without a socket. */
  caller: NodeCalls;
  /** Where the volumes register the extent (minion) and volume-record parts of the peer protocol. */
  handlers: PeerHandlers;
  /** Serve every volume as master (tessera nbd). */
  master: boolean;
  /** The cluster's data key: a master seals volume blocks with keys derived from it. */
  dataKey?: Uint8Array;
  /** A storage-only node's public authority key: it checks volume records and extent changes with it. */
  authorityKey?: Uint8Array;
  memberTimeoutMs?: number;
  logger?: Logger;
}

export interface VolumeNode {
  readonly service: VolumeService;
  readonly master: VolumeMaster | undefined;
  readonly extents: ExtentStore;
  stop(): Promise<void>;
}

export async function startVolumes(o: VolumeNodeOptions): Promise<VolumeNode> {
  const log = o.logger ?? silentLogger;
  const extents = await ExtentStore.open(join(o.dataDir, 'extents'), { log });
  const net: MemberNet = {
    // The master keeps its own member state (degraded mode, member timeouts), so no hold-down here.
    call: (nodeId, method, body, payload, timeoutMs) => o.caller.call(nodeId, method, body, payload, { timeoutMs, respectHoldDown: false }),
  };

  const alive = () => o.membership.members().filter((m) => m.state === 'alive' || m.nodeId === o.selfId);
  const cluster: ClusterView = { selfId: o.selfId, alive };
  const authority = new VolumeAuthority({ dataKey: o.dataKey, authorityKey: o.authorityKey }, o.selfId, log);
  const reg = await VolumeRegistry.open(o.meta, net, cluster, authority, log);
  const minion = new Minion(extents, {
    accept: (record, from) => reg.acceptFromPeer(record, from),
    check: (op, extent, from) => authority.checkExtent(op, extent, reg.forExtent(extent), from),
  });
  // Registered before the master starts: a master may be a member of its own volumes and call itself.
  o.handlers.register(EXTENT_RPC_PREFIX, (req) => minion.handle(req));
  o.handlers.register(VOLUME_RPC_PREFIX, (req) => reg.handle(req));

  // A node that was down when a volume was removed deletes its extent when the tombstone arrives.
  const dropExtent = (name: string) => {
    if (extents.list().some((e) => e.name === name)) {
      void extents.delete(name).then(() => log.info({ extent: name }, 'removed extent of a deleted volume'), (err: unknown) => log.warn({ err, extent: name }, 'extent of a deleted volume not removed'));
    }
  };
  reg.on('change', (rec) => { if (rec.deleted) dropExtent(extentName(rec)); });
  for (const e of extents.list()) {
    const dot = e.name.lastIndexOf('.');
    const rec = reg.latest(e.name.slice(0, dot));
    if (rec !== undefined && rec.deleted && rec.id === e.name.slice(dot + 1)) dropExtent(e.name);
  }

  const exchange = (nodeId: string) => void reg.exchange(nodeId).catch((err: unknown) => log.debug({ node: nodeId, err: (err as Error).message }, 'volume record exchange failed'));
  const onChange = (m: { nodeId: string; state: string }, prev: string | undefined) => {
    if (m.nodeId !== o.selfId && m.state === 'alive' && prev !== 'alive') exchange(m.nodeId);
  };
  o.membership.on('change', onChange);
  const timer = setInterval(() => {
    const peers = alive().filter((m) => m.nodeId !== o.selfId);
    const p = peers[Math.floor(Math.random() * peers.length)];
    if (p !== undefined) exchange(p.nodeId);
  }, RECORD_EXCHANGE_MS);
  timer.unref();

  const service = new VolumeService(reg, net, cluster, log);
  let master: VolumeMaster | undefined;
  if (o.master) {
    if (o.dataKey === undefined) {
      throw badInput('this node is storage-only (it joined without the data key) and cannot be a volume master: volume blocks are encrypted with keys derived from the data key; run tessera nbd on a node that has it');
    }
    master = new VolumeMaster({
      dataKey: o.dataKey,
      dataDir: o.dataDir,
      registry: reg,
      net,
      selfId: o.selfId,
      isAlive: (id) => id === o.selfId || o.membership.get(id)?.state === 'alive',
      aliveIds: () => alive().map((m) => m.nodeId),
      ...(o.memberTimeoutMs !== undefined ? { memberTimeoutMs: o.memberTimeoutMs } : {}),
      logger: log,
    });
    service.master = master;
    master.start();
  }

  return {
    service,
    master,
    extents,
    async stop() {
      clearInterval(timer);
      o.membership.off('change', onChange);
      await master?.close();
      await extents.close();
    },
  };
}
