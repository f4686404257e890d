/** Files layers (composeFiles) wired to each other in one process through a fake network (real node callers). */
import { randomBytes } from 'node:crypto';
import { composeFiles, type FileService, type FilesNet, type FilesNode } from '../../src/files/index.js';
import { MemoryChunkStore } from '../../src/store/memory-store.js';
import type { GetOptions, PutOptions } from '../../src/store/chunk-store.js';
import { openMetadata, type Metadata } from '../../src/store/metadata.js';
import { TesseraError } from '../../src/errors.js';
import { silentLogger } from '../../src/log.js';
import { PROTOCOL_VERSION } from '../../src/limits.js';
import { NodeCaller } from '../../src/cluster/node-caller.js';
import { PeerRouter } from '../../src/net/peer-router.js';

/** Remembers, per chunk put, whether the caller vouched for its hash, and how many reads ever overlapped. */
export class RecordingStore extends MemoryChunkStore {
  readonly puts: { id: string; verified: boolean }[] = [];
  readsInFlight = 0;
  maxReadsInFlight = 0;
  override put(id: Buffer, data: Buffer, opts?: PutOptions): Promise<boolean> {
    this.puts.push({ id: id.toString('hex'), verified: opts?.verified === true });
    return super.put(id, data, opts);
  }
  /** Per read, whether the caller asked to skip the store's hash (it authenticates the bytes itself). */
  readonly gets: { id: string; unverified: boolean }[] = [];
  override async get(id: Buffer, opts?: GetOptions): Promise<Buffer> {
    this.gets.push({ id: id.toString('hex'), unverified: opts?.unverified === true });
    this.maxReadsInFlight = Math.max(this.maxReadsInFlight, ++this.readsInFlight);
    try {
      // A read that takes a moment, as a disk read does, so reads issued together overlap.
      await new Promise((r) => setTimeout(r, 2));
      return await super.get(id, opts);
    } finally {
      this.readsInFlight--;
    }
  }
  /** Rots the copy held here: one bit flipped at rest, as a failing disk would. */
  async rot(id: Buffer): Promise<void> {
    const bad = Buffer.from(await super.get(id));
    const at = bad.length >> 1;
    bad.writeUInt8(bad.readUInt8(at) ^ 0x10, at);
    await super.delete(id);
    await super.put(id, bad, { verified: true });
  }
}

export async function cluster(n: number, windowChunks = 4, extra: { dataKey?: Buffer; gcGraceMs?: number; pendingUploadTtlMs?: number } = {}) {
  const dataKey = extra.dataKey ?? randomBytes(32);
  const ids = Array.from({ length: n }, (_, i) => `node${i}`);
  const down = new Set<string>();
  const services = new Map<string, FileService>();
  const nodes = new Map<string, FilesNode>();
  const metas: Metadata[] = [];
  const stores = new Map<string, RecordingStore>();
  const calls: string[] = [];
  /** Replies a test makes a node give instead of its service's (a hostile member's answers). */
  const forged = new Map<string, (method: string) => unknown>();
  for (const id of ids) {
    const meta = await openMetadata(null);
    metas.push(meta);
    const handlers = new PeerRouter();
    // The node's real caller; only the transport under it is faked (node id = address).
    const caller = new NodeCaller({
      self: { nodeId: id, clusterId: 'test', protocolVersion: PROTOCOL_VERSION, capabilities: [], listenAddr: id },
      addressOf: (nodeId) => nodeId,
      send: async (to, method, body, payload) => {
        calls.push(`${to} ${method}`);
        if (down.has(to)) throw new TesseraError('UNAVAILABLE', `${to} is down`);
        const p = payload === undefined ? Buffer.alloc(0) : Array.isArray(payload) ? Buffer.concat(payload) : payload;
        const fake = forged.get(to)?.(method);
        const r = fake !== undefined ? { body: fake } : await nodes.get(to)!.peer.handle(method, body, p, false, undefined, id);
        return { body: r.body, payload: (r.payload as Buffer | undefined) ?? Buffer.alloc(0), peer: { nodeId: to, clusterId: 'test', protocolVersion: PROTOCOL_VERSION, capabilities: [], listenAddr: to } };
      },
      local: handlers.handle,
    });
    const net: FilesNet = {
      selfId: id,
      live: () => ids.map((nodeId) => ({ nodeId, capacity: 1 << 30 })),
      caller,
    };
    const store = new RecordingStore();
    stores.set(id, store);
    const node = composeFiles({ net, store, meta, dataKey, log: silentLogger, windowChunks, ...(extra.gcGraceMs !== undefined ? { gcGraceMs: extra.gcGraceMs } : {}), ...(extra.pendingUploadTtlMs !== undefined ? { pendingUploadTtlMs: extra.pendingUploadTtlMs } : {}) });
    node.registerPeerHandlers(handlers);
    nodes.set(id, node);
    services.set(id, node.service);
  }
  return { services, nodes, stores, down, calls, forged, close: () => Promise.all(metas.map((m) => m.close())) };
}

