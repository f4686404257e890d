/**
 * Volume records and the operations on volumes any node can run. A record (layout, geometry,
 * member nodes) is replicated to every node: stored in the node's metadata, pushed to the live
 * nodes on each change, pulled by a node when a peer comes alive, merged last-writer-wins by
 * (version, updatedAt, updatedBy). Deletes are tombstones so a node that was down learns of them.
 */
import { createHash, randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { z } from 'zod';
import { badInput, isTesseraError, notFound, TesseraError, tooLarge, unavailable } from '../errors.js';
import { silentLogger, type Logger } from '../log.js';
import type { IncomingRequest, Reply } from '../net/index.js';
import { placeChunk, type WeightedNode } from '../cluster/index.js';
import type { Metadata } from '../store/index.js';
import { Layout, LAYOUT_KINDS, MAX_MEMBERS, MIN_MEMBERS, DEFAULT_STRIPE_UNIT_BYTES, type LayoutKind } from './volume/layout.js';
import { SECTOR_BYTES, sealedUnitBytes } from './volume/seal.js';
import type { CheckReport, VolumeStatus } from './volume/striped-volume.js';
import { checkExtentName, type MemberNet } from './remote-member.js';
import { MAX_VOLUME_VERSION, volumeOfExtent, type VolumeAuthority } from './volume-authority.js';
import { AUTHORITY_PROOF_BYTES } from '../content/index.js';

export const VOLUME_RPC_PREFIX = 'vol.';
/** Volumes a cluster serves; each costs an extent file and two descriptors on its members. */
export const MAX_VOLUMES = 256;
/** Records kept, tombstones included; past it the oldest tombstones are forgotten. */
export const MAX_VOLUME_RECORDS = 1024;
/** Records per replication message: a full record is ~2 KiB, the control section 256 KiB. */
export const MAX_RECORDS_PER_MESSAGE = 64;
/** Pages one pull may walk: every record, once. */
const MAX_PULL_PAGES = Math.ceil(MAX_VOLUME_RECORDS / MAX_RECORDS_PER_MESSAGE) + 1;
/** 1 PiB; the members' extents bound it further. */
export const MAX_VOLUME_BYTES = 2 ** 50;
/** Dots are reserved: extents are named "<volume>.<id>". */
export const VOLUME_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;
const REPLICATION_TIMEOUT_MS = 5_000;
const EXTENT_CALL_TIMEOUT_MS = 15_000;
const TABLE = 'volumes';

const nodeIdSchema = z.string().min(1).max(128).regex(/^[\x21-\x7e]+$/);

export const volumeRecordSchema = z.object({
  name: z.string().regex(VOLUME_NAME_RE),
  id: z.string().regex(/^[0-9a-f]{16}$/),
  layout: z.enum(LAYOUT_KINDS as [LayoutKind, ...LayoutKind[]]),
  /** Usable bytes (the layout's size). */
  size: z.number().int().nonnegative().max(MAX_VOLUME_BYTES),
  memberSize: z.number().int().nonnegative().max(MAX_VOLUME_BYTES),
  unitSize: z.number().int().positive().max(1 << 30),
  members: z.array(nodeIdSchema).max(MAX_MEMBERS),
  version: z.number().int().nonnegative().max(MAX_VOLUME_VERSION),
  updatedAt: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER),
  updatedBy: nodeIdSchema,
  /** The master that may write the members' extents (volume-authority.ts); none until one takes it. */
  master: nodeIdSchema.optional(),
  /** A replacement member being rebuilt: it takes the master's writes before the record lists it. */
  incoming: nodeIdSchema.optional(),
  /** Made with the cluster's authority key; a record without a valid one never wins a merge from the network. */
  proof: z.custom<Uint8Array>((v) => v instanceof Uint8Array && v.length === AUTHORITY_PROOF_BYTES, `proof must be ${AUTHORITY_PROOF_BYTES} bytes`).optional(),
  deleted: z.boolean(),
  /**
   * On-disk format of the members' extents: absent for volumes made before sealing (plaintext
   * extents, which masters refuse to open), 2 for the first sealed format (AES-256-GCM records
   * without versions, also refused), SEALED_VOLUME_FORMAT for sealed sectors (seal.ts).
   */
  format: z.union([z.literal(2), z.literal(3)]).optional(),
}).strict();
export type VolumeRecord = z.infer<typeof volumeRecordSchema>;

const putSchema = z.object({ records: z.array(z.unknown()).max(MAX_RECORDS_PER_MESSAGE) }).strict();
const allSchema = z.object({ after: z.string().max(64).optional() }).strict();

