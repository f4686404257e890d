/**
 * The one failover-and-quorum loop: fill `want` slots from nodes in placement order, put the
 * next-ranked usable node in for one that fails, and succeed once `quorum` attempts did. Replicated
 * and erasure-coded writes, commits, removals and name writes all run through it, and so will the
 * metadata tables. It does no I/O itself: the attempt does.
 */
import { assert } from '../errors.js';

export interface QuorumPlan<T> {
  /** Candidate node ids in placement order, no repeats: the first `want` are tried at once. */
  ranked: readonly string[];
  /** Slots to fill (default: every candidate, so no stand-ins). */
  want?: number;
  /** Attempts that must succeed (callers cap it at the nodes they have; more than the slots always falls short). */
  quorum: number;
  /** Whether a node may stand in for a failed one (a node held down is skipped). */
  usable?(nodeId: string): boolean;
  /** One try on one node for one slot; `standIn` when it replaces a failed node. */
  attempt(nodeId: string, slot: number, standIn: boolean): Promise<T>;
  /** Cancels the whole plan: the first failure after it fires rethrows its reason. */
  signal?: AbortSignal;
  /** The error to throw when fewer than `quorum` succeeded (the caller names what failed). */
  shortfall(outcome: QuorumOutcome<T>): Error;
}

export interface QuorumOutcome<T> {
  /** Successful attempts, in the order they finished. */
  done: Array<{ nodeId: string; slot: number; standIn: boolean; value: T }>;
  /** Failed attempts, in the order they failed. */
  failed: Array<{ nodeId: string; slot: number; error: unknown }>;
}

export async function reachQuorum<T>(p: QuorumPlan<T>): Promise<QuorumOutcome<T>> {
  const want = p.want ?? p.ranked.length;
  assert(Number.isInteger(want) && want >= 0, `quorum plan wants ${want} slots`);
  assert(Number.isInteger(p.quorum) && p.quorum >= 0, `quorum ${p.quorum}`);
  assert(new Set(p.ranked).size === p.ranked.length, 'quorum plan names a node twice');
  p.signal?.throwIfAborted();
  const outcome: QuorumOutcome<T> = { done: [], failed: [] };
  let next = Math.min(want, p.ranked.length);
  const standInFor = (): string | undefined => {
    while (next < p.ranked.length) {
      const alt = p.ranked[next++]!;
      if (p.usable === undefined || p.usable(alt)) return alt;
    }
    return undefined;
  };
  const fill = async (slot: number, nodeId: string, standIn: boolean): Promise<void> => {
    for (let node: string | undefined = nodeId, isStandIn = standIn; node !== undefined; node = standInFor(), isStandIn = true) {
      try {
        const value = await p.attempt(node, slot, isStandIn);
        outcome.done.push({ nodeId: node, slot, standIn: isStandIn, value });
        return;
      } catch (error) {
        if (p.signal?.aborted) throw p.signal.reason;
        outcome.failed.push({ nodeId: node, slot, error });
      }
    }
  };
  await Promise.all(p.ranked.slice(0, want).map((nodeId, slot) => fill(slot, nodeId, false)));
  if (outcome.done.length < p.quorum) throw p.shortfall(outcome);
  return outcome;
}

/** Nodes that failed and why, for an error message: "abc123…: timed out; def456…: refused". */
export function describeFailures(failed: QuorumOutcome<unknown>['failed'], message: (e: unknown) => string): string {
  return failed.map((f) => `${f.nodeId.slice(0, 12)}: ${message(f.error)}`).join('; ');
}
