/**
 * The one failover-and-quorum loop: fill `want` slots from nodes in placement order, put the
 * next-ranked usable node in for one that fails, and succeed once `quorum` attempts did. Replicated
 * and erasure-coded writes, commits, removals, name writes and the metadata tables all run through
 * it. By default it waits for every slot (a write wants every copy it can place); with `early` it
 * answers as soon as the quorum is met or can no longer be, and hands attempts that succeed after
 * that to `late` (the tables' reads repair those replicas). It does no I/O itself: the attempt does.
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
  /**
   * Settle as soon as `quorum` attempts succeeded, or as soon as the slots still open cannot make
   * up the difference, instead of waiting for every slot. Attempts still running carry on.
   */
  early?: boolean;
  /** With `early`: each attempt that succeeds after the plan settled (stragglers). */
  late?(done: QuorumDone<T>): void;
  /** The error to throw when fewer than `quorum` succeeded (the caller names what failed). */
  shortfall(outcome: QuorumOutcome<T>): Error;
}

export interface QuorumDone<T> {
  nodeId: string;
  slot: number;
  standIn: boolean;
  value: T;
}

export interface QuorumOutcome<T> {
  /** Successful attempts, in the order they finished. */
  done: Array<QuorumDone<T>>;
  /** Failed attempts, in the order they failed. */
  failed: Array<{ nodeId: string; slot: number; error: unknown }>;
}

export async function reachQuorum<T>(p: QuorumPlan<T>): Promise<QuorumOutcome<T>> {
  const want = p.want ?? p.ranked.length;
  assert(Number.isInteger(want) && want >= 0, `quorum plan wants ${want} slots`);
  assert(Number.isInteger(p.quorum) && p.quorum >= 0, `quorum ${p.quorum}`);
  assert(new Set(p.ranked).size === p.ranked.length, 'quorum plan names a node twice');
  assert(p.late === undefined || p.early === true, 'late answers exist only for a plan that settles early');
  p.signal?.throwIfAborted();
  const outcome: QuorumOutcome<T> = { done: [], failed: [] };
  const first = p.ranked.slice(0, want);
  let next = first.length;
  const standInFor = (): string | undefined => {
    while (next < p.ranked.length) {
      const alt = p.ranked[next++]!;
      if (p.usable === undefined || p.usable(alt)) return alt;
    }
    return undefined;
  };
  return new Promise((resolve, reject) => {
    let open = first.length;
    let settled = false;
    const snapshot = (): QuorumOutcome<T> => ({ done: [...outcome.done], failed: [...outcome.failed] });
    const settle = (err: unknown | undefined) => {
      settled = true;
      if (err !== undefined) reject(err);
      else resolve(snapshot());
    };
    const check = () => {
      if (settled) return;
      const met = outcome.done.length >= p.quorum;
      if (p.early && met) settle(undefined);
      else if (open === 0 || (p.early && outcome.done.length + open < p.quorum)) settle(met ? undefined : p.shortfall(snapshot()));
    };
    const fill = async (slot: number, nodeId: string): Promise<void> => {
      for (let node: string | undefined = nodeId, standIn = false; node !== undefined; node = standInFor(), standIn = true) {
        let value: T;
        try {
          value = await p.attempt(node, slot, standIn);
        } catch (error) {
          if (p.signal?.aborted) {
            if (!settled) settle(p.signal.reason);
            return;
          }
          if (!settled) outcome.failed.push({ nodeId: node, slot, error });
          continue;
        }
        const done = { nodeId: node, slot, standIn, value };
        if (settled) p.late?.(done);
        else outcome.done.push(done);
        return;
      }
    };
    // A plan that cannot start (no slots, or fewer than its quorum when settling early) calls no one.
    check();
    if (settled) return;
    first.forEach((nodeId, slot) => {
      void fill(slot, nodeId).finally(() => {
        open--;
        check();
      });
    });
  });
}

/** Nodes that failed and why, for an error message: "abc123…: timed out; def456…: refused". */
export function describeFailures(failed: QuorumOutcome<unknown>['failed'], message: (e: unknown) => string): string {
  return failed.map((f) => `${f.nodeId.slice(0, 12)}: ${message(f.error)}`).join('; ');
}
