/**
 * Merging what several replicas return for one read: a point read keeps the winning version and
 * names the replicas that need repair; a range page is cut where every replica's answer is still
 * complete, so no key can be skipped when a short replica missed it. Pure functions, no I/O.
 */
import { compareVersions, mergeVersions, type TableEntry } from './entry.js';

export interface ReplicaPage {
  readonly nodeId: string;
  /** In sort-key byte order, tombstones included. */
  readonly entries: readonly TableEntry[];
  /** True when the replica stopped at the limit (there may be more after its last entry). */
  readonly more: boolean;
}

export interface Repair {
  readonly nodeId: string;
  readonly entries: TableEntry[];
}

export interface MergedPage {
  /** Winners up to the cut, in order, tombstones included (the caller hides them). */
  readonly entries: TableEntry[];
  /** Sort key the next page starts after, or null when every replica ran out. */
  readonly next: string | null;
  /** Winners each replica lacked or held an older version of, up to the cut. */
  readonly repairs: Repair[];
}

/**
 * UTF-8 byte order of two well-formed strings without encoding them (a page merge compares
 * thousands of keys). UTF-16 code-unit order is code-point order, and so UTF-8 byte order,
 * except where a surrogate (a code point above U+FFFF) meets a unit in U+E000..U+FFFF.
 */
export function compareUtf8(a: string, b: string): -1 | 0 | 1 {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x === y) continue;
    const xs = x >= 0xd800 && x <= 0xdfff;
    const ys = y >= 0xd800 && y <= 0xdfff;
    if (xs !== ys) return xs ? 1 : -1;
    return x < y ? -1 : 1;
  }
  return a.length === b.length ? 0 : a.length < b.length ? -1 : 1;
}

const byteCompare = compareUtf8;

/** The surviving version of one key across replicas, and the replicas behind it. */
export function mergePoint(replies: ReadonlyArray<{ nodeId: string; entry: TableEntry | null }>): { winner: TableEntry | null; repairs: Repair[] } {
  let winner: TableEntry | null = null;
  for (const r of replies) if (r.entry !== null) winner = winner === null ? r.entry : mergeVersions(winner, r.entry);
  const repairs: Repair[] = [];
  if (winner !== null) {
    for (const r of replies) if (r.entry === null || compareVersions(r.entry, winner) !== 0) repairs.push({ nodeId: r.nodeId, entries: [winner] });
  }
  return { winner, repairs };
}

export function mergePages(pages: readonly ReplicaPage[]): MergedPage {
  // A replica that stopped at its limit says nothing about keys past its last one.
  let cut: string | null = null;
  for (const p of pages) {
    const last = p.entries[p.entries.length - 1];
    if (p.more && last !== undefined && (cut === null || byteCompare(last.sk, cut) < 0)) cut = last.sk;
  }
  const winners = new Map<string, TableEntry>();
  for (const p of pages) {
    for (const e of p.entries) {
      if (cut !== null && byteCompare(e.sk, cut) > 0) break;
      const w = winners.get(e.sk);
      winners.set(e.sk, w === undefined ? e : mergeVersions(w, e));
    }
  }
  const entries = [...winners.values()].sort((a, b) => byteCompare(a.sk, b.sk));
  const repairs: Repair[] = [];
  for (const p of pages) {
    const held = new Map<string, TableEntry>();
    for (const e of p.entries) held.set(e.sk, e);
    const stale = entries.filter((w) => {
      const h = held.get(w.sk);
      return h === undefined || compareVersions(h, w) !== 0;
    });
    if (stale.length > 0) repairs.push({ nodeId: p.nodeId, entries: stale });
  }
  const anyMore = pages.some((p) => p.more);
  const next = anyMore ? (cut ?? entries[entries.length - 1]?.sk ?? null) : null;
  return { entries, next, repairs };
}
