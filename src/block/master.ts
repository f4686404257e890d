/**
 * The master (`tessera nbd`): opens a StripedVolume over remote members for every volume record,
 * hands it to the NBD face as a VolumeProvider, and keeps the volume's master-side state (intent
 * log, member health and dirty units) under its data dir so a restarted master replays the log
 * before it serves. A loop watches membership and resyncs a member as soon as its node is back.
 */
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { badInput, isTesseraError, notFound, unavailable } from '../errors.js';
import { silentLogger, type Logger } from '../log.js';
import type { BlockDevice, VolumeProvider } from './device.js';
import { RemoteMember, type MemberNet } from './remote-member.js';
import { FileBlobStorage, FileLogStorage } from './volume/storage.js';
import { deriveVolumeKey, SECTOR_BYTES, SectorSealer, sealedUnitBytes } from './volume/seal.js';
import { MAX_VERSIONED_SECTORS, SealVersions } from './volume/seal-versions.js';
import { FileVersionTable } from './volume/version-table.js';
import { SealedMember } from './volume/sealed-member.js';
import { sectorAeadStatus } from './volume/sector-aead.js';
import { DEFAULT_SEAL_WORKERS, MAX_SEAL_WORKERS, SealPool } from './volume/seal-pool.js';
import { StripedVolume, type CheckReport } from './volume/striped-volume.js';
import { extentName, layoutOf, SEALED_VOLUME_FORMAT, type MasterOps, type ResyncEvent, type VolumeRecord, type VolumeRegistry, type VolumeView } from './volumes.js';

/** How often the watcher looks for members to bring back. */
export const RESYNC_POLL_MS = 500;
/** A member whose resync failed is tried again after this long. */
export const RESYNC_RETRY_MS = 2_000;
/** A volume whose master is gone is tried again (taken over) at most this often. */
export const TAKEOVER_RETRY_MS = 10_000;
/**
 * A starting master leaves volumes another node holds alone this long: until membership has
 * heard from that node, "not alive" only means "not heard of yet", and taking a volume from a
 * live master would cut off its clients.
 */
export const TAKEOVER_AFTER_START_MS = 10_000;
/** A starting master waits this long for every member to answer before opening a volume degraded. */
export const MEMBER_WAIT_MS = 15_000;
const MEMBER_PROBE_TIMEOUT_MS = 2_000;
const MEMBER_WAIT_POLL_MS = 200;

export interface MasterOptions {
  dataDir: string;
  /** The cluster's data key; each volume's sealing key is derived from it. */
  dataKey: Uint8Array;
  registry: VolumeRegistry;
  net: MemberNet;
  selfId: string;
  isAlive(nodeId: string): boolean;
  /** Nodes alive now, self included: candidates for a replacement member. */
  aliveIds(): string[];
  memberTimeoutMs?: number;
  /** Worker threads that seal and open large runs (seal-pool.ts); 0 keeps all sealing on the master's thread. */
  sealWorkers?: number;
  logger?: Logger;
}

/** A volume's sealing state for one run of the master: its sealer, the per-sector versions, its lane to the sealing workers. */
interface Sealing {
  sealer: SectorSealer;
  versions: SealVersions;
  lane: { close(): void } | undefined;
}

/** Drops a closed volume's lane to the sealing workers and closes its version files. */
async function releaseSealing(s: Sealing | undefined): Promise<void> {
  s?.lane?.close();
  await s?.versions.close().catch(() => undefined);
}

interface Open {
  rec: VolumeRecord;
  ready: Promise<StripedVolume>;
  sealing: Sealing | undefined;
  vol: StripedVolume | undefined;
  resyncing: boolean;
  lastTry: Map<number, number>;
  lastResync: ResyncEvent | null;
  /** Serialises replace and check against each other and against resync. */
  admin: Promise<unknown>;
}

