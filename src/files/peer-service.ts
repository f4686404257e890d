/**
 * The storage side of the files protocol on one node (methods chunk.*, file.*, heal.*):
 * the counterpart of block/minion.ts. Every body is parsed by its schema (rpc.ts) before a handler
 * looks at it.
 */
import type { IncomingRequest, PeerHandlers, Reply } from '../net/index.js';
import { badInput } from '../errors.js';
import type { ChunkHost } from './chunk-host.js';
import type { RepairMeta } from './repair-meta.js';
import type { RefStore } from './refs.js';
import type { RepairLoop } from './repair.js';
import type { AuthorityGate } from './authority-gate.js';
import { FILE_METHODS, parseBody, type ownerSchema } from './rpc.js';
import { unproven } from '../content/index.js';
import type { z } from 'zod';

type Owner = z.output<typeof ownerSchema>;

/** The method prefixes this service owns, read off its method table. */
export const FILES_RPC_PREFIXES: readonly string[] = [...new Set(Object.values(FILE_METHODS).map((m) => m.slice(0, m.indexOf('.') + 1)))];

export interface FilesPeerServiceOptions {
  host: ChunkHost;
  refs: RefStore;
  repairMeta: RepairMeta;
  repairLoop: RepairLoop;
  /** Checks the proof of every destructive message before it is applied. */
  gate: AuthorityGate;
  selfId: string;
}

export class FilesPeerService {
  readonly #o: FilesPeerServiceOptions;

  constructor(o: FilesPeerServiceOptions) {
    this.#o = o;
  }

  register(handlers: PeerHandlers): void {
    const handler = (req: IncomingRequest): Promise<Reply> => this.handle(req.method, req.body, req.payload, req.verifiedPayload === true, req.recycle, req.peer.nodeId);
    for (const prefix of FILES_RPC_PREFIXES) handlers.register(prefix, handler);
  }

