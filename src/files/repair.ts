/**
 * Self-healing of the chunks this node holds: repair after a member died, rebalance after one
 * joined, and drain before one leaves are the same loop. For every local chunk (or stripe, through
 * its descriptor) it computes where placement wants the copies now, asks those nodes what they
 * hold, pushes what is missing, and drops its own copy only when it is surplus and every target
 * has confirmed holding one. Nothing is deleted before its replacement is durable elsewhere, so
 * the last good copy is never lost.
 *
 * A member that died stays in the placement view for the repair grace period: during a blip its
 * copies count as "unknown", nothing is pushed and nothing dropped, so a restart costs nothing.
 * The loop keeps no state of its own between passes (it scans the store), so it resumes by
 * itself after a restart; only the drain flag is persisted.
 */
import { z } from 'zod';
import { TesseraError } from '../errors.js';
import type { Logger } from '../log.js';
import type { ChunkStore, Metadata } from '../store/index.js';
import { decideReplicaRepair, type CopyState, type WeightedNode } from '../cluster/index.js';
import type { ChunkHost } from './chunk-host.js';
import type { ChunkFetcher } from './reader.js';
import type { ProvenOwner, RefStore } from './refs.js';
import type { RepairMeta } from './repair-meta.js';
import type { Peers } from './peers.js';
import { FILE_METHODS, parseReply, replies } from './rpc.js';
import { CHUNK_CALL_TIMEOUT_MS, CONTROL_CALL_TIMEOUT_MS, MAX_IDS_PER_REQUEST } from './limits.js';
import {
  DEFAULT_REPAIR_GRACE_MS,
  DEFAULT_REPAIR_INTERVAL_MS,
  DEFAULT_REPAIR_RATE_BYTES,
  MAX_OWNERS_PER_CHUNK,
  REPAIR_BATCH_CHUNKS,
  REPAIR_CONCURRENCY,
  STRIPE_PROBE_EXTRA,
} from './repair-limits.js';
import { errorMessage } from './errors.js';
import { chunkIdOf } from '../content/index.js';
import { decodeStripe, gatherShards, rebuildStripe, type ShardSource, type Stripe } from './erasure-stripe.js';

const GIB = 2 ** 30;
const STATE_TABLE = 'heal-state';

export interface MemberSnapshot {
  nodeId: string;
  state: string;
  capacity: number;
}

export interface RepairLoopOptions {
  peers: Peers;
  host: ChunkHost;
  store: ChunkStore;
  refs: RefStore;
  repairMeta: RepairMeta;
  meta: Metadata;
  fetcher: ChunkFetcher;
  log: Logger;
  /** Every known member with its state (dead and left ones included). */
  members: () => MemberSnapshot[];
  graceMs?: number;
  rateBytes?: number;
  intervalMs?: number;
}

export interface RepairStats {
  graceMs: number;
  rateBytesPerSec: number;
  running: boolean;
  passes: number;
  lastPassAt: string | null;
  lastPassMs: number | null;
  /** Missing copies (or shards) of chunks this node is responsible for, as of the latest pass. */
  underReplicatedChunks: number;
  underReplicatedBytes: number;
  /** Of those, copies that wait for a dead member's grace period to end. */
  waitingForGraceChunks: number;
  /** The pass in progress: local chunks looked at, and what it restored so far. */
  current: { checked: number; restoredCopies: number; restoredBytes: number } | null;
  totals: { copiesMade: number; bytesRestored: number; shardsRebuilt: number; copiesDropped: number; failures: number };
  deadMembers: { nodeId: string; deadForMs: number; repairInMs: number }[];
  draining: boolean;
}

export interface DrainState {
  nodeId: string;
  draining: boolean;
  chunksLeft: number;
  bytesLeft: number;
  /** Draining, a pass has finished since it began, and nothing is left here. */
  safeToStop: boolean;
}

export const drainStateReply = z
  .object({ nodeId: z.string().max(128), draining: z.boolean(), chunksLeft: z.number().int().min(0), bytesLeft: z.number().int().min(0), safeToStop: z.boolean() })
  .strict();