/** One NBD connection's view of a shared volume: closing it leaves the volume open for the rest. */
class SharedDevice implements BlockDevice {
  readonly size: number;
  readonly minBlockSize: number;
  readonly preferredBlockSize: number;
  readonly multiConn: boolean;
  constructor(private readonly v: StripedVolume) {
    this.size = v.size;
    this.minBlockSize = v.minBlockSize;
    this.preferredBlockSize = v.preferredBlockSize;
    this.multiConn = v.multiConn;
  }
  read(offset: number, length: number): Promise<Buffer> { return this.v.read(offset, length); }
  write(offset: number, data: Buffer, opts?: { fua?: boolean }): Promise<void> { return this.v.write(offset, data, opts); }
  flush(): Promise<void> { return this.v.flush(); }
  trim(offset: number, length: number): Promise<void> { return this.v.trim(offset, length); }
  writeZeroes(offset: number, length: number, opts?: { fua?: boolean }): Promise<void> { return this.v.writeZeroes(offset, length, opts); }
  async close(): Promise<void> { /* the volume is shared */ }
}

export class VolumeMaster implements VolumeProvider, MasterOps {
  private readonly open_ = new Map<string, Open>();
  private readonly log: Logger;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private readonly takeoverTry = new Map<string, number>();
  private readonly startedAt = Date.now();
  /** Started with the first volume opened: a master serving none runs no threads for it. */
  private pool: SealPool | undefined;

  constructor(private readonly o: MasterOptions) {
    this.log = (o.logger ?? silentLogger).child({ component: 'volumes' });
    // A bad value stops the node at start-up, not at the first volume's open.
    sealWorkersFromEnv(process.env[SEAL_WORKERS_ENV]);
    sectorAeadStatus();
  }

  start(): void {
    const sealing = sectorAeadStatus();
    this.log.info({ sealer: sealing.native ? 'native (OpenSSL)' : 'libsodium', detail: sealing.detail }, 'volume sectors are sealed with XChaCha20-Poly1305');
    for (const rec of this.o.registry.list()) this.consider(rec);
    this.o.registry.on('change', (rec, prev) => {
      if (rec.deleted || (prev !== undefined && prev.id !== rec.id)) {
        if (prev !== undefined) void this.forget(prev).catch((err: unknown) => this.log.warn({ err }, 'closing a removed volume failed'));
      }
      if (!rec.deleted) this.consider(rec);
    });
    this.timer = setInterval(() => this.tick(), RESYNC_POLL_MS);
    this.timer.unref();
  }

  private stateDir(rec: VolumeRecord): string {
    return join(this.o.dataDir, 'volumes', `${rec.name}.${rec.id}`);
  }

  /** Member `index` as the volume sees it: plain bytes, sealed on their way to the node's extent. */
  private member(rec: VolumeRecord, nodeId: string, index: number, sealing: Sealing): SealedMember {
    const units = rec.memberSize / rec.unitSize;
    const sealed = sealedUnitBytes(rec.unitSize);
    const remote = new RemoteMember({ net: this.o.net, nodeId, extent: extentName(rec), size: units * sealed, unitSize: sealed });
    return new SealedMember(remote, sealing.sealer, rec.unitSize, units, { table: sealing.versions, index });
  }

  /** The open volume's sealing state; a volume not open yet has none to lend. */
  private sealingOf(entry: Open): Sealing {
    if (entry.sealing === undefined) throw unavailable(`volume '${entry.rec.name}' is not open yet`);
    return entry.sealing;
  }

  /** True when another master holds the volume and is alive (or this master started too recently to know it is not). */
  private servedElsewhere(rec: VolumeRecord): boolean {
    if (rec.master === undefined || rec.master === this.o.selfId) return false;
    return this.o.isAlive(rec.master) || Date.now() - this.startedAt < TAKEOVER_AFTER_START_MS;
  }

  private consider(rec: VolumeRecord): void {
    if (!this.servedElsewhere(rec)) {
      this.ensure(rec);
      return;
    }
    const e = this.open_.get(rec.name);
    if (e === undefined) return;
    // Fenced: the members now refuse this master's writes, so stop serving rather than fail each one.
    this.open_.delete(rec.name);
    this.log.warn({ volume: rec.name, master: rec.master }, 'another master took this volume over; no longer serving it');
    void e.ready.then((v) => v.close(), () => undefined).catch(() => undefined).finally(() => releaseSealing(e.sealing));
  }

  /** Takes the volume: from the moment a member holds the record naming this node it refuses any other master's writes. */
  private async claim(rec: VolumeRecord): Promise<void> {
    if (rec.master === this.o.selfId) return;
    if (rec.master !== undefined) this.log.warn({ volume: rec.name, from: rec.master }, 'taking over a volume whose master is not alive; which units that master had not yet resynced stayed with it: run tessera volume check --repair');
    await this.o.registry.commit({ ...rec, master: this.o.selfId, version: rec.version + 1, updatedAt: Date.now(), updatedBy: this.o.selfId });
  }