/** True when a should replace b. */
export function newer(a: VolumeRecord, b: VolumeRecord): boolean {
  if (a.version !== b.version) return a.version > b.version;
  if (a.updatedAt !== b.updatedAt) return a.updatedAt > b.updatedAt;
  return a.updatedBy > b.updatedBy;
}

/** Extents of sealed sectors: every 4 KiB encrypted, authenticated and versioned at the master. */
export const SEALED_VOLUME_FORMAT = 3;

export function layoutOf(rec: VolumeRecord): Layout {
  return new Layout({ kind: rec.layout, members: rec.members.length, memberSize: rec.memberSize, unitSize: rec.unitSize, size: rec.size });
}

export function extentName(rec: Pick<VolumeRecord, 'name' | 'id'>): string {
  return checkExtentName(rec.name, rec.id);
}

export interface RegistryEvents {
  change: [rec: VolumeRecord, prev: VolumeRecord | undefined];
}

export interface ClusterView {
  selfId: string;
  /** Nodes believed alive now, self included. */
  alive(): Array<{ nodeId: string; capacity: number; used: number; zone?: string }>;
}

export class VolumeRegistry extends EventEmitter<RegistryEvents> {
  private readonly records = new Map<string, VolumeRecord>();

  private constructor(private readonly meta: Metadata, private readonly net: MemberNet, private readonly cluster: ClusterView, readonly authority: VolumeAuthority, private readonly log: Logger) {
    super();
  }

  static async open(meta: Metadata, net: MemberNet, cluster: ClusterView, authority: VolumeAuthority, log: Logger = silentLogger): Promise<VolumeRegistry> {
    const r = new VolumeRegistry(meta, net, cluster, authority, log);
    for (const e of meta.table<unknown>(TABLE).range()) {
      const p = volumeRecordSchema.safeParse(e.value);
      if (!p.success) {
        log.error({ key: e.key }, 'volumes: skipping a damaged volume record');
        continue;
      }
      // Records stored before proofs existed: a full node vouches for what it holds, as name records' read repair does.
      const rec = p.data.proof === undefined && authority.canSign ? authority.sign(p.data) : p.data;
      if (rec !== p.data) await meta.put(TABLE, rec.name, rec);
      r.records.set(rec.name, rec);
    }
    return r;
  }

  /** The record of the volume an extent ("<volume>.<id>") belongs to, tombstones included. */
  forExtent(extent: string): VolumeRecord | undefined {
    return this.records.get(volumeOfExtent(extent).volume);
  }

  /**
   * Merges a record from a peer: one that would win must pass the authority check first (AUTH
   * otherwise); one that would not is dropped unchecked, so anti-entropy's repeats cost nothing.
   */
  async mergeFromPeer(rec: VolumeRecord, from: string): Promise<boolean> {
    const held = this.records.get(rec.name);
    if (held !== undefined && !newer(rec, held)) return false;
    this.authority.checkRecord(rec, held, from);
    return this.merge(rec);
  }

  /** Parses and merges a record a peer sent inside another message (extent.create). */
  async acceptFromPeer(raw: unknown, from: string): Promise<void> {
    const p = volumeRecordSchema.safeParse(raw);
    if (!p.success) throw badInput(`malformed volume record: ${p.error.issues[0]?.path.join('.')}: ${p.error.issues[0]?.message}`);
    await this.mergeFromPeer(p.data, from);
  }

  get(name: string): VolumeRecord | undefined {
    const r = this.records.get(name);
    return r === undefined || r.deleted ? undefined : r;
  }

  /** Live volumes, by name. */
  list(): VolumeRecord[] {
    return [...this.records.values()].filter((r) => !r.deleted).sort((a, b) => a.name.localeCompare(b.name));
  }

  /** Any record under a name, tombstones included. */
  latest(name: string): VolumeRecord | undefined {
    return this.records.get(name);
  }

  /** Stores a record if it wins over the one held; returns whether it did. */
  async merge(rec: VolumeRecord): Promise<boolean> {
    const prev = this.records.get(rec.name);
    if (prev !== undefined && !newer(rec, prev)) return false;
    if (prev === undefined && this.records.size >= MAX_VOLUME_RECORDS && !this.forgetOldestTombstone()) {
      throw tooLarge(`this node already holds ${MAX_VOLUME_RECORDS} volume records`);
    }
    this.records.set(rec.name, rec);
    await this.meta.put(TABLE, rec.name, rec);
    this.emit('change', rec, prev);
    return true;
  }

