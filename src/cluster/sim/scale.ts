/**
 * The scale scenarios of `bench/sim.ts`, runnable at any size so a small configuration can be a unit
 * test: the real Membership on the simulated network, the real placement, and the real repair
 * planner with copy transfers paced by a per-node bandwidth. Everything is driven by the seed, so
 * the same options give the same report.
 */
import { createHash } from 'node:crypto';
import { Placer, type WeightedNode } from '../placement.js';
import { planRepair, type ChunkHolding, type RepairBudget } from '../repair-plan.js';
import { randomInt } from '../clock.js';
import { createPrng } from './prng.js';
import { SimCluster } from './sim-cluster.js';

export interface ScaleOptions {
  nodes: number;
  /** Failure domains; node i is in zone i mod zones. One zone is placement without domains. */
  zones: number;
  seed: number;
  bootstraps: number;
  /** Message loss during the loss phase. */
  lossRate: number;
  lossDurationMs: number;
  /** Fraction of nodes that fail at once. */
  failFraction: number;
  chunks: number;
  replicas: number;
  chunkBytes: number;
  /** Each node's link, both directions (full duplex), bytes per second. */
  bandwidth: number;
  budget?: Partial<RepairBudget>;
  /** Give up on a phase after this much simulated time. */
  phaseLimitMs: number;
  progress?: (line: string) => void;
}

export const DEFAULT_SCALE_OPTIONS: Readonly<ScaleOptions> = Object.freeze({
  nodes: 1000,
  zones: 1,
  seed: 1,
  bootstraps: 3,
  lossRate: 0.01,
  lossDurationMs: 120_000,
  failFraction: 0.05,
  chunks: 1_000_000,
  replicas: 3,
  chunkBytes: 1 << 20,
  bandwidth: 125_000_000,
  phaseLimitMs: 300_000,
});

/** Step of the simulated clock between convergence checks. */
const CHECK_STEP_MS = 100;
/** Bound on repair rounds, so a planner that stopped making progress cannot loop forever. */
const MAX_REPAIR_ROUNDS = 100_000;

export interface ScaleReport {
  options: Omit<ScaleOptions, 'progress' | 'budget'> & { budget: Partial<RepairBudget> };
  join: { converged: boolean; simMs: number; calls: number; messagesPerNodePerSec: number };
  steady: { simMs: number; lossRate: number; messagesPerNodePerSec: number; falseDeaths: number; falseDeathsPerHour: number; stateChanges: number; reconvergedMs: number | null };
  failure: { failed: number; detectedMs: number | null; falseDeaths: number; messagesPerNodePerSec: number };
  repair: {
    chunks: number;
    affected: number;
    /** Chunks the planner found without a live holder. */
    lost: number;
    /** Chunks whose every initial holder failed (must equal `lost`). */
    lostByPlacement: number;
    rounds: number;
    copies: number;
    drops: number;
    bytesMoved: number;
    simMs: number;
    maxCopiesSentByOneNode: number;
    underReplicatedAfter: number;
  };
  joinOne: { chunks: number; chunksWithACopyMoved: number; copiesMoved: number; fractionOfCopies: number; expected: number };
  /** With more than one zone: every node of one zone fails at once (placement and repair planning only). */
  zoneFailure?: ZoneFailureReport;
  /** FNV-1a over the simulated network's whole trace. */
  digest: string;
}

export interface ZoneFailureReport {
  zone: string;
  failed: number;
  /** Chunks with a copy in the failed zone. */
  affected: number;
  /** Chunks whose every copy was in the failed zone. */
  lost: number;
  copies: number;
  rounds: number;
  underReplicatedAfter: number;
  /** Chunks left with two copies in one zone after repair. */
  sharingAZoneAfter: number;
}

const nodeName = (i: number, n: number): string => `n${String(i).padStart(String(n).length, '0')}`;
export const zoneName = (i: number, zones: number): string => `zone${String(i % zones).padStart(String(zones).length, '0')}`;

function chunkId(seed: number, i: number): Uint8Array {
  return createHash('sha256').update(`chunk:${seed}:${i}`).digest();
}