  private ensure(rec: VolumeRecord): Open {
    const have = this.open_.get(rec.name);
    if (have !== undefined && have.rec.id === rec.id) {
      have.rec = rec;
      return have;
    }
    const entry: Open = { rec, ready: null as unknown as Promise<StripedVolume>, sealing: undefined, vol: undefined, resyncing: false, lastTry: new Map(), lastResync: null, admin: Promise.resolve() };
    entry.ready = this.openVolume(rec, entry).then((v) => {
      if (this.closed || this.open_.get(rec.name) !== entry) {
        void v.close();
        throw unavailable(`volume '${rec.name}' was closed while opening`);
      }
      entry.vol = v;
      return v;
    });
    entry.ready.catch((err: unknown) => {
      this.log.error({ volume: rec.name, err: (err as Error).message }, 'volume could not be opened');
      void releaseSealing(entry.sealing);
      if (this.open_.get(rec.name) === entry) this.open_.delete(rec.name);
    });
    this.open_.set(rec.name, entry);
    return entry;
  }

  /** Waits (bounded) until every member answers, so intent-log replay does not mistake a slow start for a failure. */
  private async waitForMembers(rec: VolumeRecord): Promise<void> {
    const deadline = Date.now() + MEMBER_WAIT_MS;
    const pending = new Set(rec.members);
    while (pending.size > 0 && Date.now() < deadline && !this.closed) {
      await Promise.all([...pending].map(async (id) => {
        if (!this.o.isAlive(id)) return;
        try {
          await this.o.net.call(id, 'extent.info', { name: extentName(rec) }, undefined, MEMBER_PROBE_TIMEOUT_MS);
          pending.delete(id);
        } catch { /* not yet */ }
      }));
      if (pending.size > 0) await new Promise((r) => setTimeout(r, MEMBER_WAIT_POLL_MS));
    }
    if (pending.size > 0) this.log.warn({ volume: rec.name, missing: [...pending] }, 'opening volume without every member');
  }

  private async openVolume(rec: VolumeRecord, entry: Open): Promise<StripedVolume> {
    const dir = this.stateDir(rec);
    await mkdir(dir, { recursive: true });
    if (rec.format !== SEALED_VOLUME_FORMAT) {
      const what = rec.format === undefined
        ? 'was made before volumes were encrypted: its members hold plaintext extents'
        : 'was sealed with AES-256-GCM records of an earlier format, without the versions that catch a member replaying old data';
      throw badInput(`volume '${rec.name}' ${what}; this version does not serve it: copy its data out with the tessera version that made it, then 'tessera volume rm ${rec.name}' and create it again`);
    }
    await this.claim(rec);
    await this.waitForMembers(rec);
    const sectorsPerMember = rec.memberSize / SECTOR_BYTES;
    const versions = await SealVersions.open({
      log: new FileLogStorage(join(dir, 'versions.log')),
      table: new FileVersionTable(join(dir, 'versions.table')),
      legacy: new FileBlobStorage(join(dir, 'versions')),
    }, rec.members.length, sectorsPerMember);
    // The log and table now hold what the earlier whole-table file did.
    await rm(join(dir, 'versions'), { force: true });
    if (!versions.tracking) {
      this.log.warn({ volume: rec.name, sectors: rec.members.length * sectorsPerMember, max: MAX_VERSIONED_SECTORS }, 'volume too large to keep sector versions for in memory: a member replaying an older sealed record of a sector is not detected');
    }
    const sealer = new SectorSealer(deriveVolumeKey(this.o.dataKey, rec.id), rec.id);
    sealer.mirrored(rec.layout === 'raid1');
    const lane = this.sealPool()?.lane(sealer);
    sealer.offload(lane);
    const sealing: Sealing = { sealer, versions, lane };
    entry.sealing = sealing;
    const v = await StripedVolume.open({
      layout: layoutOf(rec),
      members: rec.members.map((id, i) => this.member(rec, id, i, sealing)),
      healthStorage: new FileBlobStorage(join(dir, 'health')),
      intentStorage: new FileLogStorage(join(dir, 'intent')),
      ...(this.o.memberTimeoutMs !== undefined ? { memberTimeoutMs: this.o.memberTimeoutMs } : {}),
      logger: this.log.child({ volume: rec.name }),
    });
    this.log.info({ volume: rec.name, layout: rec.layout, size: rec.size, status: { degraded: v.status().degraded, epoch: v.status().epoch } }, 'volume open');
    return v;
  }

