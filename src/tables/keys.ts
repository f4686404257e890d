/**
 * How table entries are laid out: which partition a (table, partition key) falls in, the binary
 * key an entry is stored under (ordered so one partition key's entries sit together in sort-key
 * byte order), which digest leaf a key belongs to, and the continuation tokens handed to callers.
 * Pure functions, no I/O.
 */
import { createHash } from 'node:crypto';
import { badInput, tooLarge } from '../errors.js';
import { checkEntryKey, MAX_SORT_KEY_BYTES, type EntryKey } from './entry.js';

/** Partitions per cluster: the unit of placement, anti-entropy and handoff. */
export const PARTITION_BITS = 8;
export const PARTITION_COUNT = 1 << PARTITION_BITS;
/** Digest leaves per partition (12 bits); a leaf is the unit two replicas exchange key lists for. */
export const LEAF_BITS = 12;
export const LEAF_COUNT = 1 << LEAF_BITS;

/**
 * The sort key of a partition key's seal: an entry there with a value closes the partition key to
 * client writes (a deleted bucket's objects). No table stores user data under the empty sort key
 * (object keys are 1 to 1,024 bytes), and listings never return it.
 */
export const SEAL_SORT_KEY = '';

const PARTITION_LABEL = Buffer.from('tessera/v1/table-partition\0', 'utf8');
const PLACEMENT_LABEL = 'tessera/v1/table-partition:';
const TOKEN_VERSION = 1;
/** Base64url of a version byte and the longest sort key. */
export const MAX_TOKEN_CHARS = Math.ceil(((1 + MAX_SORT_KEY_BYTES) * 4) / 3);

/**
 * Partition keys whose partition is remembered: a write or read of a busy bucket hashed its id
 * several times per entry (on the writer, on each holder, for every stored key), a tenth of a
 * holder's key handling in `npm run bench -- meta`. Past the bound the memory starts afresh.
 */
export const MAX_CACHED_PARTITIONS = 4096;
const partitions = new Map<string, number>();

export function partitionOf(table: string, pk: string): number {
  const id = `${table}\0${pk}`;
  let p = partitions.get(id);
  if (p === undefined) {
    const h = createHash('sha256').update(PARTITION_LABEL).update(table, 'utf8').update('\0').update(pk, 'utf8').digest();
    p = h[0]! >>> (8 - PARTITION_BITS);
    if (partitions.size >= MAX_CACHED_PARTITIONS) partitions.clear();
    partitions.set(id, p);
  }
  return p;
}

/** The id rendezvous placement ranks nodes for; fixed per partition so holders change only with membership. */
export function partitionPlacementId(partition: number): Buffer {
  return Buffer.from(PLACEMENT_LABEL + partition, 'utf8');
}

/** partition ‖ table length ‖ table ‖ pk length ‖ pk: the fixed prefix of one partition key's entries. */
export function groupPrefix(table: string, pk: string): Buffer {
  const t = Buffer.from(table, 'utf8');
  const p = Buffer.from(pk, 'utf8');
  const out = Buffer.allocUnsafe(1 + 1 + t.length + 2 + p.length);
  let o = out.writeUInt8(partitionOf(table, pk), 0);
  o = out.writeUInt8(t.length, o);
  o += t.copy(out, o);
  o = out.writeUInt16BE(p.length, o);
  p.copy(out, o);
  return out;
}

/** The stored key: group prefix then the sort key's UTF-8 bytes, so byte order is sort-key order. */
export function storageKey(k: EntryKey): Buffer {
  checkEntryKey(k);
  return Buffer.concat([groupPrefix(k.table, k.pk), Buffer.from(k.sk, 'utf8')]);
}

export function decodeStorageKey(key: Uint8Array): EntryKey & { partition: number } {
  const b = Buffer.from(key.buffer, key.byteOffset, key.length);
  if (b.length < 4) throw badInput(`stored table key of ${b.length} bytes is too short`);
  const partition = b.readUInt8(0);
  const tl = b.readUInt8(1);
  if (2 + tl + 2 > b.length) throw badInput('stored table key is truncated in its table name');
  const table = b.toString('utf8', 2, 2 + tl);
  const pl = b.readUInt16BE(2 + tl);
  const skStart = 4 + tl + pl;
  if (skStart > b.length) throw badInput('stored table key is truncated in its partition key');
  const pk = b.toString('utf8', 4 + tl, skStart);
  const sk = b.toString('utf8', skStart);
  const k = { table, pk, sk };
  checkEntryKey(k);
  if (partitionOf(table, pk) !== partition) throw badInput(`stored table key names partition ${partition} but its partition key belongs in ${partitionOf(table, pk)}`);
  return { partition, ...k };
}

/** The digest leaf a stored key belongs to: a hash of the key, so every replica puts it in the same leaf. */
export function leafOf(storage: Uint8Array): number {
  const h = createHash('sha256').update(storage).digest();
  return h.readUInt16BE(0) >>> (16 - LEAF_BITS);
}

export function checkPartition(p: number): void {
  if (!Number.isInteger(p) || p < 0 || p >= PARTITION_COUNT) throw badInput(`partition must be an integer 0..${PARTITION_COUNT - 1}, got ${p}`);
}

/** Continuation token: opaque to callers, the last sort key they were given. */
export function encodeToken(lastSortKey: string): string {
  const sk = Buffer.from(lastSortKey, 'utf8');
  if (sk.length > MAX_SORT_KEY_BYTES) throw tooLarge(`sort key of ${sk.length} bytes exceeds the ${MAX_SORT_KEY_BYTES}-byte limit`);
  return Buffer.concat([Buffer.from([TOKEN_VERSION]), sk]).toString('base64url');
}

export function decodeToken(token: string): string {
  if (token.length > MAX_TOKEN_CHARS) throw tooLarge(`continuation token of ${token.length} characters exceeds ${MAX_TOKEN_CHARS}; pass the token a listing returned`);
  if (!/^[A-Za-z0-9_-]*$/.test(token)) throw badInput('continuation token is not base64url; pass the token a listing returned');
  const b = Buffer.from(token, 'base64url');
  if (b.length < 1 || b[0] !== TOKEN_VERSION) throw badInput('continuation token is not one this version made; start the listing again');
  const sk = b.subarray(1);
  const text = sk.toString('utf8');
  if (!Buffer.from(text, 'utf8').equals(sk)) throw badInput('continuation token does not hold UTF-8; pass the token a listing returned');
  return text;
}

/** The least string greater than every string starting with `prefix` in UTF-8 byte order, or undefined when none exists. */
export function prefixEnd(prefix: Buffer): Buffer | undefined {
  const b = Buffer.from(prefix);
  for (let i = b.length - 1; i >= 0; i--) {
    if (b[i]! < 0xff) {
      b[i]!++;
      return b.subarray(0, i + 1);
    }
  }
  return undefined;
}