export async function runScale(partial: Partial<ScaleOptions> = {}): Promise<ScaleReport> {
  const o: ScaleOptions = { ...DEFAULT_SCALE_OPTIONS, ...partial };
  const say = o.progress ?? (() => {});
  const n = o.nodes;
  const ids = Array.from({ length: n }, (_, i) => nodeName(i, n));
  const seeds = ids.slice(0, Math.min(o.bootstraps, n)).map(SimCluster.addrOf);
  // Bodies are not copied: the readers build fresh records (see SimNetworkOptions.cloneBodies).
  const c = new SimCluster({ seed: o.seed, cloneBodies: false, changeLimit: 0, traceLimit: 0 });
  const clock = c.clock;
  const perNodeRate = (calls: number, ms: number, nodes: number) => (ms > 0 ? (2 * calls) / nodes / (ms / 1000) : 0);
  const allSeeAll = () => {
    const up = c.running();
    return up.every((x) => c.aliveSeen.get(x.nodeId) === up.length - 1);
  };

  // ---- 1. everyone joins at once through the bootstrap nodes ----
  const zoneOf = new Map(ids.map((id, i) => [id, zoneName(i, o.zones)]));
  for (const id of ids) c.start(id, seeds, o.zones > 1 ? { zone: zoneOf.get(id)! } : {});
  const joinOk = await clock.runUntilTrue(allSeeAll, o.phaseLimitMs, CHECK_STEP_MS);
  const joinMs = clock.now();
  const joinCalls = c.net.stats.sent;
  say(`join: ${joinOk ? 'converged' : 'NOT converged'} after ${joinMs} simulated ms, ${joinCalls} calls`);

  // ---- 2. steady state under message loss ----
  c.net.lossRate = o.lossRate;
  const s0 = { t: clock.now(), calls: c.net.stats.sent, deaths: sum(c.deathsOf), changes: c.stateChanges };
  const lossEnd = clock.now() + o.lossDurationMs;
  while (clock.now() < lossEnd) {
    await clock.runUntil(Math.min(lossEnd, clock.now() + 10_000));
    say(`loss: ${((clock.now() - s0.t) / 1000).toFixed(0)} s simulated, false deaths so far ${sum(c.deathsOf) - s0.deaths}`);
  }
  const steadyMs = clock.now() - s0.t;
  const falseDeaths = sum(c.deathsOf) - s0.deaths;
  const steadyCalls = c.net.stats.sent - s0.calls;
  const stateChanges = c.stateChanges - s0.changes;
  c.net.lossRate = 0;
  const r0 = clock.now();
  const reconverged = await clock.runUntilTrue(allSeeAll, o.phaseLimitMs, CHECK_STEP_MS);
  const reconvergedMs = reconverged ? clock.now() - r0 : null;

  // ---- 3. a fraction of the nodes fails at once ----
  const random = createPrng(o.seed, 'scenario');
  const candidates = ids.slice(seeds.length);
  const failed = new Set<string>();
  const want = Math.min(candidates.length, Math.round(n * o.failFraction));
  while (failed.size < want) failed.add(candidates[randomInt(random, candidates.length)]!);
  const deathsBefore = new Map(c.deathsOf);
  const f0 = { t: clock.now(), calls: c.net.stats.sent };
  for (const id of failed) c.crash(id);
  const survivors = c.running();
  const allDead = () => survivors.every((s) => [...failed].every((v) => s.membership.get(v)?.state === 'dead'));
  const detected = await clock.runUntilTrue(allDead, o.phaseLimitMs, CHECK_STEP_MS);
  const detectedMs = detected ? clock.now() - f0.t : null;
  const failCalls = c.net.stats.sent - f0.calls;
  const failMs = clock.now() - f0.t;
  let failFalse = 0;
  for (const [id, k] of c.deathsOf) if (!failed.has(id)) failFalse += k - (deathsBefore.get(id) ?? 0);
  say(`failure: ${failed.size} nodes down, all survivors agree after ${detectedMs} simulated ms, false deaths ${failFalse}`);
  c.stopAll();

  // ---- 4. repair planning and paced copies over the survivors ----
  const all: WeightedNode[] = ids.map((nodeId) => ({ nodeId, weight: 1, zone: zoneOf.get(nodeId)! }));
  const live: WeightedNode[] = all.filter((x) => !failed.has(x.nodeId));
  const newcomer = `n${n}`;
  const before = new Placer(all);
  const after = new Placer([...all, { nodeId: newcomer, weight: 1, zone: zoneName(n, o.zones) }]);
  const affected: ChunkHolding[] = [];
  let lost = 0;
  let movedChunks = 0;
  let movedCopies = 0;
  for (let i = 0; i < o.chunks; i++) {
    const id = chunkId(o.seed, i);
    const holders = before.place(id, o.replicas);
    let down = 0;
    for (const h of holders) if (failed.has(h)) down++;
    if (down === holders.length) lost++;
    if (down > 0) affected.push({ id, holders });
    const next = after.place(id, o.replicas);
    let moved = 0;
    for (const x of next) if (!holders.includes(x)) moved++;
    if (moved > 0) movedChunks++;
    movedCopies += moved;
    if ((i + 1) % 100_000 === 0) say(`placement: ${i + 1} of ${o.chunks} chunks`);
  }
  const placer = new Placer(live);
  const holdings = affected.map((a) => ({ id: a.id, holders: [...a.holders] }));
  let rounds = 0;
  let copies = 0;
  let drops = 0;
  let repairMs = 0;
  const sentBy = new Map<string, number>();
  let lastPlan = planRepair({ chunks: holdings, live, replicas: o.replicas, placer, budget: o.budget });
  const zoneFailure = o.zones > 1 ? zoneFailurePhase(o, all, before, say) : undefined;
  while ((lastPlan.copies.length > 0 || lastPlan.drops.length > 0) && rounds < MAX_REPAIR_ROUNDS) {
    rounds++;
    // A round lasts as long as its busiest link: each node sends and receives at `bandwidth`.
    const out = new Map<string, number>();
    const inn = new Map<string, number>();
    for (const cp of lastPlan.copies) {
      out.set(cp.from, (out.get(cp.from) ?? 0) + 1);
      inn.set(cp.to, (inn.get(cp.to) ?? 0) + 1);
      sentBy.set(cp.from, (sentBy.get(cp.from) ?? 0) + 1);
      holdings[cp.chunk]!.holders.push(cp.to);
    }
    let busiest = 0;
    for (const v of out.values()) busiest = Math.max(busiest, v);
    for (const v of inn.values()) busiest = Math.max(busiest, v);
    repairMs += (busiest * o.chunkBytes * 1000) / o.bandwidth;
    copies += lastPlan.copies.length;
    for (const d of lastPlan.drops) {
      const h = holdings[d.chunk]!.holders;
      h.splice(h.indexOf(d.node), 1);
    }
    drops += lastPlan.drops.length;
    lastPlan = planRepair({ chunks: holdings, live, replicas: o.replicas, placer, budget: o.budget });
    if (rounds % 50 === 0) say(`repair: round ${rounds}, ${copies} copies so far`);
  }
  let maxSent = 0;
  for (const v of sentBy.values()) maxSent = Math.max(maxSent, v);
  say(`repair: ${copies} copies in ${rounds} rounds, ${(repairMs / 1000).toFixed(1)} s at ${o.bandwidth} B/s per node`);

  return {
    options: { ...stripFns(o), budget: o.budget ?? {} },
    join: { converged: joinOk, simMs: joinMs, calls: joinCalls, messagesPerNodePerSec: round(perNodeRate(joinCalls, joinMs, n)) },
    steady: {
      simMs: steadyMs,
      lossRate: o.lossRate,
      messagesPerNodePerSec: round(perNodeRate(steadyCalls, steadyMs, n)),
      falseDeaths,
      falseDeathsPerHour: round((falseDeaths * 3_600_000) / Math.max(1, steadyMs)),
      stateChanges,
      reconvergedMs,
    },
    failure: { failed: failed.size, detectedMs, falseDeaths: failFalse, messagesPerNodePerSec: round(perNodeRate(failCalls, failMs, survivors.length)) },
    repair: {
      chunks: o.chunks,
      affected: affected.length,
      lost: lastPlan.lost.length,
      lostByPlacement: lost,
      rounds,
      copies,
      drops,
      bytesMoved: copies * o.chunkBytes,
      simMs: Math.round(repairMs),
      maxCopiesSentByOneNode: maxSent,
      underReplicatedAfter: lastPlan.underReplicated,
    },
    joinOne: {
      chunks: o.chunks,
      chunksWithACopyMoved: movedChunks,
      copiesMoved: movedCopies,
      fractionOfCopies: movedCopies / Math.max(1, o.chunks * o.replicas),
      expected: 1 / (n + 1),
    },
    ...(zoneFailure ? { zoneFailure } : {}),
    digest: c.net.digest,
  };
}

