/**
 * Per-partition digest tree. Each entry's MAC is its hash; a leaf's digest is the XOR of the
 * hashes of the keys in it plus their count, and each inner node the XOR and sum of its children,
 * so a write updates one path in O(levels) without rereading anything. Two replicas compare roots;
 * where they differ they walk down only the differing children and exchange key lists for the
 * differing leaves. Entries only come from full nodes (their MACs are checked), so the linearity of
 * XOR is no opening for a crafted collision. Pure functions, no I/O.
 */
import { badInput } from '../errors.js';
import { LEAF_BITS, LEAF_COUNT } from './keys.js';

export const TREE_FANOUT_BITS = 4;
export const TREE_FANOUT = 1 << TREE_FANOUT_BITS;
/** Levels below the root; the last one is the leaves. */
export const TREE_DEPTH = LEAF_BITS / TREE_FANOUT_BITS;
export const DIGEST_HASH_BYTES = 32;
/** XOR of the hashes, then the entry count. */
export const NODE_DIGEST_BYTES = DIGEST_HASH_BYTES + 4;

export const EMPTY_DIGEST: Buffer = Buffer.alloc(NODE_DIGEST_BYTES);

export function nodesAtLevel(level: number): number {
  return 1 << (TREE_FANOUT_BITS * level);
}

export function checkTreePosition(level: number, index: number): void {
  if (!Number.isInteger(level) || level < 0 || level > TREE_DEPTH) throw badInput(`digest level must be 0..${TREE_DEPTH}, got ${level}`);
  if (!Number.isInteger(index) || index < 0 || index >= nodesAtLevel(level)) throw badInput(`digest node ${index} does not exist at level ${level}`);
}

/** The node index at `level` on the path from the root to `leaf`. */
export function ancestorAt(leaf: number, level: number): number {
  if (!Number.isInteger(leaf) || leaf < 0 || leaf >= LEAF_COUNT) throw badInput(`leaf must be 0..${LEAF_COUNT - 1}, got ${leaf}`);
  return leaf >>> (TREE_FANOUT_BITS * (TREE_DEPTH - level));
}

export function childrenOf(level: number, index: number): number[] {
  checkTreePosition(level, index);
  if (level === TREE_DEPTH) return [];
  const first = index << TREE_FANOUT_BITS;
  return Array.from({ length: TREE_FANOUT }, (_, i) => first + i);
}

/**
 * Folds one change into a digest: `removed` is the hash of the version replaced (undefined for a
 * new key), `added` the new one (undefined when a key leaves). Returns a new buffer.
 */
export function updateDigest(digest: Uint8Array, removed: Uint8Array | undefined, added: Uint8Array | undefined): Buffer {
  if (digest.length !== NODE_DIGEST_BYTES) throw badInput(`digest must be ${NODE_DIGEST_BYTES} bytes, got ${digest.length}`);
  const out = Buffer.from(digest);
  let count = out.readUInt32BE(DIGEST_HASH_BYTES);
  for (const [h, delta] of [[removed, -1], [added, 1]] as const) {
    if (h === undefined) continue;
    if (h.length !== DIGEST_HASH_BYTES) throw badInput(`entry hash must be ${DIGEST_HASH_BYTES} bytes, got ${h.length}`);
    for (let i = 0; i < DIGEST_HASH_BYTES; i++) out[i]! ^= h[i]!;
    count += delta;
  }
  if (count < 0) throw badInput('digest count would go below zero: a removal without a matching entry');
  out.writeUInt32BE(count >>> 0, DIGEST_HASH_BYTES);
  return out;
}

/**
 * Adds one node's digest into another in place (`into` at byte `at`): an inner node is the XOR
 * and sum of its children, so folding every leaf into its ancestors rebuilds them.
 */
export function addDigestInto(into: Buffer, at: number, digest: Uint8Array): void {
  if (digest.length !== NODE_DIGEST_BYTES || at < 0 || at + NODE_DIGEST_BYTES > into.length) throw badInput(`cannot add a ${digest.length}-byte digest at byte ${at} of ${into.length}`);
  for (let i = 0; i < DIGEST_HASH_BYTES; i++) into[at + i]! ^= digest[i]!;
  const count = into.readUInt32BE(at + DIGEST_HASH_BYTES) + Buffer.from(digest.buffer, digest.byteOffset, digest.length).readUInt32BE(DIGEST_HASH_BYTES);
  into.writeUInt32BE(count >>> 0, at + DIGEST_HASH_BYTES);
}

/** Nodes above the leaves (levels 0 to TREE_DEPTH - 1), and where a node sits among them. */
export const INNER_NODES = (nodesAtLevel(TREE_DEPTH) - 1) / (TREE_FANOUT - 1);
export function innerIndex(level: number, index: number): number {
  checkTreePosition(level, index);
  if (level === TREE_DEPTH) throw badInput('a leaf is not an inner node');
  return (nodesAtLevel(level) - 1) / (TREE_FANOUT - 1) + index;
}

export function digestCount(digest: Uint8Array): number {
  return Buffer.from(digest.buffer, digest.byteOffset, digest.length).readUInt32BE(DIGEST_HASH_BYTES);
}

/** Digest of a set of entry hashes computed from scratch: what the incremental updates must equal. */
export function digestOf(hashes: Iterable<Uint8Array>): Buffer {
  let d: Buffer = EMPTY_DIGEST;
  for (const h of hashes) d = updateDigest(d, undefined, h);
  return d;
}

/** Indices whose digests differ between two equally long lists. */
export function differing(ours: readonly Uint8Array[], theirs: readonly Uint8Array[]): number[] {
  if (ours.length !== theirs.length) throw badInput(`digest lists differ in length (${ours.length} and ${theirs.length})`);
  const out: number[] = [];
  for (let i = 0; i < ours.length; i++) if (!Buffer.from(ours[i]!).equals(theirs[i]!)) out.push(i);
  return out;
}

export interface KeyHash {
  readonly key: Buffer;
  readonly hash: Buffer;
}

/**
 * Compares two sorted key lists of the same leaf and key range: `pull` are keys the other side
 * has that we lack or hold another version of, `push` the reverse. Keys held at the same version
 * on both sides are never named, so a replica transfers only what differs.
 */
export function diffKeyLists(ours: readonly KeyHash[], theirs: readonly KeyHash[]): { pull: Buffer[]; push: Buffer[] } {
  const pull: Buffer[] = [];
  const push: Buffer[] = [];
  let i = 0;
  let j = 0;
  while (i < ours.length || j < theirs.length) {
    const a = ours[i];
    const b = theirs[j];
    const c = a === undefined ? 1 : b === undefined ? -1 : Buffer.compare(a.key, b.key);
    if (c < 0) {
      push.push(a!.key);
      i++;
    } else if (c > 0) {
      pull.push(b!.key);
      j++;
    } else {
      if (!a!.hash.equals(b!.hash)) {
        pull.push(b!.key);
        push.push(a!.key);
      }
      i++;
      j++;
    }
  }
  return { pull, push };
}
