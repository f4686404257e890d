/**
 * Table entries: (table, partition key, sort key) → value, versioned by a hybrid-clock timestamp
 * and merged last-writer-wins. A deletion is an entry whose value is null (a tombstone), so a
 * replica that missed the delete learns it the same way it learns a write.
 *
 * Every entry carries a MAC made by the full node that wrote it, over the entry's canonical bytes
 * with a key derived from the data key. Replicas keep and forward the MAC unchanged, so any full
 * node can check an entry however many hops it travelled, and a storage-only node (a member of
 * the cluster without the data key) cannot make or alter one. The MAC doubles as the entry's hash
 * in the partition digests.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import { badInput, tooLarge, TesseraError } from '../errors.js';
import { compareHlc, hlcSchema, MAX_HLC_NODE_CHARS, plainHlc, type Hlc } from '../content/index.js';

/** Table names are short tags ('bucket', 'object'), part of every stored key. */
export const MAX_TABLE_NAME_CHARS = 32;
export const TABLE_NAME_RE = /^[a-z][a-z0-9_-]{0,31}$/;
/** Partition keys are ids (a bucket id), never user text of any length. */
export const MAX_PARTITION_KEY_BYTES = 256;
/** Sort keys hold S3 object keys: 1,024 bytes of UTF-8. */
export const MAX_SORT_KEY_BYTES = 1024;
/** One entry's value; object records with user metadata stay well under it. */
export const MAX_VALUE_BYTES = 16 << 10;
export const ENTRY_MAC_BYTES = 32;

const CANONICAL_VERSION = 1;
const MAC_LABEL = Buffer.from('tessera/v1/table-entry\0', 'utf8');

export interface EntryKey {
  readonly table: string;
  readonly pk: string;
  readonly sk: string;
}

export interface TableEntry extends EntryKey {
  readonly ts: Hlc;
  /** Null marks a deletion. */
  readonly value: Buffer | null;
  readonly mac: Buffer;
}

export function checkEntryKey(k: EntryKey): void {
  if (!TABLE_NAME_RE.test(k.table)) throw badInput(`table name '${k.table}' must match ${TABLE_NAME_RE}`);
  const pk = Buffer.byteLength(k.pk, 'utf8');
  if (pk > MAX_PARTITION_KEY_BYTES) throw tooLarge(`partition key of ${pk} bytes exceeds the ${MAX_PARTITION_KEY_BYTES}-byte limit`);
  const sk = Buffer.byteLength(k.sk, 'utf8');
  if (sk > MAX_SORT_KEY_BYTES) throw tooLarge(`sort key of ${sk} bytes exceeds the ${MAX_SORT_KEY_BYTES}-byte limit`);
}

/** The bytes a MAC covers: every field, length-prefixed, so no two entries share an encoding. */
export function canonicalEntryBytes(e: Omit<TableEntry, 'mac'>): Buffer {
  const table = Buffer.from(e.table, 'utf8');
  const pk = Buffer.from(e.pk, 'utf8');
  const sk = Buffer.from(e.sk, 'utf8');
  const node = Buffer.from(e.ts.node, 'utf8');
  const value = e.value ?? Buffer.alloc(0);
  const out = Buffer.allocUnsafe(1 + 1 + table.length + 2 + pk.length + 2 + sk.length + 1 + 6 + 4 + node.length + 1 + 4 + value.length);
  let o = out.writeUInt8(CANONICAL_VERSION, 0);
  o = out.writeUInt8(table.length, o);
  o += table.copy(out, o);
  o = out.writeUInt16BE(pk.length, o);
  o += pk.copy(out, o);
  o = out.writeUInt16BE(sk.length, o);
  o += sk.copy(out, o);
  o = out.writeUInt8(node.length, o);
  o = out.writeUIntBE(e.ts.wall, o, 6);
  o = out.writeUInt32BE(e.ts.logical, o);
  o += node.copy(out, o);
  o = out.writeUInt8(e.value === null ? 1 : 0, o);
  o = out.writeUInt32BE(value.length, o);
  value.copy(out, o);
  return out;
}