  /**
   * Serves one request. `verified` is only ever true for this node's own writer calling itself
   * with a chunk it hashed; requests from the network leave it false, so their chunks are hashed
   * before they are stored. `from` is the sending node, named when a message is refused.
   */
  async handle(method: string, body: unknown, payload: Buffer, verified = false, recycle?: () => void, from = 'unknown'): Promise<{ body?: unknown; payload?: Buffer }> {
    switch (method) {
      case FILE_METHODS.chunkHas:
        return { body: { have: await this.#o.host.has(parseBody(FILE_METHODS.chunkHas, body).ids) } };
      case FILE_METHODS.chunkClaim: {
        const b = parseBody(FILE_METHODS.chunkClaim, body);
        if (from !== this.#o.selfId) this.#o.gate.pins(method, b.upload, b.ids, b.pins, from);
        const have = await this.#o.host.claim(b.upload, b.ids, b.pins);
        if (b.r !== undefined) await Promise.all(b.ids.map((id, i) => (have[i] ? this.#o.repairMeta.setCopies(id.toString('hex'), b.r!) : undefined)));
        return { body: { have } };
      }
      case FILE_METHODS.chunkPut: {
        const b = parseBody(FILE_METHODS.chunkPut, body);
        const hex = b.id.toString('hex');
        const self = from === this.#o.selfId;
        if (b.upload !== undefined && !self) this.#o.gate.pins(method, b.upload, [b.id], [b.pin], from);
        const owners = b.heal?.owners ?? [];
        const proven = self || owners.length === 0 ? owners : await this.#provenOwners(owners, b.id, b.heal?.of, from);
        // A copy whose owners are all unproven is refused whole, so its sender keeps (and does not drop) its own.
        if (owners.length > 0 && proven.length === 0) throw unproven(`copy of chunk ${hex.slice(0, 16)} with ${owners.length} owner(s)`, 'no owner carries a valid commit proof and pin');
        // The owners a repaired copy arrives with are recorded first, so the copy is never an orphan for a moment.
        for (const o of proven) {
          try {
            await this.#o.refs.addRefs(o.upload, [hex], Date.now(), [o.pin]);
            await this.#o.host.commit(o.upload, o.root, o.at, o.proof);
          } catch {
            /* an upload aborted here stays aborted */
          }
        }
        // Written beside the chunk's reference, so both share one table commit instead of two in turn;
        // a count for a copy that then fails to store is inert (repair walks only the chunks held).
        const wanted = b.heal?.r !== undefined ? this.#o.repairMeta.setCopies(hex, b.heal.r) : undefined;
        wanted?.catch(() => {});
        // A peer's chunk counts against its share of uncommitted bytes here until a commit holds it.
        await this.#o.host.put(b.upload, b.id, payload, verified, self ? undefined : from, b.pin);
        // The store keeps its own copy once put resolves (ChunkStore contract), so the frame's buffer can serve the next one.
        recycle?.();
        await wanted;
        if (b.heal?.stripe) await this.#o.repairMeta.markStripe(hex);
        if (b.heal?.of) await this.#o.repairMeta.addShard(hex, b.heal.of.d.toString('hex'), b.heal.of.i);
        return { body: {} };
      }
      case FILE_METHODS.healDrain: {
        const b = parseBody(FILE_METHODS.healDrain, body);
        this.#o.gate.drain(b, this.#o.selfId, from);
        await this.#o.repairLoop.setDraining(b.on);
        return { body: this.#o.repairLoop.drainState() };
      }
      case FILE_METHODS.healState:
        parseBody(FILE_METHODS.healState, body);
        return { body: this.#o.repairLoop.drainState() };
      case FILE_METHODS.chunkGet:
        return { body: {}, payload: await this.#o.host.get(parseBody(FILE_METHODS.chunkGet, body).id) };
      case FILE_METHODS.fileCommit: {
        const b = parseBody(FILE_METHODS.fileCommit, body);
        if (from !== this.#o.selfId) this.#o.gate.commit(method, b, from);
        await this.#o.host.commit(b.upload, b.root, b.at, b.proof);
        return { body: {} };
      }
      case FILE_METHODS.fileAbort: {
        const b = parseBody(FILE_METHODS.fileAbort, body);
        if (from !== this.#o.selfId) this.#o.gate.abort(b.upload, b.proof, from);
        await this.#o.host.abort(b.upload);
        return { body: {} };
      }
      case FILE_METHODS.fileRm: {
        const b = parseBody(FILE_METHODS.fileRm, body);
        this.#o.gate.tombstone(b, from);
        await this.#o.host.tombstone(b);
        return { body: {} };
      }
      case FILE_METHODS.fileTombstones: {
        const b = parseBody(FILE_METHODS.fileTombstones, body);
        return { body: this.#o.host.listTombstones(b.after, b.limit) };
      }
      case FILE_METHODS.fileProofs: {
        // Proofs are no secret (repair hands them to every holder); only stored ones are returned, none is made.
        const owners = parseBody(FILE_METHODS.fileProofs, body).refs.flatMap((r) => {
          const o = this.#o.refs.proofsOf(r.upload, r.id.toString('hex'));
          return o ? [{ ...o, id: r.id }] : [];
        });
        return { body: { owners } };
      }
      case FILE_METHODS.fileUploads:
        return { body: { committed: this.#o.host.committed(parseBody(FILE_METHODS.fileUploads, body).ids) } };
      default:
        throw badInput(`unknown files method '${method}'`);
    }
  }

  /**
   * The owners of a repaired copy that carry the writer's proofs: of the commit, and that the
   * upload holds this chunk, or, for a shard, holds its stripe's descriptor, which must be here
   * already (repair sends it first) and name this shard at its index.
   */
  async #provenOwners(owners: readonly Owner[], id: Buffer, of: { d: Buffer; i: number } | undefined, from: string): Promise<Owner[]> {
    const gate = this.#o.gate;
    const out: Owner[] = [];
    const pinned = of !== undefined && (await this.#o.host.stripeNames(of.d, of.i, id)) ? of.d : id;
    for (const o of owners) {
      if (!gate.allows(() => gate.commit('heal.owners', o, from))) continue;
      if (gate.allows(() => gate.pins('heal.owners', o.upload, [pinned], [o.pin], from))) out.push(o);
    }
    return out;
  }
}
