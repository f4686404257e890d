/**
 * Repair planning, pure: given chunks with the nodes that hold a good copy of each, the live
 * membership and the redundancy policy, which copies to make (from which holder to which node), and
 * which surplus copies may be dropped. The repair loop executes a plan, waits for the copies to be
 * confirmed, lists holdings again and plans again; the simulator (bench/sim.ts) runs the same
 * function over a million chunks.
 *
 * Rules, each for a reason:
 * - Targets are the placement of the chunk over the live nodes (DESIGN §3.6), so after repair every
 *   chunk sits where a reader will look first, and a later join or leave moves only ~1/N again.
 * - A copy's source is a live holder; among them the one with the fewest copies assigned in this
 *   plan, so one surviving replica holder does not serve a whole failed node's data alone.
 * - Drops happen only in a plan where every target already holds the chunk: a surplus copy is
 *   released after the new copies are confirmed (they are in the holdings the next plan is given),
 *   never in the same breath as the copies that replace it, so the last good copy is never dropped.
 * - Budgets (copies per plan, per source, per target) keep each batch friendly to foreground
 *   traffic; what does not fit is counted as deferred and comes back in the next plan.
 */
import { TesseraError } from '../errors.js';
import { Placer, type WeightedNode } from './placement.js';

export interface ChunkHolding {
  /** The chunk id (its content hash) as placement hashes it. */
  id: Uint8Array;
  /** Nodes believed to hold a verified copy; dead ones may be listed, they are ignored. */
  holders: readonly string[];
  /** Copies this chunk should have (its file's policy); the plan's default when absent. */
  replicas?: number;
}

export interface RepairBudget {
  /** Most copies in one plan. */
  maxCopies: number;
  /** Most copies one node sends in one plan. */
  maxPerSource: number;
  /** Most copies one node receives in one plan. */
  maxPerTarget: number;
}

/** Sized so one batch of 1 MiB chunks is a few seconds of a 1 Gbit/s link per node. */
export const DEFAULT_REPAIR_BUDGET: Readonly<RepairBudget> = Object.freeze({
  maxCopies: 4096,
  maxPerSource: 64,
  maxPerTarget: 64,
});

/** Highest replica count a plan accepts (the files layer allows 1–16). */
export const MAX_REPAIR_REPLICAS = 16;

export interface CopyOp {
  /** Index of the chunk in the input. */
  chunk: number;
  from: string;
  to: string;
}

export interface DropOp {
  chunk: number;
  node: string;
}

export interface RepairPlan {
  copies: CopyOp[];
  drops: DropOp[];
  /** Chunks with no live holder: nothing can restore them from inside the cluster. */
  lost: number[];
  /** Copies needed but left for a later plan by the budget. */
  deferred: number;
  /** Chunks below their replica count before this plan (lost ones included). */
  underReplicated: number;
  /** Chunks that cannot reach their replica count because fewer nodes are live. */
  shortOfNodes: number;
}

export interface RepairInput {
  chunks: readonly ChunkHolding[];
  /** Live members (alive or suspect) with their placement weights. */
  live: readonly WeightedNode[];
  replicas: number;
  budget?: Partial<RepairBudget>;
  /** A placer already built over `live`, reused across plans while membership does not change. */
  placer?: Placer;
}

function checkCount(v: number, what: string, lo: number, hi: number): void {
  if (!(Number.isInteger(v) && v >= lo && v <= hi)) throw new TesseraError('BAD_INPUT', `${what} must be an integer from ${lo} to ${hi}, got ${v}`);
}

export function planRepair(input: RepairInput): RepairPlan {
  const budget = { ...DEFAULT_REPAIR_BUDGET, ...(input.budget ?? {}) };
  checkCount(input.replicas, 'replicas', 1, MAX_REPAIR_REPLICAS);
  checkCount(budget.maxCopies, 'budget.maxCopies', 0, Number.MAX_SAFE_INTEGER);
  checkCount(budget.maxPerSource, 'budget.maxPerSource', 0, Number.MAX_SAFE_INTEGER);
  checkCount(budget.maxPerTarget, 'budget.maxPerTarget', 0, Number.MAX_SAFE_INTEGER);
  const placer = input.placer ?? new Placer(input.live);
  if (input.placer !== undefined && !input.placer.matches(input.live)) {
    throw new TesseraError('BAD_INPUT', 'the placer given to planRepair was built over another membership');
  }
  const liveSet = new Set(input.live.map((n) => n.nodeId));
  const sent = new Map<string, number>();
  const received = new Map<string, number>();
  const plan: RepairPlan = { copies: [], drops: [], lost: [], deferred: 0, underReplicated: 0, shortOfNodes: 0 };

  input.chunks.forEach((c, index) => {
    const want = c.replicas ?? input.replicas;
    checkCount(want, `replicas of chunk ${index}`, 1, MAX_REPAIR_REPLICAS);
    const have: string[] = [];
    for (const h of c.holders) if (liveSet.has(h) && !have.includes(h)) have.push(h);
    if (have.length < want) plan.underReplicated++;
    if (have.length === 0) {
      plan.lost.push(index);
      return;
    }
    if (liveSet.size < want) plan.shortOfNodes++;
    const targets = placer.place(c.id, want);
    let missing = 0;
    for (const t of targets) {
      if (have.includes(t)) continue;
      missing++;
      if (plan.copies.length >= budget.maxCopies || (received.get(t) ?? 0) >= budget.maxPerTarget) {
        plan.deferred++;
        continue;
      }
      let from: string | undefined;
      let fromLoad = Infinity;
      for (const h of have) {
        const load = sent.get(h) ?? 0;
        if (load < budget.maxPerSource && load < fromLoad) {
          from = h;
          fromLoad = load;
        }
      }
      if (from === undefined) {
        plan.deferred++;
        continue;
      }
      sent.set(from, fromLoad + 1);
      received.set(t, (received.get(t) ?? 0) + 1);
      plan.copies.push({ chunk: index, from, to: t });
    }
    // Surplus goes only once every target holds the chunk, so `want` good copies remain.
    if (missing === 0 && targets.length > 0) {
      for (const h of have) if (!targets.includes(h)) plan.drops.push({ chunk: index, node: h });
    }
  });
  return plan;
}