/** Spends at most `rate` bytes per second, with a one-second burst. */
class Pace {
  #next = 0;
  constructor(private readonly rate: number) {}
  async take(bytes: number, stopped: () => boolean): Promise<void> {
    const now = Date.now();
    this.#next = Math.max(this.#next, now - 1000) + (bytes / this.rate) * 1000;
    let wait = this.#next - now;
    // Sleeps in slices, so a stop is noticed within a quarter second whatever the rate.
    while (wait > 0 && !stopped()) {
      await new Promise((r) => setTimeout(r, Math.min(wait, 250)));
      wait = this.#next - Date.now();
    }
  }
}

interface PassCounters {
  checked: number;
  deficitChunks: number;
  deficitBytes: number;
  waiting: number;
  restoredCopies: number;
  restoredBytes: number;
}

export class RepairLoop implements ShardSource {
  readonly peers: Peers;
  readonly log: Logger;
  readonly graceMs: number;
  readonly rateBytes: number;
  readonly intervalMs: number;
  readonly #o: RepairLoopOptions;
  readonly #pace: Pace;
  readonly #deadSince = new Map<string, number>();
  readonly #totals = { copiesMade: 0, bytesRestored: 0, shardsRebuilt: 0, copiesDropped: 0, failures: 0 };
  #viewSig = '';
  #view: WeightedNode[] = [];
  #lastPassViewSig = '';
  #lastGraceExpired = 0;
  #timer: NodeJS.Timeout | undefined;
  #tick: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #again = false;
  #stopped = false;
  #passes = 0;
  #lastPassAt = 0;
  #lastPassMs: number | null = null;
  #last: PassCounters | undefined;
  #cur: PassCounters | undefined;
  #draining: boolean;
  #drainPassDone = false;

  constructor(o: RepairLoopOptions) {
    this.#o = o;
    this.peers = o.peers;
    this.log = o.log.child({ component: 'heal' });
    this.graceMs = o.graceMs ?? DEFAULT_REPAIR_GRACE_MS;
    this.rateBytes = o.rateBytes ?? DEFAULT_REPAIR_RATE_BYTES;
    this.intervalMs = o.intervalMs ?? DEFAULT_REPAIR_INTERVAL_MS;
    this.#pace = new Pace(this.rateBytes);
    o.meta.table(STATE_TABLE);
    this.#draining = o.meta.get<boolean>(STATE_TABLE, 'draining') === true;
  }

  get draining(): boolean {
    return this.#draining;
  }