  private forgetOldestTombstone(): boolean {
    let oldest: VolumeRecord | undefined;
    for (const r of this.records.values()) if (r.deleted && (oldest === undefined || r.updatedAt < oldest.updatedAt)) oldest = r;
    if (oldest === undefined) return false;
    this.records.delete(oldest.name);
    void this.meta.remove(TABLE, oldest.name).catch(() => undefined);
    return true;
  }

  /** Signs a locally made change, stores it and pushes it to every live node; returns it signed. */
  async commit(rec: VolumeRecord): Promise<VolumeRecord> {
    const signed = this.authority.sign(rec);
    await this.merge(signed);
    await this.push([signed]);
    return signed;
  }

  /** Pushes records to the given nodes (a master making sure a member holds the record naming it). */
  async push(records: VolumeRecord[], to?: string[]): Promise<void> {
    const targets = to ?? this.cluster.alive().map((n) => n.nodeId).filter((id) => id !== this.cluster.selfId);
    await Promise.allSettled(targets.map(async (id) => {
      for (let i = 0; i < records.length; i += MAX_RECORDS_PER_MESSAGE) {
        await this.net.call(id, 'vol.put', { records: records.slice(i, i + MAX_RECORDS_PER_MESSAGE) }, undefined, REPLICATION_TIMEOUT_MS)
          .catch((err: unknown) => this.log.debug({ node: id, err: (err as Error).message }, 'volumes: record push failed'));
      }
    }));
  }

  /** Anti-entropy with one peer: pull all its records and push ours. */
  async exchange(nodeId: string): Promise<void> {
    let after: string | undefined;
    for (let page = 0; page < MAX_PULL_PAGES; page++) {
      const r = await this.net.call(nodeId, 'vol.all', after === undefined ? {} : { after }, undefined, REPLICATION_TIMEOUT_MS);
      const body = z.object({ records: z.array(z.unknown()).max(MAX_RECORDS_PER_MESSAGE), next: z.string().max(64).optional() }).safeParse(r.body);
      if (!body.success) throw new TesseraError('PROTOCOL', `node ${nodeId} answered vol.all with a malformed body`);
      for (const raw of body.data.records) {
        const p = volumeRecordSchema.safeParse(raw);
        // A refused record is logged by the authority check; the rest of the page still counts.
        if (p.success) await this.mergeFromPeer(p.data, nodeId).catch((err: unknown) => { if (!isTesseraError(err, 'AUTH')) throw err; });
      }
      if (body.data.next === undefined) break;
      after = body.data.next;
    }
    await this.push([...this.records.values()], [nodeId]);
  }

  async handle(req: IncomingRequest): Promise<Reply> {
    if (req.method === 'vol.put') {
      const b = putSchema.safeParse(req.body);
      if (!b.success) throw badInput(`vol.put: malformed request: ${b.error.issues[0]?.message ?? 'invalid body'}`);
      let merged = 0;
      for (const raw of b.data.records) {
        const p = volumeRecordSchema.safeParse(raw);
        if (!p.success) throw badInput(`vol.put: malformed volume record: ${p.error.issues[0]?.path.join('.')}: ${p.error.issues[0]?.message}`);
        if (await this.mergeFromPeer(p.data, req.peer.nodeId)) merged++;
      }
      return { body: { merged } };
    }
    if (req.method === 'vol.all') {
      const b = allSchema.safeParse(req.body ?? {});
      if (!b.success) throw badInput('vol.all: malformed request');
      const sorted = [...this.records.values()].sort((a, c) => a.name.localeCompare(c.name));
      const from = b.data.after === undefined ? sorted : sorted.filter((r) => r.name.localeCompare(b.data.after as string) > 0);
      const page = from.slice(0, MAX_RECORDS_PER_MESSAGE);
      const more = from.length > page.length;
      return { body: { records: page, ...(more ? { next: page[page.length - 1]?.name } : {}) } };
    }
    throw badInput(`unknown method '${req.method}'`);
  }
}

// ---- operations ---------------------------------------------------------------------------

export const createVolumeSchema = z.object({
  name: z.string().regex(VOLUME_NAME_RE, 'a volume name is 1-64 letters, digits, "_" or "-", starting with a letter or digit'),
  size: z.number().int().positive().max(MAX_VOLUME_BYTES),
  layout: z.enum(LAYOUT_KINDS as [LayoutKind, ...LayoutKind[]]),
  members: z.number().int().min(1).max(MAX_MEMBERS).optional(),
  nodes: z.array(z.string().min(4).max(128)).min(1).max(MAX_MEMBERS).optional(),
  unitSize: z.number().int().positive().max(1 << 30).optional(),
}).strict();
export type CreateVolumeRequest = z.infer<typeof createVolumeSchema>;

