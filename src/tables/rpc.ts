/**
 * The table protocol between full nodes: method names and the schemas every request and reply is
 * checked against, with every list bounded.
 */
import { z } from 'zod';
import { TesseraError } from '../errors.js';
import { MAX_HLC_NODE_CHARS } from '../content/index.js';
import { ENTRY_MAC_BYTES, MAX_SORT_KEY_BYTES, MAX_PARTITION_KEY_BYTES, MAX_TABLE_NAME_CHARS, MAX_VALUE_BYTES, plainWireEntry, TABLE_NAME_RE, wireEntrySchema, type WireEntry } from './entry.js';
import { LEAF_COUNT, PARTITION_COUNT } from './keys.js';
import { NODE_DIGEST_BYTES, TREE_DEPTH, TREE_FANOUT } from './digest-tree.js';
import { MAX_LEAF_KEYS, MAX_SCAN_LIMIT } from './entry-store.js';
import { PROOF_BYTES, PROOF_NONCE_BYTES } from './full-nodes.js';

/** Entries one merge request may carry. */
export const MAX_MERGE_ENTRIES = 128;
/** Stored keys one fetch may ask for. */
export const MAX_FETCH_KEYS = 128;
/** Digest nodes one tree request may ask for: the children of 16 differing nodes. */
export const MAX_TREE_NODES = TREE_FANOUT * TREE_FANOUT;
/** Longest stored key: partition, table, partition key and sort key with their length fields. */
export const MAX_STORED_KEY_BYTES = 1 + 1 + 32 + 2 + MAX_PARTITION_KEY_BYTES + MAX_SORT_KEY_BYTES;

export const TABLE_METHODS = {
  hello: 'table.hello',
  merge: 'table.merge',
  /** A client write: merged like table.merge, except into a sealed partition key, which it refuses. */
  write: 'table.write',
  /** table.write that also answers, for the entries asked, the version the holder held before it. */
  writeHeld: 'table.write-held',
  /** Which optional methods a holder serves (a node of an older version answers BAD_INPUT). */
  features: 'table.features',
  get: 'table.get',
  /** Which versions a holder has of some keys (their MACs), without the values: the other voices of quorum reads. */
  versions: 'table.versions',
  scan: 'table.scan',
  roots: 'table.roots',
  tree: 'table.tree',
  leaf: 'table.leaf',
  fetch: 'table.fetch',
} as const;

const bytes = (max: number) => z.custom<Uint8Array>((b) => b instanceof Uint8Array && b.length <= max, `a byte string of at most ${max} bytes`);
const exactBytes = (n: number) => z.custom<Uint8Array>((b) => b instanceof Uint8Array && b.length === n, `a byte string of exactly ${n} bytes`);
const partition = z.number().int().min(0).max(PARTITION_COUNT - 1);
const auth = exactBytes(PROOF_BYTES);
const storedKey = bytes(MAX_STORED_KEY_BYTES);

export const helloRequest = z.object({ nonce: exactBytes(PROOF_NONCE_BYTES) }).strict();
export const helloReply = z.object({ proof: exactBytes(PROOF_BYTES) }).strict();

export const mergeRequest = z.object({ auth, entries: z.array(wireEntrySchema).max(MAX_MERGE_ENTRIES) }).strict();
export const mergeReply = z.object({ kept: z.number().int().min(0).max(MAX_MERGE_ENTRIES) }).strict();
/** Which entries of a write request were refused because their partition key is sealed (indices into the request). */
export const writeReply = z.object({ kept: z.number().int().min(0).max(MAX_MERGE_ENTRIES), sealed: z.array(z.number().int().min(0).max(MAX_MERGE_ENTRIES - 1)).max(MAX_MERGE_ENTRIES) }).strict();

/** The feature a holder names in its table.features answer when it serves table.write-held. */
export const FEATURE_WRITE_HELD = 'write-held';
/** Feature names one answer may carry. */
export const MAX_FEATURES = 16;
export const featuresRequest = z.object({ auth }).strict();
export const featuresReply = z.object({ f: z.array(z.string().max(64)).max(MAX_FEATURES) }).strict();
/** The most one entry may take on the wire: every field at its limit, with the framing entryWireBytes counts. */
export const MAX_ENTRY_WIRE_BYTES = MAX_TABLE_NAME_CHARS + MAX_PARTITION_KEY_BYTES + MAX_SORT_KEY_BYTES + MAX_HLC_NODE_CHARS + MAX_VALUE_BYTES + ENTRY_MAC_BYTES + 64;
/** Bytes of held versions one write-held reply may carry: the control-section limit less room for the rest. */
export const MAX_HELD_REPLY_BYTES = 224 << 10;
/** Entries one write-held request may ask the held version of: each at its largest still fits the reply. */
export const MAX_HELD_PER_WRITE = Math.floor(MAX_HELD_REPLY_BYTES / MAX_ENTRY_WIRE_BYTES);
export const writeHeldRequest = z
  .object({ auth, entries: z.array(wireEntrySchema).max(MAX_MERGE_ENTRIES), want: z.array(z.number().int().min(0).max(MAX_MERGE_ENTRIES - 1)).min(1).max(MAX_HELD_PER_WRITE) })
  .strict();
