/**
 * The files layer of one node, composed: the collaborators the client side (service.ts) and the
 * peer side (peer-service.ts) share, built once here so neither builds the other's. The
 * composition root calls composeFiles(), as it calls startVolumes() for the block layer.
 */
import { badInput } from '../errors.js';
import { AuthoritySigner, AuthorityVerifier, DEFAULT_POLICY, checkPolicy, deriveClusterKeys } from '../content/index.js';
import type { PeerHandlers } from '../net/index.js';
import { AntiEntropy } from './anti-entropy.js';
import { AuthorityGate } from './authority-gate.js';
import { ChunkHost } from './chunk-host.js';
import { EcWriter } from './erasure-writer.js';
import { CONTROL_CALL_TIMEOUT_MS, MAX_IDS_PER_REQUEST, DEFAULT_ANTI_ENTROPY_INTERVAL_MS, DEFAULT_CACHE_BYTES, DEFAULT_GC_GRACE_MS, DEFAULT_PENDING_UPLOAD_TTL_MS, DEFAULT_WINDOW_CHUNKS, MAX_GC_GRACE_MS, MAX_WINDOW_CHUNKS } from './limits.js';
import { FilesPeerService } from './peer-service.js';
import { FILE_METHODS, parseReply, replies } from './rpc.js';
import { Peers } from './peers.js';
import { ChunkFetcher } from './reader.js';
import { RefStore } from './refs.js';
import { RepairLoop } from './repair.js';
import { RepairMeta } from './repair-meta.js';
import { Scrubber } from './scrub.js';
import { FileService, type FileServiceOptions } from './service.js';
import { FileWriter } from './writer.js';
import { keepProvingLegacyCommits } from './legacy-commits.js';
import { errorMessage } from './errors.js';

export interface FilesNode {
  /** What the faces call: put, get, rm, stat, drain. */
  readonly service: FileService;
  /** The files protocol's storage side; `register` hands it the chunk., file. and heal. methods. */
  readonly peer: FilesPeerService;
  /** Checks the proof of every destructive message; counts the ones it refuses. */
  readonly authorityGate: AuthorityGate;
  /** Starts the background work: upload expiry and collection, anti-entropy, repair, scrub. */
  start(): void;
  stop(): Promise<void>;
  /** A peer came (back) to life: exchange what either side may have missed. */
  peerUp(nodeId: string): void;
  registerPeerHandlers(handlers: PeerHandlers): void;
}