export interface VolumeView {
  name: string;
  id: string;
  layout: LayoutKind;
  size: number;
  unitSize: number;
  memberSize: number;
  members: string[];
  version: number;
  /** Live state, when this node serves the volume over NBD; null elsewhere. */
  status: (VolumeStatus & { lastResync: ResyncEvent | null; open: boolean }) | null;
}

export interface ResyncEvent {
  member: number;
  nodeId: string;
  unitsCopied: number;
  /** Dirty units the member had when the resync began. */
  dirtyBefore: number;
  at: string;
}

/** What the node's master (tessera nbd) offers the service; absent on plain nodes. */
export interface MasterOps {
  status(name: string): VolumeView['status'];
  replace(name: string, oldNode: string, newNode: string): Promise<{ member: number; unitsCopied: number; record: VolumeRecord }>;
  check(name: string, repair: boolean): Promise<CheckReport>;
  forget(rec: VolumeRecord): Promise<void>;
}

/** Default member counts when neither --members nor --nodes is given. */
const DEFAULT_MEMBERS: Record<LayoutKind, number> = { raid0: 4, raid1: 2, raid5: 4, raid6: 6 };

export class VolumeService {
  master: MasterOps | undefined;

  constructor(
    readonly registry: VolumeRegistry,
    private readonly net: MemberNet,
    private readonly cluster: ClusterView,
    private readonly log: Logger = silentLogger,
  ) {}

  private view(rec: VolumeRecord): VolumeView {
    return {
      name: rec.name, id: rec.id, layout: rec.layout, size: rec.size, unitSize: rec.unitSize,
      memberSize: rec.memberSize, members: rec.members, version: rec.version,
      status: this.master?.status(rec.name) ?? null,
    };
  }

  list(): VolumeView[] {
    return this.registry.list().map((r) => this.view(r));
  }

  info(name: string): VolumeView {
    return this.view(this.require(name));
  }

  require(name: string): VolumeRecord {
    const r = this.registry.get(name);
    if (r === undefined) throw notFound(`no volume named '${name}' (see 'tessera volume ls')`, { volume: name });
    return r;
  }

  /** Resolves full ids or unique prefixes (as `tessera peers` prints them) among `among`. */
  resolveNode(text: string, among: string[], what: string): string {
    const hits = among.filter((id) => id === text || id.startsWith(text));
    if (hits.length === 1) return hits[0] as string;
    if (hits.length === 0) throw badInput(`${what} '${text}' is not a live node (see 'tessera peers')`);
    throw badInput(`${what} '${text}' matches ${hits.length} nodes; give more of its id`);
  }