export function entryMac(macKey: Uint8Array, e: Omit<TableEntry, 'mac'>): Buffer {
  return createHmac('sha256', macKey).update(MAC_LABEL).update(canonicalEntryBytes(e)).digest();
}

/** A new entry written by this node. */
export function makeEntry(macKey: Uint8Array, key: EntryKey, ts: Hlc, value: Buffer | null): TableEntry {
  checkEntryKey(key);
  if (value !== null && value.length > MAX_VALUE_BYTES) throw tooLarge(`table value of ${value.length} bytes exceeds the ${MAX_VALUE_BYTES}-byte limit`);
  const body = { table: key.table, pk: key.pk, sk: key.sk, ts, value };
  return { ...body, mac: entryMac(macKey, body) };
}

/** Refuses an entry whose MAC does not match: it was not written by a holder of the data key, or was altered. */
export function verifyEntry(macKey: Uint8Array, e: TableEntry): void {
  const want = entryMac(macKey, e);
  if (e.mac.length !== want.length || !timingSafeEqual(e.mac, want)) {
    throw new TesseraError('AUTH', `table entry ${e.table}/${e.sk.slice(0, 64)} has a bad MAC: it was not written by a node holding this cluster's data key`);
  }
}

/**
 * The order of versions of one key: later timestamp wins; equal timestamps (one writer, one
 * tick) fall back to the MAC bytes so every replica picks the same winner whatever it saw first.
 */
export function compareVersions(a: Pick<TableEntry, 'ts' | 'mac'>, b: Pick<TableEntry, 'ts' | 'mac'>): -1 | 0 | 1 {
  const c = compareHlc(a.ts, b.ts);
  if (c !== 0) return c;
  const m = Buffer.compare(a.mac, b.mac);
  return m < 0 ? -1 : m > 0 ? 1 : 0;
}

/** The version that survives a merge of two versions of the same key. */
export function mergeVersions<T extends Pick<TableEntry, 'ts' | 'mac'>>(a: T, b: T): T {
  return compareVersions(a, b) >= 0 ? a : b;
}

const bytes = (max: number) => z.custom<Uint8Array>((b) => b instanceof Uint8Array && b.length <= max, `a byte string of at most ${max} bytes`);

/** An entry as it travels between nodes. */
export const wireEntrySchema = z
  .object({
    t: z.string().regex(TABLE_NAME_RE),
    p: z.string().max(MAX_PARTITION_KEY_BYTES),
    s: z.string().max(MAX_SORT_KEY_BYTES),
    ts: hlcSchema,
    v: bytes(MAX_VALUE_BYTES).nullable(),
    m: z.custom<Uint8Array>((b) => b instanceof Uint8Array && b.length === ENTRY_MAC_BYTES, `a byte string of exactly ${ENTRY_MAC_BYTES} bytes`),
  })
  .strict();
export type WireEntry = z.infer<typeof wireEntrySchema>;

const WIRE_ENTRY_FIELDS = ['t', 'p', 's', 'ts', 'v', 'm'] as const;

/**
 * An entry as wireEntrySchema accepts it, checked by hand (its fields in a fresh object), else
 * undefined: every entry a holder is sent goes through this, and the schema's walk was a tenth
 * of a holder's work on small writes. Callers fall back to the schema for the message.
 */
export function plainWireEntry(w: unknown): WireEntry | undefined {
  if (typeof w !== 'object' || w === null || Array.isArray(w)) return undefined;
  const o = w as Record<string, unknown>;
  const { t, p, s, v, m } = o;
  if (typeof t !== 'string' || !TABLE_NAME_RE.test(t)) return undefined;
  if (typeof p !== 'string' || p.length > MAX_PARTITION_KEY_BYTES) return undefined;
  if (typeof s !== 'string' || s.length > MAX_SORT_KEY_BYTES) return undefined;
  if (v !== null && !(v instanceof Uint8Array && v.length <= MAX_VALUE_BYTES)) return undefined;
  if (!(m instanceof Uint8Array) || m.length !== ENTRY_MAC_BYTES) return undefined;
  const ts = plainHlc(o['ts']);
  if (ts === undefined) return undefined;
  // Strict like the schema: these six fields, all the object's own, and nothing else.
  if (Object.keys(o).length !== WIRE_ENTRY_FIELDS.length || !WIRE_ENTRY_FIELDS.every((f) => Object.hasOwn(o, f))) return undefined;
  return { t, p, s, ts, v, m };
}