/**
 * Every node of one zone fails at once: which chunks had every copy there (none may, with at least
 * R zones), and the repair plans run to completion over the other zones.
 */
function zoneFailurePhase(o: ScaleOptions, all: WeightedNode[], placer: Placer, say: (line: string) => void): ZoneFailureReport {
  const zone = zoneName(Math.floor(createPrng(o.seed, 'zone')() * o.zones), o.zones);
  const failed = new Set(all.filter((x) => x.zone === zone).map((x) => x.nodeId));
  const live = all.filter((x) => !failed.has(x.nodeId));
  const holdings: { id: Uint8Array; holders: string[] }[] = [];
  let lost = 0;
  for (let i = 0; i < o.chunks; i++) {
    const id = chunkId(o.seed, i);
    const holders = placer.place(id, o.replicas);
    let down = 0;
    for (const h of holders) if (failed.has(h)) down++;
    if (down === holders.length) lost++;
    if (down > 0) holdings.push({ id, holders });
  }
  const livePlacer = new Placer(live);
  let rounds = 0;
  let copies = 0;
  let plan = planRepair({ chunks: holdings, live, replicas: o.replicas, placer: livePlacer, budget: o.budget });
  while ((plan.copies.length > 0 || plan.drops.length > 0) && rounds < MAX_REPAIR_ROUNDS) {
    rounds++;
    for (const cp of plan.copies) holdings[cp.chunk]!.holders.push(cp.to);
    for (const d of plan.drops) {
      const h = holdings[d.chunk]!.holders;
      h.splice(h.indexOf(d.node), 1);
    }
    copies += plan.copies.length;
    plan = planRepair({ chunks: holdings, live, replicas: o.replicas, placer: livePlacer, budget: o.budget });
  }
  const zoneOf = new Map(live.map((x) => [x.nodeId, x.zone]));
  let sharing = 0;
  for (const h of holdings) {
    const zones = h.holders.filter((x) => zoneOf.has(x)).map((x) => zoneOf.get(x));
    if (new Set(zones).size < zones.length) sharing++;
  }
  say(`zone failure: ${zone} (${failed.size} nodes) down, ${lost} chunks lost, ${copies} copies to repair in ${rounds} rounds`);
  return { zone, failed: failed.size, affected: holdings.length, lost, copies, rounds, underReplicatedAfter: plan.underReplicated, sharingAZoneAfter: sharing };
}

/** Placement lookups per second (wall clock, this machine) over `members` nodes in `zones` zones. */
export function placementLookupsPerSecond(members: number, zones: number, replicas: number, lookups = 20_000): number {
  const nodes: WeightedNode[] = Array.from({ length: members }, (_, i) => ({ nodeId: nodeName(i, members), weight: 1, zone: zoneName(i, zones) }));
  const placer = new Placer(nodes);
  const ids = Array.from({ length: lookups }, (_, i) => chunkId(members, i));
  const t0 = process.hrtime.bigint();
  for (const id of ids) placer.place(id, replicas);
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  return Math.round(lookups / Math.max(seconds, 1e-9));
}

function sum(m: Map<string, number>): number {
  let s = 0;
  for (const v of m.values()) s += v;
  return s;
}

function round(x: number): number {
  return Math.round(x * 100) / 100;
}

function stripFns(o: ScaleOptions): Omit<ScaleOptions, 'progress' | 'budget'> {
  const { progress: _p, budget: _b, ...rest } = o;
  return rest;
}