  async create(input: unknown): Promise<VolumeView> {
    const p = createVolumeSchema.safeParse(input);
    if (!p.success) {
      const i = p.error.issues[0];
      throw badInput(`volume create: ${i ? `${i.path.join('.') || 'body'}: ${i.message}` : 'invalid request'}`);
    }
    const req = p.data;
    if (!this.registry.authority.canSign) throw new TesseraError('AUTH', 'this node is storage-only (it joined without the data key) and cannot create volumes: their records need a proof only a full node can make; use the API of a full node');
    if (this.registry.get(req.name) !== undefined) throw new TesseraError('CONFLICT', `volume '${req.name}' already exists; remove it first or choose another name`);
    if (this.registry.list().length >= MAX_VOLUMES) throw tooLarge(`the cluster already has ${MAX_VOLUMES} volumes`);
    const alive = this.cluster.alive();
    const aliveIds = alive.map((n) => n.nodeId);
    const id = randomBytes(8).toString('hex');
    let members: string[];
    if (req.nodes !== undefined) {
      members = req.nodes.map((t) => this.resolveNode(t, aliveIds, '--nodes entry'));
      if (new Set(members).size !== members.length) throw badInput('--nodes names the same node twice; each member must be a different node');
      if (req.members !== undefined && req.members !== members.length) throw badInput(`--members ${req.members} disagrees with the ${members.length} nodes given`);
    } else {
      const want = req.members ?? Math.max(MIN_MEMBERS[req.layout], Math.min(DEFAULT_MEMBERS[req.layout], alive.length));
      if (want > alive.length) throw unavailable(`layout ${req.layout} with ${want} members needs ${want} live nodes, only ${alive.length} are alive`);
      // Members spread over zones as a chunk's copies do, so a zone's loss costs a volume the fewest members.
      const weighted: WeightedNode[] = alive.map((n) => ({ nodeId: n.nodeId, weight: Number.isFinite(n.capacity) && n.capacity > 0 ? Math.max(1, (n.capacity - n.used) / 2 ** 30) : 1, zone: n.zone ?? '' }));
      members = placeChunk(createHash('sha256').update(`volume:${req.name}:${id}`).digest(), weighted, want);
    }
    const unitSize = req.unitSize ?? DEFAULT_STRIPE_UNIT_BYTES;
    // Validates kind, member count and unit size before any node is asked for space.
    const shape = new Layout({ kind: req.layout, members: members.length, memberSize: 0, unitSize });
    if (req.size % SECTOR_BYTES !== 0) throw badInput(`volume size ${req.size} is not a multiple of ${SECTOR_BYTES} bytes (the sector the master seals); round it to a whole number of KiB divisible by 4`);
    // The last stripe may be partly used: the volume exports exactly the size asked for.
    const stripes = Math.ceil(req.size / shape.stripeDataBytes);
    const layout = new Layout({ kind: req.layout, members: members.length, memberSize: stripes * unitSize, unitSize, size: req.size });
    const prev = this.registry.latest(req.name);
    const rec: VolumeRecord = {
      name: req.name, id, layout: req.layout, size: layout.size, memberSize: layout.memberSize, unitSize,
      members, version: (prev?.version ?? 0) + 1, updatedAt: Date.now(), updatedBy: this.cluster.selfId, deleted: false,
      format: SEALED_VOLUME_FORMAT,
      // A master names itself at once; a volume made elsewhere is taken by the first master that sees it.
      ...(this.master !== undefined ? { master: this.cluster.selfId } : {}),
    };
    const extent = extentName(rec);
    const made: string[] = [];
    // Each member receives the signed record with the create: it creates only an extent a proven record places on it.
    const signed = this.registry.authority.sign(rec);
    const results = await Promise.allSettled(members.map(async (m) => {
      await this.net.call(m, 'extent.create', { name: extent, units: layout.stripeCount, unitSize: sealedUnitBytes(unitSize), record: signed }, undefined, EXTENT_CALL_TIMEOUT_MS);
      made.push(m);
    }));
    const failed = results.findIndex((r) => r.status === 'rejected');
    if (failed >= 0) {
      // The members that merged the record learn of its removal before they are asked to drop the extent.
      await this.registry.commit({ ...rec, deleted: true, version: rec.version + 1, updatedAt: Date.now() });
      await Promise.allSettled(made.map((m) => this.net.call(m, 'extent.delete', { name: extent }, undefined, EXTENT_CALL_TIMEOUT_MS)));
      const why = (results[failed] as PromiseRejectedResult).reason as Error;
      throw unavailable(`volume '${req.name}': node ${members[failed]?.slice(0, 12)} could not make its extent: ${why.message}`);
    }
    await this.registry.commit(rec);
    this.log.info({ volume: rec.name, layout: rec.layout, size: rec.size, members: rec.members }, 'volume created');
    return this.view(rec);
  }

  async remove(name: string): Promise<void> {
    const rec = this.require(name);
    const tomb: VolumeRecord = { ...rec, deleted: true, version: rec.version + 1, updatedAt: Date.now(), updatedBy: this.cluster.selfId };
    await this.registry.commit(tomb);
    await this.master?.forget(rec);
    // Members that are down now delete their extent when the tombstone reaches them.
    await Promise.allSettled(rec.members.map((m) => this.net.call(m, 'extent.delete', { name: extentName(rec) }, undefined, EXTENT_CALL_TIMEOUT_MS)));
    this.log.info({ volume: name }, 'volume removed');
  }

  private requireMaster(name: string): MasterOps {
    this.require(name);
    if (this.master === undefined) {
      throw new TesseraError('CONFLICT', `this node does not serve volume '${name}'; run the command against the API of the node running 'tessera nbd'`);
    }
    return this.master;
  }

  async replace(name: string, oldNode: string, newNode: string): Promise<{ member: number; unitsCopied: number; volume: VolumeView }> {
    const r = await this.requireMaster(name).replace(name, oldNode, newNode);
    return { member: r.member, unitsCopied: r.unitsCopied, volume: this.view(r.record) };
  }

  async check(name: string, repair: boolean): Promise<CheckReport> {
    return this.requireMaster(name).check(name, repair);
  }
}