export function composeFiles(o: FileServiceOptions): FilesNode {
  const grace = o.gcGraceMs ?? DEFAULT_GC_GRACE_MS;
  if (!Number.isInteger(grace) || grace < 0 || grace > MAX_GC_GRACE_MS) throw badInput(`gc grace period must be 0..${MAX_GC_GRACE_MS} ms`);
  const window = o.windowChunks ?? DEFAULT_WINDOW_CHUNKS;
  if (!Number.isInteger(window) || window < 1 || window > MAX_WINDOW_CHUNKS) throw badInput(`window must be 1..${MAX_WINDOW_CHUNKS} chunks`);
  const defaultPolicy = checkPolicy(o.defaultPolicy ?? DEFAULT_POLICY);
  const log = o.log.child({ component: 'files' });
  // A storage-only node has no data key: it holds chunks it cannot read and writes no files.
  const keys = o.dataKey ? deriveClusterKeys(o.dataKey) : undefined;
  const signer = o.dataKey ? new AuthoritySigner(o.dataKey) : undefined;
  const authorityGate = new AuthorityGate(signer ?? (o.authorityKey ? new AuthorityVerifier(o.authorityKey) : undefined), log);
  const refs = new RefStore(o.meta);
  const peers = new Peers(o.net);
  const host = new ChunkHost({
    store: o.store,
    refs,
    log,
    gcGraceMs: grace,
    pendingUploadTtlMs: o.pendingUploadTtlMs ?? DEFAULT_PENDING_UPLOAD_TTL_MS,
    askCommitted: (uploads) => askCommitted(peers, authorityGate, uploads),
  });
  const fetcher = new ChunkFetcher(peers, log, o.cacheBytes ?? DEFAULT_CACHE_BYTES, (id, into, unverified) => host.get(id, into, unverified));
  const writer = keys && signer ? new FileWriter(peers, keys, log, signer) : undefined;
  const ec = keys && writer ? new EcWriter(peers, keys, log, writer) : undefined;
  const repairMeta = new RepairMeta(o.meta);
  const net = o.net;
  const repairLoop = new RepairLoop({
    peers,
    host,
    store: o.store,
    refs,
    repairMeta,
    meta: o.meta,
    fetcher,
    log,
    members: () => net.members?.() ?? net.live().map((m) => ({ ...m, state: 'alive' })),
    ...(o.repairGraceMs !== undefined ? { graceMs: o.repairGraceMs } : {}),
    ...(o.repairRateBytes !== undefined ? { rateBytes: o.repairRateBytes } : {}),
    ...(o.repairIntervalMs !== undefined ? { intervalMs: o.repairIntervalMs } : {}),
  });
  const scrubber = new Scrubber(o.store, repairLoop, log, o.scrubRateBytes, o.scrubIntervalMs);
  const peer = new FilesPeerService({ host, refs, repairMeta, repairLoop, gate: authorityGate, selfId: net.selfId });
  const ae = new AntiEntropy(peers, host, log, o.antiEntropyIntervalMs ?? DEFAULT_ANTI_ENTROPY_INTERVAL_MS, authorityGate);
  const service = new FileService({ net, peers, store: o.store, refs, host, fetcher, writer, ec, signer, keys, repairLoop, scrubber, defaultPolicy, windowChunks: window, log });
  let legacy: Promise<void> | undefined;
  let stopping = false;
  return {
    service,
    peer,
    authorityGate,
    start() {
      host.start();
      ae.start();
      repairLoop.start();
      scrubber.start();
      legacy = keepProvingLegacyCommits({ refs, meta: o.meta, log, stopped: () => stopping, signer, peers, gate: authorityGate })
        .catch((err: unknown) => log.warn({ err: errorMessage(err) }, 'proving older commits failed; the next start retries'));
    },
    async stop() {
      stopping = true;
      await legacy;
      await scrubber.stop();
      await repairLoop.stop();
      await ae.stop();
      await host.stop();
    },
    peerUp(nodeId) {
      if (nodeId !== peers.selfId) void ae.pull(nodeId);
    },
    registerPeerHandlers(handlers) {
      peer.register(handlers);
    },
  };
}

/** Which of these uploads another live node saw committed: an unreachable node cannot vouch, the others may. */
async function askCommitted(peers: Peers, gate: AuthorityGate, uploads: string[]): Promise<{ upload: string; root: string; at: number; proof?: Buffer | undefined }[]> {
  const out: { upload: string; root: string; at: number; proof?: Buffer | undefined }[] = [];
  const others = peers.live().filter((n) => n.nodeId !== peers.selfId);
  await Promise.all(
    others.map(async (n) => {
      for (let i = 0; i < uploads.length; i += MAX_IDS_PER_REQUEST) {
        try {
          const r = await peers.call(n.nodeId, FILE_METHODS.fileUploads, { ids: uploads.slice(i, i + MAX_IDS_PER_REQUEST) }, undefined, { timeoutMs: CONTROL_CALL_TIMEOUT_MS });
          // A peer's word that an upload committed pins its chunks here, so it must carry the writer's proof.
          out.push(...parseReply(replies.uploads, r.body, n.nodeId).committed.filter((c) => gate.allows(() => gate.commit(FILE_METHODS.fileUploads, c, n.nodeId))));
        } catch {
          /* an unreachable peer cannot vouch for a commit; the others may */
        }
      }
    }),
  );
  return out;
}
