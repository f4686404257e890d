/**
 * SWIM's precedence rules, pure. A record supersedes another about the same member when it has a
 * higher incarnation, or the same incarnation and a graver state (alive < suspect < dead < left).
 * Only the member itself raises its incarnation, so an 'alive' can override an accusation only
 * when the member has heard of it and refuted it.
 */
import { MAX_INCARNATION, type MemberState } from './membership-wire.js';

/**
 * Furthest a record heard second-hand may move a member's incarnation past the one we hold.
 * Honest members raise theirs by one per refutation, and a peer that falls further behind (after
 * a partition) catches up from the member's own record on its next direct probe; a rumour far
 * ahead can only be forged, and believing it would make the member refute to a value an accuser
 * chose.
 */
export const MAX_INCARNATION_STEP = 16;

const RANK: Record<MemberState, number> = { alive: 0, suspect: 1, dead: 2, left: 3 };

/** > 0 when (incA, stateA) supersedes (incB, stateB), 0 when equal, < 0 when older. */
export function compareRecords(incA: number, stateA: MemberState, incB: number, stateB: MemberState): number {
  return incA !== incB ? incA - incB : RANK[stateA] - RANK[stateB];
}

/** Whether the member is still expected to answer probes. */
export function isProbeable(state: MemberState): boolean {
  return state === 'alive' || state === 'suspect';
}

/**
 * How many times each update is re-sent: λ·⌈log10(n+1)⌉, so it reaches every member with high
 * probability while the per-message cost stays bounded as the cluster grows.
 */
export function retransmitLimit(mult: number, members: number): number {
  return Math.max(1, mult * Math.ceil(Math.log10(members + 1)));
}

/** Whether a second-hand record at `heard` is credible about a member we hold at `known`. */
export function credibleIncarnation(known: number, heard: number): boolean {
  return heard <= known + MAX_INCARNATION_STEP;
}

/**
 * The incarnation to refute a claim about ourselves heard at `heard` while we are at `mine`, or
 * undefined when the claim is not credible (far ahead of anything we used) or no room is left.
 */
export function refutationIncarnation(mine: number, heard: number): number | undefined {
  if (!credibleIncarnation(mine, heard)) return undefined;
  const next = Math.max(mine, heard) + 1;
  return next <= MAX_INCARNATION ? next : undefined;
}

/**
 * The incarnation a node starts with after a restart: one above the persisted value, so it
 * outranks every rumour about its previous life. A persisted value that is not a count in range
 * (written by an older version, or corrupted) starts over at 0 rather than stopping the node.
 */
export function restartIncarnation(saved: unknown): { incarnation: number; reset: boolean } {
  if (saved === undefined) return { incarnation: 1, reset: false };
  if (typeof saved === 'number' && Number.isSafeInteger(saved) && saved >= 0 && saved < MAX_INCARNATION) return { incarnation: saved + 1, reset: false };
  return { incarnation: 0, reset: true };
}