export const writeHeldReply = z
  .object({
    kept: z.number().int().min(0).max(MAX_MERGE_ENTRIES),
    sealed: z.array(z.number().int().min(0).max(MAX_MERGE_ENTRIES - 1)).max(MAX_MERGE_ENTRIES),
    held: z.array(wireEntrySchema.nullable()).max(MAX_HELD_PER_WRITE),
  })
  .strict();

const entryKey = { t: z.string().regex(TABLE_NAME_RE), p: z.string().max(MAX_PARTITION_KEY_BYTES) };
export const getRequest = z.object({ auth, ...entryKey, s: z.string().max(MAX_SORT_KEY_BYTES) }).strict();
export const getReply = z.object({ e: wireEntrySchema.nullable() }).strict();
/** Keys one versions request asks about: the reads of one event-loop turn to one holder travel together. */
export const MAX_VERSION_KEYS = 128;
export const versionsRequest = z.object({ auth, keys: z.array(z.object({ ...entryKey, s: z.string().max(MAX_SORT_KEY_BYTES) }).strict()).min(1).max(MAX_VERSION_KEYS) }).strict();
export const versionsReply = z.object({ m: z.array(exactBytes(ENTRY_MAC_BYTES).nullable()).max(MAX_VERSION_KEYS) }).strict();

export const scanRequest = z
  .object({
    auth,
    ...entryKey,
    prefix: z.string().max(MAX_SORT_KEY_BYTES).optional(),
    after: z.string().max(MAX_SORT_KEY_BYTES).optional(),
    limit: z.number().int().min(1).max(MAX_SCAN_LIMIT),
  })
  .strict();
export const scanReply = z.object({ entries: z.array(wireEntrySchema).max(MAX_SCAN_LIMIT), more: z.boolean() }).strict();

export const rootsRequest = z.object({ auth, parts: z.array(partition).max(PARTITION_COUNT) }).strict();
export const rootsReply = z.object({ roots: z.array(exactBytes(NODE_DIGEST_BYTES)).max(PARTITION_COUNT) }).strict();

export const treeRequest = z
  .object({ auth, part: partition, level: z.number().int().min(0).max(TREE_DEPTH), idx: z.array(z.number().int().min(0).max(LEAF_COUNT - 1)).max(MAX_TREE_NODES) })
  .strict();
export const treeReply = z.object({ nodes: z.array(exactBytes(NODE_DIGEST_BYTES)).max(MAX_TREE_NODES) }).strict();

export const leafRequest = z
  .object({ auth, part: partition, leaf: z.number().int().min(0).max(LEAF_COUNT - 1), after: storedKey.optional(), limit: z.number().int().min(1).max(MAX_LEAF_KEYS) })
  .strict();
export const leafReply = z
  .object({ keys: z.array(z.object({ k: storedKey, h: exactBytes(32) }).strict()).max(MAX_LEAF_KEYS), more: z.boolean() })
  .strict();

export const fetchRequest = z.object({ auth, keys: z.array(storedKey).max(MAX_FETCH_KEYS) }).strict();
export const fetchReply = z.object({ entries: z.array(wireEntrySchema).max(MAX_FETCH_KEYS), done: z.number().int().min(0).max(MAX_FETCH_KEYS) }).strict();

/**
 * A merge or write request (mergeRequest), checked by hand on the way every client write takes;
 * anything the quick check refuses goes through the schema, which names what is wrong.
 */
export function parseEntriesRequest(body: unknown, what: string): { auth: Uint8Array; entries: WireEntry[] } {
  if (typeof body === 'object' && body !== null && !Array.isArray(body)) {
    const o = body as Record<string, unknown>;
    const { auth: a, entries } = o;
    if (a instanceof Uint8Array && a.length === PROOF_BYTES && Array.isArray(entries) && entries.length <= MAX_MERGE_ENTRIES
      && Object.keys(o).length === 2 && Object.hasOwn(o, 'auth') && Object.hasOwn(o, 'entries')) {
      const out = plainWireEntries(entries, MAX_MERGE_ENTRIES);
      if (out !== undefined) return { auth: a, entries: out };
    }
  }
  return parseBody(mergeRequest, body, what);
}