  private async volume(name: string): Promise<{ entry: Open; vol: StripedVolume }> {
    const rec = this.o.registry.get(name);
    if (rec === undefined) throw notFound(`no volume named '${name}'`, { volume: name });
    if (this.servedElsewhere(rec)) throw unavailable(`volume '${name}' is held by master ${rec.master?.slice(0, 12)}, alive or not yet known to be gone; use that node's NBD address and API, or retry once it is gone`);
    const entry = this.ensure(rec);
    return { entry, vol: await entry.ready };
  }

  // ---- VolumeProvider ----------------------------------------------------------------------

  async list(): Promise<Array<{ name: string; size: number; description: string }>> {
    return this.o.registry.list().map((r) => ({ name: r.name, size: r.size, description: `tessera ${r.layout} volume over ${r.members.length} nodes` }));
  }

  async open(name: string): Promise<BlockDevice> {
    return new SharedDevice((await this.volume(name)).vol);
  }

  // ---- MasterOps ---------------------------------------------------------------------------

  status(name: string): VolumeView['status'] {
    const e = this.open_.get(name);
    if (e === undefined || e.vol === undefined) return null;
    return { ...e.vol.status(), lastResync: e.lastResync, open: true };
  }

  private async exclusive<T>(entry: Open, fn: () => Promise<T>): Promise<T> {
    const run = entry.admin.catch(() => undefined).then(fn);
    entry.admin = run;
    return run;
  }

  async check(name: string, repair: boolean): Promise<CheckReport> {
    const { entry, vol } = await this.volume(name);
    return this.exclusive(entry, () => vol.check({ repair }));
  }

  async replace(name: string, oldText: string, newText: string): Promise<{ member: number; unitsCopied: number; record: VolumeRecord }> {
    const { entry, vol } = await this.volume(name);
    return this.exclusive(entry, async () => {
      const rec = entry.rec;
      const hits = rec.members.map((id, i) => [id, i] as const).filter(([id]) => id === oldText || id.startsWith(oldText));
      if (hits.length !== 1) throw badInput(hits.length === 0 ? `'${oldText}' is not a member of volume '${name}' (see 'tessera volume info ${name}')` : `'${oldText}' matches ${hits.length} members; give more of its id`);
      const [oldId, index] = hits[0] as readonly [string, number];
      if (rec.layout === 'raid0') throw badInput(`volume '${name}' is raid0: it has no redundancy to rebuild a replacement from`);
      const newId = this.resolveAlive(newText);
      if (rec.members.includes(newId)) throw badInput(`node ${newId.slice(0, 12)} already holds a member of volume '${name}'; choose another node`);
      const layout = layoutOf(rec);
      // The new node is named `incoming` first: its minion then creates the extent and takes this master's writes.
      const bump = (r: VolumeRecord): VolumeRecord => ({ ...r, version: r.version + 1, updatedAt: Date.now(), updatedBy: this.o.selfId });
      const settled = ({ incoming: _, ...r }: VolumeRecord): VolumeRecord => r;
      // Pushed to every live node, the new one included; a replace that fails leaves `incoming` set until the next one.
      const receiving = await this.o.registry.commit(bump({ ...rec, incoming: newId }));
      await this.o.net.call(newId, 'extent.create', { name: extentName(rec), units: layout.stripeCount, unitSize: sealedUnitBytes(rec.unitSize) }, undefined, 15_000);
      const report = await vol.replace(index, this.member(rec, newId, index, this.sealingOf(entry)));
      // The record moves only after the rebuild: a master that dies mid-way restarts with the old
      // member, marked for a full rebuild, rather than a half-filled new one taken as current.
      const members = [...rec.members];
      members[index] = newId;
      const next = await this.o.registry.commit(bump({ ...settled(receiving), members }));
      entry.rec = next;
      entry.lastResync = { member: index, nodeId: newId, unitsCopied: report.unitsCopied, dirtyBefore: layout.stripeCount, at: new Date().toISOString() };
      await this.o.net.call(oldId, 'extent.delete', { name: extentName(rec) }, undefined, 5_000).catch(() => undefined);
      this.log.info({ volume: name, member: index, from: oldId, to: newId, unitsCopied: report.unitsCopied }, 'member replaced');
      return { member: index, unitsCopied: report.unitsCopied, record: next };
    });
  }

