/**
 * Repair decisions, pure. `decideReplicaRepair` is what one holder of a replicated chunk decides
 * from what it knows: whether it is the node that acts, which targets it copies the chunk to,
 * and whether its own copy is surplus. The running node's repair loop (files/repair.ts) calls it
 * for every chunk it holds; `planRepair` calls it for every live holder of every chunk, so the
 * simulator (bench/sim.ts, a million chunks over a thousand nodes) runs the same decisions.
 *
 * Rules, each for a reason:
 * - Targets are the placement of the chunk over the live nodes (DESIGN §3.6), so after repair every
 *   chunk sits where a reader will look first, and a later join or leave moves only ~1/N again.
 * - One holder acts for a chunk: the best-placed target that holds it, or, when no target holds
 *   it, every holder outside the targets (their copies are identical; a put is idempotent).
 * - A target whose state is unknown (a member dead for less than the grace period) is waited for,
 *   never copied to: during a blip nothing moves.
 * - A surplus copy is dropped only once every target holds the chunk: it is released after the
 *   new copies are confirmed, never in the same breath as the copies that replace it, so the last
 *   good copy is never dropped.
 * - Budgets (copies per plan, per source, per target) keep each batch friendly to foreground
 *   traffic; what does not fit is counted as deferred and comes back in the next plan.
 */
import { TesseraError } from '../errors.js';
import { Placer, type WeightedNode } from './placement.js';

/** What a node knows of one target's copy: it has one, it answered that it lacks one, or it did not answer. */
export type CopyState = 'have' | 'lack' | 'unknown';

export interface ReplicaView {
  /** The deciding node, a holder of the chunk. */
  self: string;
  /** Where placement wants the copies now, best first. */
  targets: readonly string[];
  /** What a target holds as far as the deciding node knows (it is asked for the others only). */
  stateOf(nodeId: string): CopyState;
}

export interface ReplicaDecision {
  /** Targets without a confirmed copy. */
  missing: number;
  /** Of those, targets that did not answer: presumed back soon, so waited for. */
  waiting: number;
  /** This node is the one that acts for the chunk. */
  responsible: boolean;
  /** Targets this node copies the chunk to (empty unless it is responsible). */
  pushTo: string[];
  /** This node is not a target: its copy goes once every target confirms holding one. */
  surplus: boolean;
}

export function decideReplicaRepair(v: ReplicaView): ReplicaDecision {
  const states = v.targets.map((t) => (t === v.self ? 'have' : v.stateOf(t)));
  const lacking = v.targets.filter((_, j) => states[j] === 'lack');
  const missing = states.filter((st) => st !== 'have').length;
  const selfTarget = v.targets.includes(v.self);
  const firstHolder = v.targets.find((_, j) => states[j] === 'have');
  const responsible = missing > 0 && (selfTarget ? firstHolder === v.self : firstHolder === undefined);
  return { missing, waiting: missing - lacking.length, responsible, pushTo: responsible ? lacking : [], surplus: !selfTarget };
}

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
    // Targets are live by construction, so every one answers: it has the chunk or lacks it.
    const stateOf = (n: string): CopyState => (have.includes(n) ? 'have' : 'lack');
    const planned = new Set<string>();
    let lacking = 0;
    for (const h of have) {
      const d = decideReplicaRepair({ self: h, targets, stateOf });
      lacking = Math.max(lacking, d.missing);
      for (const t of d.pushTo) {
        if (planned.has(t)) continue;
        const load = sent.get(h) ?? 0;
        if (plan.copies.length >= budget.maxCopies || (received.get(t) ?? 0) >= budget.maxPerTarget || load >= budget.maxPerSource) continue;
        planned.add(t);
        sent.set(h, load + 1);
        received.set(t, (received.get(t) ?? 0) + 1);
        plan.copies.push({ chunk: index, from: h, to: t });
      }
      if (d.surplus && d.missing === 0 && targets.length > 0) plan.drops.push({ chunk: index, node: h });
    }
    plan.deferred += lacking - planned.size;
  });
  return plan;
}