  start(): void {
    this.#timer = setInterval(() => this.kick(), this.intervalMs);
    this.#timer.unref();
    // Membership changes (a join, a drain, a grace period running out) start a pass soon after.
    this.#tick = setInterval(() => this.#watch(), Math.max(100, Math.min(1000, Math.floor(this.graceMs / 4) || 100)));
    this.#tick.unref();
    this.kick();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer) clearInterval(this.#timer);
    if (this.#tick) clearInterval(this.#tick);
    await this.#running;
  }

  /** Runs a pass now, or right after the one in progress. */
  kick(): void {
    if (this.#stopped) return;
    if (this.#running) {
      this.#again = true;
      return;
    }
    this.#running = this.#pass()
      .catch((err: unknown) => {
        if (!this.#stopped) this.log.warn({ err: errorMessage(err) }, 'repair pass failed; the next one retries');
      })
      .finally(() => {
        this.#running = undefined;
        if (this.#again && !this.#stopped) {
          this.#again = false;
          this.kick();
        }
      });
  }

  /** Resolves when a pass that starts after this call has finished (for scrub --now and tests). */
  async settle(): Promise<void> {
    await this.#running;
    this.kick();
    await this.#running;
  }

  async setDraining(on: boolean): Promise<void> {
    if (on !== this.#draining) {
      this.#draining = on;
      this.#drainPassDone = false;
      await this.#o.meta.put(STATE_TABLE, 'draining', on);
      this.log.info({ draining: on }, on ? 'draining: moving every chunk to other nodes' : 'drain cancelled');
    }
    this.kick();
  }

  drainState(): DrainState {
    const u = this.#o.store.usage();
    return { nodeId: this.peers.selfId, draining: this.#draining, chunksLeft: u.count, bytesLeft: u.used, safeToStop: this.#draining && this.#drainPassDone && u.count === 0 };
  }

  /**
   * The nodes placement ranks over: members believed up, plus members dead for less than the
   * grace period (their copies are presumed to come back). A draining node, this one included,
   * advertises no capacity and so is in no one's view.
   */
  view(): WeightedNode[] {
    const now = Date.now();
    const live = this.peers.live();
    const liveIds = new Set(live.map((n) => n.nodeId));
    const extra: WeightedNode[] = [];
    for (const m of this.#o.members()) {
      if (m.nodeId === this.peers.selfId || liveIds.has(m.nodeId)) {
        this.#deadSince.delete(m.nodeId);
        continue;
      }
      if (m.state === 'alive' || m.state === 'suspect') continue;
      let since = this.#deadSince.get(m.nodeId);
      if (since === undefined) {
        since = now;
        this.#deadSince.set(m.nodeId, now);
      }
      if (now - since < this.graceMs && m.capacity > 0) extra.push({ nodeId: m.nodeId, weight: Math.max(1, Math.round(m.capacity / GIB)) });
    }
    const list = [...live.filter((n) => !(n.nodeId === this.peers.selfId && this.#draining)), ...extra].sort((a, b) => (a.nodeId < b.nodeId ? -1 : 1));
    const sig = list.map((n) => `${n.nodeId}:${n.weight}`).join(',');
    if (sig !== this.#viewSig) {
      this.#viewSig = sig;
      this.#view = list;
    }
    return this.#view;
  }

  stats(): RepairStats {
    const now = Date.now();
    const last = this.#last;
    const cur = this.#cur;
    const residual = (p: PassCounters | undefined) => (p ? { chunks: Math.max(0, p.deficitChunks - p.restoredCopies), bytes: Math.max(0, p.deficitBytes - p.restoredBytes) } : { chunks: 0, bytes: 0 });
    const a = residual(last);
    const b = residual(cur);
    return {
      graceMs: this.graceMs,
      rateBytesPerSec: this.rateBytes,
      running: this.#running !== undefined,
      passes: this.#passes,
      lastPassAt: this.#lastPassAt ? new Date(this.#lastPassAt).toISOString() : null,
      lastPassMs: this.#lastPassMs,
      underReplicatedChunks: Math.max(a.chunks, b.chunks),
      underReplicatedBytes: Math.max(a.bytes, b.bytes),
      waitingForGraceChunks: Math.max(last?.waiting ?? 0, cur?.waiting ?? 0),
      current: cur ? { checked: cur.checked, restoredCopies: cur.restoredCopies, restoredBytes: cur.restoredBytes } : null,
      totals: { ...this.#totals },
      deadMembers: [...this.#deadSince].map(([nodeId, since]) => ({ nodeId, deadForMs: now - since, repairInMs: Math.max(0, since + this.graceMs - now) })),
      draining: this.#draining,
    };
  }

  #watch(): void {
    this.view();
    const now = Date.now();
    // A grace period that just ran out changes the view; so does a join or a drain.
    for (const since of this.#deadSince.values()) {
      const end = since + this.graceMs;
      if (end <= now && end > this.#lastGraceExpired) {
        this.#lastGraceExpired = end;
        this.kick();
      }
    }
    if (this.#viewSig !== this.#lastPassViewSig && this.#running === undefined) this.kick();
  }

  async #pass(): Promise<void> {
    const began = Date.now();
    const draining = this.#draining;
    const view = this.view();
    this.#lastPassViewSig = this.#viewSig;
    this.#cur = { checked: 0, deficitChunks: 0, deficitBytes: 0, waiting: 0, restoredCopies: 0, restoredBytes: 0 };
    let batch: Buffer[] = [];
    for await (const id of this.#o.store.list()) {
      if (this.#stopped) return;
      batch.push(id);
      if (batch.length >= REPAIR_BATCH_CHUNKS) {
        await this.#batch(batch, view);
        batch = [];
      }
    }
    if (batch.length > 0 && !this.#stopped) await this.#batch(batch, view);
    if (this.#stopped) return;
    this.#last = this.#cur;
    this.#cur = undefined;
    this.#passes++;
    this.#lastPassAt = Date.now();
    this.#lastPassMs = this.#lastPassAt - began;
    if (draining && this.#draining) this.#drainPassDone = true;
    const l = this.#last;
    if (l.deficitChunks > 0 || l.restoredCopies > 0) {
      this.log.info({ checked: l.checked, missing: l.deficitChunks, restored: l.restoredCopies, bytes: l.restoredBytes, waiting: l.waiting, ms: this.#lastPassMs }, 'repair pass done');
    }
  }

  async #batch(ids: Buffer[], view: WeightedNode[]): Promise<void> {
    const plain: { id: Buffer; hex: string; r: number }[] = [];
    const stripes = new Map<string, { d: Buffer; st: Stripe }>();
    const unowned: Buffer[] = [];
    for (const id of ids) {
      const hex = id.toString('hex');
      this.#cur!.checked++;
      const owned = this.#ownership(hex);
      if (owned === 'none' && this.#draining) unowned.push(id);
      if (owned !== 'committed') continue;
      try {
        if (this.#o.repairMeta.isStripe(hex)) {
          const st = decodeStripe(await this.#o.store.get(id));
          stripes.set(hex, { d: id, st });
        } else if (this.#o.repairMeta.isShard(hex)) {
          // A shard is handled through its stripe's descriptor; fetched from a sibling if not here.
          for (const { d } of this.#o.repairMeta.shardOf(hex)) {
            if (stripes.has(d) || (await this.#o.store.has(Buffer.from(d, 'hex')))) continue;
            const dd = Buffer.from(d, 'hex');
            stripes.set(d, { d: dd, st: decodeStripe(await this.#o.fetcher.fetch(dd)) });
          }
        } else {
          plain.push({ id, hex, r: this.#o.repairMeta.copies(hex) });
        }
      } catch (err) {
        if (!(err instanceof TesseraError && err.code === 'NOT_FOUND')) {
          this.#totals.failures++;
          this.log.debug({ chunk: hex, err: errorMessage(err) }, 'chunk skipped by this repair pass');
        }
      }
    }
    if (unowned.length > 0) await this.#drop(unowned);
    if (plain.length > 0) await this.#replicated(plain, view);
    // One has-query per node answers the first survey of every stripe in the batch; then stripes
    // go several at a time, as each is still a few round trips (fetch, push), mostly waiting.
    const list = [...stripes.values()];
    const requests = new Map<string, Set<Buffer>>();
    for (const s of list) {
      const { probe, ids } = this.#stripeProbe(s.d, s.st, view);
      for (const p of probe) {
        let set = requests.get(p);
        if (!set) requests.set(p, (set = new Set()));
        for (const id of ids) set.add(id);
      }
    }
    const answers = list.length > 0 ? await this.#ask(new Map([...requests].map(([n, ids]) => [n, [...ids]]))) : new Map<string, Map<string, CopyState>>();
    await this.#each(list, (s) =>
      this.#stripe(s.d, s.st, view, answers).catch((err: unknown) => {
        this.#totals.failures++;
        this.log.warn({ stripe: s.d.toString('hex'), err: errorMessage(err) }, 'stripe not repaired in this pass');
      }),
    );
  }

  /** has-answers of many nodes for many ids: node → id hex → state. */
  async #ask(requests: Map<string, Buffer[]>): Promise<Map<string, Map<string, CopyState>>> {
    const live = new Set(this.peers.live().map((n) => n.nodeId));
    const out = new Map<string, Map<string, CopyState>>();
    await Promise.all(
      [...requests].map(async ([node, ids]) => {
        const m = new Map<string, CopyState>();
        out.set(node, m);
        if (!live.has(node) && node !== this.peers.selfId) {
          for (const id of ids) m.set(id.toString('hex'), 'unknown');
          return;
        }
        for (let i = 0; i < ids.length; i += MAX_IDS_PER_REQUEST) {
          const part = ids.slice(i, i + MAX_IDS_PER_REQUEST);
          try {
            const r = await this.peers.call(node, FILE_METHODS.chunkHas, { ids: part }, undefined, { timeoutMs: CONTROL_CALL_TIMEOUT_MS });
            const have = parseReply(replies.has, r.body, node).have;
            part.forEach((id, j) => m.set(id.toString('hex'), have[j] === true ? 'have' : 'lack'));
          } catch {
            for (const id of part) m.set(id.toString('hex'), 'unknown');
          }
        }
      }),
    );
    return out;
  }

  /**
   * Whether a local chunk is repair's business: chunks of committed files are; chunks only an
   * unfinished put references are placed by that put (and expire with it); chunks nobody
   * references wait for deletion, and a draining node can let them go at once.
   */
  #ownership(hex: string): 'committed' | 'pending' | 'none' {
    let pending = false;
    for (const u of this.#o.refs.owners(hex)) {
      const rec = this.#o.refs.upload(u);
      if (rec?.s === 'c') return 'committed';
      if (rec?.s === 'p') pending = true;
    }
    return pending ? 'pending' : 'none';
  }

  /**
   * The committed owners a copy is handed on with, each with the writer's proofs (commit and pin),
   * since a holder accepts no other. Records older than proofs have none until a full node proves
   * them (legacy-commits.ts); such a chunk is neither pushed nor dropped meanwhile.
   */
  #owners(hex: string): ProvenOwner[] {
    return this.#o.refs.committedOwners(hex, MAX_OWNERS_PER_CHUNK).filter((o) => o.proof !== undefined && o.pin !== undefined);
  }

  async #push(node: string, id: Buffer, data: Buffer, heal: Record<string, unknown>): Promise<boolean> {
    await this.#pace.take(data.length, () => this.#stopped);
    if (this.#stopped) return false;
    try {
      await this.peers.call(node, FILE_METHODS.chunkPut, { id, heal }, data, { timeoutMs: CHUNK_CALL_TIMEOUT_MS });
      this.log.debug({ chunk: id.toString('hex').slice(0, 16), to: node.slice(0, 12), bytes: data.length }, 'copy made');
      this.#totals.copiesMade++;
      this.#totals.bytesRestored += data.length;
      this.#cur!.restoredBytes += data.length;
      return true;
    } catch (err) {
      this.#totals.failures++;
      this.log.warn({ chunk: id.toString('hex').slice(0, 16), to: node.slice(0, 12), err: errorMessage(err) }, 'copy not made; the next pass retries');
      return false;
    }
  }

  async #drop(ids: Buffer[]): Promise<void> {
    for (const id of ids) {
      if (await this.#o.host.release(id)) {
        this.#totals.copiesDropped++;
        this.log.debug({ chunk: id.toString('hex').slice(0, 16) }, 'surplus copy dropped');
      }
      await this.#o.repairMeta.forget(id.toString('hex'));
    }
  }

  /** Runs jobs with bounded concurrency. */
  async #each<T>(items: T[], fn: (x: T) => Promise<void>): Promise<void> {
    let next = 0;
    const worker = async () => {
      while (next < items.length && !this.#stopped) await fn(items[next++]!);
    };
    await Promise.all(Array.from({ length: Math.min(REPAIR_CONCURRENCY, items.length) }, worker));
  }

  async #replicated(units: { id: Buffer; hex: string; r: number }[], view: WeightedNode[]): Promise<void> {
    const self = this.peers.selfId;
    const targets = units.map((u) => this.peers.rank(u.id, view).slice(0, u.r));
    const requests = new Map<string, Buffer[]>();
    units.forEach((u, i) => {
      for (const t of targets[i]!) if (t !== self) requests.set(t, [...(requests.get(t) ?? []), u.id]);
    });
    const answers = await this.#ask(requests);
    const stateOf = (node: string, hex: string): CopyState => (node === self ? 'have' : (answers.get(node)?.get(hex) ?? 'unknown'));
    const dropCandidates: number[] = [];
    await this.#each([...units.keys()], async (i) => {
      const u = units[i]!;
      const ts = targets[i]!;
      const decision = decideReplicaRepair({ self, targets: ts, stateOf: (t) => stateOf(t, u.hex) });
      // Fewer nodes than copies wanted: the shortfall is reported, though no node can take it.
      const short = Math.max(0, u.r - ts.length);
      if (short > 0 && ts[0] === self) {
        this.#cur!.deficitChunks += short;
        // Read before the sum: `x += await y` would write back over what the other workers added meanwhile.
        const size = await this.#o.store.get(u.id).then((b) => b.length, () => 0);
        this.#cur!.deficitBytes += short * size;
      }
      if (decision.missing === 0) {
        if (decision.surplus) dropCandidates.push(i);
        return;
      }
      if (!decision.responsible) return;
      let data: Buffer;
      try {
        data = await this.#o.store.get(u.id);
      } catch {
        return;
      }
      this.#cur!.deficitChunks += decision.missing;
      this.#cur!.deficitBytes += decision.missing * data.length;
      this.#cur!.waiting += decision.waiting;
      const heal = { r: u.r, owners: this.#owners(u.hex) };
      if (heal.owners.length === 0) {
        this.#cur!.waiting += decision.missing;
        return;
      }
      let ok = 0;
      for (const t of decision.pushTo) {
        if (await this.#push(t, u.id, data, heal)) {
          ok++;
          this.#cur!.restoredCopies++;
        }
      }
      if (decision.surplus && ok === decision.missing) dropCandidates.push(i);
    });
    if (dropCandidates.length === 0 || this.#stopped) return;
    // Surplus copies go only once every target confirms, asked again now that the copies are made.
    const again = new Map<string, Buffer[]>();
    for (const i of dropCandidates) for (const t of targets[i]!) if (t !== self) again.set(t, [...(again.get(t) ?? []), units[i]!.id]);
    const confirm = await this.#ask(again);
    const drop = dropCandidates.filter((i) => targets[i]!.length > 0 && targets[i]!.every((t) => t !== self && confirm.get(t)?.get(units[i]!.hex) === 'have'));
    await this.#drop(drop.map((i) => units[i]!.id));
  }

  /** The nodes asked about a stripe (its targets, a few past them, and this one) and the ids asked. */
  #stripeProbe(d: Buffer, st: Stripe, view: WeightedNode[]): { targets: string[]; probe: string[]; ids: Buffer[] } {
    const rank = this.peers.rank(d, view);
    const targets = rank.slice(0, st.k + st.m);
    const probe = rank.slice(0, st.k + st.m + STRIPE_PROBE_EXTRA);
    if (!probe.includes(this.peers.selfId)) probe.push(this.peers.selfId);
    return { targets, probe, ids: [d, ...st.s] };
  }

  async #stripe(d: Buffer, st: Stripe, view: WeightedNode[], firstAnswers?: Map<string, Map<string, CopyState>>): Promise<void> {
    const self = this.peers.selfId;
    const n = st.k + st.m;
    const { targets, probe, ids } = this.#stripeProbe(d, st, view);
    const dHex = d.toString('hex');
    let prefetched = firstAnswers;
    const survey = async () => {
      let answers = prefetched;
      prefetched = undefined;
      if (!answers) {
        const requests = new Map<string, Buffer[]>();
        for (const p of probe) requests.set(p, ids);
        answers = await this.#ask(requests);
      }
      const held = new Map<string, Set<number>>();
      const hasD = new Set<string>();
      const unknown = new Set<string>();
      for (const p of probe) {
        const a = answers.get(p)!;
        if (a.get(dHex) === 'unknown') {
          unknown.add(p);
          continue;
        }
        if (a.get(dHex) === 'have') hasD.add(p);
        const set = new Set<number>();
        st.s.forEach((s, j) => {
          if (a.get(s.toString('hex')) === 'have') set.add(j);
        });
        held.set(p, set);
      }
      // Each target is matched with one shard it holds that no better-placed target claimed.
      const assigned = new Map<number, string>();
      const empty: string[] = [];
      for (const t of targets) {
        if (unknown.has(t)) continue;
        const j = [...(held.get(t) ?? [])].sort((a, b) => a - b).find((x) => !assigned.has(x));
        if (j === undefined) empty.push(t);
        else assigned.set(j, t);
      }
      const missing = [...Array(n).keys()].filter((j) => !assigned.has(j));
      return { held, hasD, unknown, assigned, empty, missing };
    };
    const s = await survey();
    const waitingTargets = targets.filter((t) => s.unknown.has(t));
    const deficit = s.empty.length + waitingTargets.length + Math.max(0, n - targets.length);
    const firstHolder = probe.find((p) => s.hasD.has(p) || (s.held.get(p)?.size ?? 0) > 0);
    const selfTarget = targets.includes(self);
    if (deficit > 0 && firstHolder === self) {
      this.#cur!.deficitChunks += deficit;
      this.#cur!.deficitBytes += deficit * Math.ceil(st.size / st.k);
      this.#cur!.waiting += waitingTargets.length;
    }
    // While a target is only presumed dead, which shard it held is unknown: wait for the grace period.
    if (waitingTargets.length > 0) return;
    const owners = this.#owners(dHex);
    if (owners.length === 0) return; // unproven records: see #owners
    if (s.empty.length > 0 && firstHolder === self) {
      const descriptor = await this.#o.store.get(d);
      let rebuilt: Buffer[] | undefined;
      const shardBytes = async (j: number): Promise<Buffer> => {
        for (const [node, set] of s.held) {
          if (!set.has(j)) continue;
          try {
            const r = await this.peers.call(node, FILE_METHODS.chunkGet, { id: st.s[j]! }, undefined, { timeoutMs: CHUNK_CALL_TIMEOUT_MS });
            if (chunkIdOf(r.payload).equals(st.s[j]!)) return r.payload;
          } catch {
            /* try another holder, then rebuild */
          }
        }
        if (!rebuilt) {
          rebuilt = await rebuildStripe(this, d, st);
          this.#totals.shardsRebuilt++;
        }
        return rebuilt[j]!;
      };
      const pairs = s.empty.map((t, i) => ({ t, j: s.missing[i]! })).filter((p) => p.j !== undefined);
      for (const { t, j } of pairs) {
        if (this.#stopped) return;
        const bytes = await shardBytes(j);
        // The descriptor goes first, so a node never holds a shard it cannot place in its stripe.
        const okD = s.hasD.has(t) || (await this.#push(t, d, descriptor, { r: n, stripe: true, owners }));
        if (okD && (await this.#push(t, st.s[j]!, bytes, { of: { d, i: j }, owners }))) this.#cur!.restoredCopies++;
      }
    }
    // A target that has a shard but lost the descriptor gets it back from whoever acts.
    if (firstHolder === self) {
      const descriptor = await this.#o.store.get(d).catch(() => undefined);
      if (descriptor) for (const t of targets) if (!s.hasD.has(t) && !s.unknown.has(t) && s.held.has(t)) await this.#push(t, d, descriptor, { r: n, stripe: true, owners });
    }
    if (selfTarget || this.#stopped) return;
    // Surplus here: drop this node's pieces of the stripe only once every target holds a distinct shard and the descriptor.
    const after = await survey();
    const complete = after.missing.length === 0 && after.unknown.size === 0 && targets.every((t) => after.hasD.has(t)) && targets.length === n;
    if (!complete) return;
    const mine = [d, ...st.s.filter((_, j) => after.held.get(self)?.has(j))];
    await this.#drop(mine);
  }

  /** Restores a good copy of a local chunk found bad (scrub): fetched from a holder, or a shard rebuilt from its siblings. */
  async restoreLocal(id: Buffer): Promise<boolean> {
    const hex = id.toString('hex');
    try {
      const stripes = this.#o.repairMeta.shardOf(hex);
      if (stripes.length > 0) {
        const { d, i } = stripes[0]!;
        const dd = Buffer.from(d, 'hex');
        const st = decodeStripe(await this.#o.fetcher.fetch(dd));
        const have = await gatherShards(this, dd, st, { skip: new Set([this.peers.selfId]) });
        const all = await rebuildStripe(this, dd, st, have);
        this.#totals.shardsRebuilt++;
        await this.#o.host.put(undefined, id, all[i]!);
      } else {
        await this.#o.host.put(undefined, id, await this.#o.fetcher.fetch(id));
      }
      this.#totals.copiesMade++;
      return true;
    } catch (err) {
      this.#totals.failures++;
      this.log.warn({ chunk: hex, err: errorMessage(err) }, 'bad copy not restored yet; repair will retry');
      return false;
    }
  }
}