  private resolveAlive(text: string): string {
    const alive = this.o.aliveIds();
    const hits = alive.filter((id) => id === text || id.startsWith(text));
    if (hits.length === 1) return hits[0] as string;
    throw badInput(hits.length === 0 ? `'${text}' is not a live node (see 'tessera peers')` : `'${text}' matches ${hits.length} nodes; give more of its id`);
  }

  /** Closes a removed volume and drops its master-side state. */
  async forget(rec: VolumeRecord): Promise<void> {
    const e = this.open_.get(rec.name);
    if (e !== undefined && e.rec.id === rec.id) {
      this.open_.delete(rec.name);
      const v = await e.ready.catch(() => undefined);
      await v?.close().catch(() => undefined);
      await releaseSealing(e.sealing);
    }
    await rm(this.stateDir(rec), { recursive: true, force: true });
  }

  // ---- resync loop -------------------------------------------------------------------------

  private tick(): void {
    if (this.closed) return;
    const now = Date.now();
    // Failover: a volume whose master is gone is taken over here.
    for (const rec of this.o.registry.list()) {
      if (rec.master === undefined || rec.master === this.o.selfId || this.open_.has(rec.name) || this.servedElsewhere(rec)) continue;
      if (now - (this.takeoverTry.get(rec.name) ?? 0) < TAKEOVER_RETRY_MS) continue;
      this.takeoverTry.set(rec.name, now);
      this.ensure(rec);
    }
    for (const e of this.open_.values()) {
      const v = e.vol;
      if (v === undefined || e.resyncing) continue;
      const st = v.status();
      const target = st.members.find((m) => m.state !== 'up' && this.o.isAlive(e.rec.members[m.index] as string) && now - (e.lastTry.get(m.index) ?? 0) >= RESYNC_RETRY_MS);
      if (target === undefined) continue;
      // A member that missed the record naming this master refuses the resync's writes until it holds it (retried).
      void this.o.registry.push([e.rec], [e.rec.members[target.index] as string]);
      e.lastTry.set(target.index, now);
      e.resyncing = true;
      const nodeId = e.rec.members[target.index] as string;
      const dirtyBefore = target.dirtyUnits;
      void this.exclusive(e, () => v.resync(target.index, this.member(e.rec, nodeId, target.index, this.sealingOf(e))))
        .then((r) => {
          e.lastResync = { member: r.member, nodeId, unitsCopied: r.unitsCopied, dirtyBefore, at: new Date().toISOString() };
        })
        .catch((err: unknown) => {
          if (!isTesseraError(err, 'UNAVAILABLE')) this.log.warn({ volume: e.rec.name, member: target.index, err: (err as Error).message }, 'resync failed');
        })
        .finally(() => { e.resyncing = false; });
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    const all = [...this.open_.values()];
    this.open_.clear();
    await Promise.allSettled(all.map(async (e) => {
      await e.admin.catch(() => undefined);
      const v = await e.ready.catch(() => undefined);
      await v?.close();
      await releaseSealing(e.sealing);
    }));
    await this.pool?.close();
  }

  private sealPool(): SealPool | undefined {
    const workers = this.o.sealWorkers ?? sealWorkersFromEnv(process.env[SEAL_WORKERS_ENV]) ?? DEFAULT_SEAL_WORKERS;
    if (workers === 0 || this.closed) return undefined;
    this.pool ??= new SealPool({ workers, logger: this.log });
    return this.pool;
  }
}

/** Sealing workers a master starts, when set (0 to MAX_SEAL_WORKERS): machines with cores to spare. */
export const SEAL_WORKERS_ENV = 'TESSERA_SEAL_WORKERS';

export function sealWorkersFromEnv(value: string | undefined): number | undefined {
  if (value === undefined || value === '') return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > MAX_SEAL_WORKERS) throw badInput(`${SEAL_WORKERS_ENV} must be a whole number from 0 to ${MAX_SEAL_WORKERS}, got '${value}'`);
  return n;
}
