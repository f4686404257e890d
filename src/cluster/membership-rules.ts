/**
 * SWIM's precedence rules, pure. A record supersedes another about the same member when it has a
 * higher incarnation, or the same incarnation and a graver state (alive < suspect < dead < left).
 * Only the member itself raises its incarnation, so an 'alive' can override an accusation only
 * when the member has heard of it and refuted it.
 */
import type { MemberState } from './membership-wire.js';

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