export function toWire(e: TableEntry): WireEntry {
  return { t: e.table, p: e.pk, s: e.sk, ts: e.ts, v: e.value, m: e.mac };
}

export function fromWire(w: WireEntry): TableEntry {
  const e: TableEntry = {
    table: w.t,
    pk: w.p,
    sk: w.s,
    ts: { wall: w.ts.wall, logical: w.ts.logical, node: w.ts.node },
    value: w.v === null ? null : Buffer.from(w.v.buffer, w.v.byteOffset, w.v.length),
    mac: Buffer.from(w.m.buffer, w.m.byteOffset, w.m.length),
  };
  checkEntryKey(e);
  if (e.ts.node.length === 0 || e.ts.node.length > MAX_HLC_NODE_CHARS) throw badInput('table entry timestamp has no node id');
  return e;
}

/** What is stored under an entry's key: timestamp, tombstone flag, MAC, value. */
export interface StoredVersion {
  readonly ts: Hlc;
  readonly value: Buffer | null;
  readonly mac: Buffer;
}

export function encodeStored(e: StoredVersion): Buffer {
  const node = Buffer.from(e.ts.node, 'utf8');
  const value = e.value ?? Buffer.alloc(0);
  const out = Buffer.allocUnsafe(6 + 4 + 1 + node.length + 1 + ENTRY_MAC_BYTES + value.length);
  let o = out.writeUIntBE(e.ts.wall, 0, 6);
  o = out.writeUInt32BE(e.ts.logical, o);
  o = out.writeUInt8(node.length, o);
  o += node.copy(out, o);
  o = out.writeUInt8(e.value === null ? 1 : 0, o);
  o += e.mac.copy(out, o);
  value.copy(out, o);
  return out;
}

export function decodeStored(b: Buffer): StoredVersion {
  if (b.length < 6 + 4 + 1 + 1 + ENTRY_MAC_BYTES) throw new TesseraError('CORRUPT', `stored table entry of ${b.length} bytes is too short`);
  const wall = b.readUIntBE(0, 6);
  const logical = b.readUInt32BE(6);
  const nl = b.readUInt8(10);
  const node = b.toString('utf8', 11, 11 + nl);
  let o = 11 + nl;
  const tomb = b.readUInt8(o++) === 1;
  const mac = Buffer.from(b.subarray(o, o + ENTRY_MAC_BYTES));
  o += ENTRY_MAC_BYTES;
  return { ts: { wall, logical, node }, value: tomb ? null : Buffer.from(b.subarray(o)), mac };
}

/** Bytes an entry takes in a message: its canonical bytes plus the MAC and CBOR framing. */
export function entryWireBytes(e: TableEntry): number {
  return Buffer.byteLength(e.table) + Buffer.byteLength(e.pk) + Buffer.byteLength(e.sk) + Buffer.byteLength(e.ts.node) + (e.value?.length ?? 0) + ENTRY_MAC_BYTES + 64;
}

/** Splits entries into runs of at most `maxCount` entries and about `maxBytes` (never empty runs). */
export function batchEntries<T extends TableEntry>(entries: readonly T[], maxCount: number, maxBytes: number): T[][] {
  const out: T[][] = [];
  let run: T[] = [];
  let bytes = 0;
  for (const e of entries) {
    const b = entryWireBytes(e);
    if (run.length > 0 && (run.length >= maxCount || bytes + b > maxBytes)) {
      out.push(run);
      run = [];
      bytes = 0;
    }
    run.push(e);
    bytes += b;
  }
  if (run.length > 0) out.push(run);
  return out;
}