/** Entries checked by hand, or undefined when any of them (or the count) needs the schema. */
function plainWireEntries(entries: unknown, max: number): WireEntry[] | undefined {
  if (!Array.isArray(entries) || entries.length > max) return undefined;
  const out: WireEntry[] = [];
  for (const w of entries as unknown[]) {
    const e = plainWireEntry(w);
    if (e === undefined) return undefined;
    out.push(e);
  }
  return out;
}

/**
 * A scan reply (scanReply), checked by hand: a listing page carries up to a thousand entries, and
 * the schema's walk over them was a tenth of the page's work. Anything the quick check refuses goes
 * through the schema, which names what is wrong.
 */
export function parseScanReply(body: unknown, what: string): { entries: WireEntry[]; more: boolean } {
  if (typeof body === 'object' && body !== null && !Array.isArray(body)) {
    const o = body as Record<string, unknown>;
    const { entries, more } = o;
    if (typeof more === 'boolean' && Object.keys(o).length === 2 && Object.hasOwn(o, 'entries') && Object.hasOwn(o, 'more')) {
      const out = plainWireEntries(entries, MAX_SCAN_LIMIT);
      if (out !== undefined) return { entries: out, more };
    }
  }
  return parseBody(scanReply, body, what);
}

const ownKeys = (o: Record<string, unknown>, names: readonly string[]) => Object.keys(o).length === names.length && names.every((k) => Object.hasOwn(o, k));

/**
 * A versions request (versionsRequest), checked by hand: one comes with nearly every point read.
 * Anything the quick check refuses goes through the schema, which names what is wrong.
 */
export function parseVersionsRequest(body: unknown, what: string): { auth: Uint8Array; keys: { t: string; p: string; s: string }[] } {
  quick: if (typeof body === 'object' && body !== null && !Array.isArray(body)) {
    const o = body as Record<string, unknown>;
    const { auth: a, keys } = o;
    if (!(a instanceof Uint8Array) || a.length !== PROOF_BYTES || !Array.isArray(keys) || keys.length < 1 || keys.length > MAX_VERSION_KEYS || !ownKeys(o, ['auth', 'keys'])) break quick;
    const out: { t: string; p: string; s: string }[] = [];
    for (const k of keys as unknown[]) {
      if (typeof k !== 'object' || k === null || Array.isArray(k)) break quick;
      const r = k as Record<string, unknown>;
      const { t, p, s } = r;
      if (typeof t !== 'string' || !TABLE_NAME_RE.test(t) || typeof p !== 'string' || p.length > MAX_PARTITION_KEY_BYTES) break quick;
      if (typeof s !== 'string' || s.length > MAX_SORT_KEY_BYTES || !ownKeys(r, ['t', 'p', 's'])) break quick;
      out.push({ t, p, s });
    }
    return { auth: a, keys: out };
  }
  return parseBody(versionsRequest, body, what);
}

/** A versions reply (versionsReply), checked by hand first like the request. */
export function parseVersionsReply(body: unknown, what: string): { m: (Uint8Array | null)[] } {
  quick: if (typeof body === 'object' && body !== null && !Array.isArray(body)) {
    const o = body as Record<string, unknown>;
    const { m } = o;
    if (!Array.isArray(m) || m.length > MAX_VERSION_KEYS || !ownKeys(o, ['m'])) break quick;
    for (const x of m as unknown[]) if (x !== null && !(x instanceof Uint8Array && x.length === ENTRY_MAC_BYTES)) break quick;
    return { m: m as (Uint8Array | null)[] };
  }
  return parseBody(versionsReply, body, what);
}

/** Validates a decoded body against its schema, naming the method on failure. */
export function parseBody<S extends z.ZodTypeAny>(schema: S, body: unknown, what: string): z.output<S> {
  const r = schema.safeParse(body);
  if (!r.success) {
    const issue = r.error.issues[0];
    const where = issue && issue.path.length > 0 ? ` at ${issue.path.join('.')}` : '';
    throw new TesseraError('PROTOCOL', `${what} message does not match its schema${where}: ${issue?.message ?? 'invalid'}`);
  }
  return r.data as z.output<S>;
}
