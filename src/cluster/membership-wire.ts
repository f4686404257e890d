/**
 * Message shapes of the membership protocol, with the bounds every peer's input is held to. Bodies
 * arrive already decoded (CBOR over TLS, or cloned objects in the simulator) but are untrusted:
 * every field is checked here before membership reads it.
 */
import { z } from 'zod';
import { TesseraError } from '../errors.js';

/** Longest node id accepted from a peer (ids derived from public keys are far shorter). */
export const MAX_NODE_ID_CHARS = 128;
/** Longest `host:port` (or simulator) address accepted from a peer. */
export const MAX_ADDR_CHARS = 256;
/** Longest zone (failure-domain) name accepted from a peer or an operator. */
export const MAX_ZONE_CHARS = 64;
/** Most piggybacked updates one ping, ack or gossip message may carry. */
export const MAX_UPDATES_PER_MESSAGE = 64;
/**
 * Most member records in one full-state exchange. At ~150 bytes a record this stays well under the
 * CBOR control limit (MAX_CONTROL_BYTES, 256 KiB).
 */
export const MAX_SYNC_RECORDS = 1024;
/**
 * Highest incarnation any node uses or accepts. Far below 2^53, so the arithmetic on it is exact
 * and a refutation always has room above; at one refutation per probe interval a node would
 * need centuries to reach it.
 */
export const MAX_INCARNATION = 2 ** 32;
/** Members remembered by one node, dead and left included; the oldest dead are evicted beyond it. */
export const MAX_MEMBERS = 4096;

export const MEMBER_STATES = ['alive', 'suspect', 'dead', 'left'] as const;
export type MemberState = (typeof MEMBER_STATES)[number];

// Printable ASCII without spaces: ids and addresses end up in logs and on the dashboard.
const PRINTABLE = /^[\x21-\x7e]+$/;
const counter = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);

export const nodeIdSchema = z.string().min(1).max(MAX_NODE_ID_CHARS).regex(PRINTABLE, 'node id must be printable ASCII');
export const addrSchema = z.string().min(1).max(MAX_ADDR_CHARS).regex(PRINTABLE, 'address must be printable ASCII');
export const zoneSchema = z.string().min(1).max(MAX_ZONE_CHARS).regex(PRINTABLE, 'zone must be printable ASCII');

/** What one node believes about one member; the unit of gossip. */
export const recordSchema = z.object({
  nodeId: nodeIdSchema,
  addr: addrSchema,
  state: z.enum(MEMBER_STATES),
  incarnation: counter.max(MAX_INCARNATION),
  capacity: counter,
  used: counter,
  /** Orders stats updates within one incarnation; set by the member itself from its clock. */
  statsVersion: counter,
  /** The member's failure domain; absent from peers that predate zones (the unnamed zone). */
  zone: zoneSchema.optional(),
});
export type WireRecord = z.infer<typeof recordSchema>;

/** A bounded list: the length is checked before any element is parsed. */
function boundedList<T extends z.ZodTypeAny>(item: T, max: number, what: string) {
  return z
    .custom<unknown[]>((v) => Array.isArray(v) && v.length <= max, { message: `${what} must be a list of at most ${max} entries` })
    .pipe(z.array(item));
}

const updates = boundedList(recordSchema, MAX_UPDATES_PER_MESSAGE, 'updates');

/** member.ping and member.gossip requests, and their acks. */
export const pingSchema = z.object({ from: recordSchema, updates });
export type PingBody = z.infer<typeof pingSchema>;

export const pingReqSchema = z.object({
  from: recordSchema,
  target: z.object({ nodeId: nodeIdSchema, addr: addrSchema }),
  updates,
});
export type PingReqBody = z.infer<typeof pingReqSchema>;

export const pingReqReplySchema = z.object({ from: recordSchema, ok: z.boolean(), updates });
export type PingReqReply = z.infer<typeof pingReqReplySchema>;

/** member.sync (join and periodic push-pull), both directions. */
export const syncSchema = z.object({ from: recordSchema, members: boundedList(recordSchema, MAX_SYNC_RECORDS, 'members') });
export type SyncBody = z.infer<typeof syncSchema>;

/** The part of the peer protocol membership owns. */
export const MEMBER_RPC_PREFIX = 'member.';
export const METHODS = {
  ping: 'member.ping',
  pingReq: 'member.ping-req',
  gossip: 'member.gossip',
  sync: 'member.sync',
} as const;

/** Parse a peer's message or throw BAD_INPUT naming the first offending field. */
export function parseBody<T extends z.ZodTypeAny>(schema: T, body: unknown, what: string): z.infer<T> {
  const r = schema.safeParse(body);
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  const where = issue && issue.path.length > 0 ? issue.path.join('.') : '(body)';
  throw new TesseraError('BAD_INPUT', `malformed ${what}: ${where}: ${issue?.message ?? 'invalid'}`);
}

// ---- hand-written readers ----------------------------------------------------------------------
// zod builds a parse context and several closures per field; at a thousand members a full-state
// exchange carries a thousand records, and validation dominated the profile. These readers check
// exactly what the schemas above check (a property test holds them to it) and build fresh records,
// so nothing a peer sent (extra keys, prototypes, shared objects) survives into our state.

class Malformed extends Error {
  constructor(
    readonly where: string,
    readonly reason: string,
  ) {
    super(reason);
  }
}

const STATE_SET: ReadonlySet<string> = new Set(MEMBER_STATES);

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function printable(v: unknown, max: number, where: string, what: string): string {
  if (typeof v !== 'string') throw new Malformed(where, 'Expected string');
  if (v.length < 1 || v.length > max) throw new Malformed(where, `${what} must be 1 to ${max} characters`);
  for (let i = 0; i < v.length; i++) {
    const c = v.charCodeAt(i);
    if (c < 0x21 || c > 0x7e) throw new Malformed(where, `${what} must be printable ASCII`);
  }
  return v;
}

function count(v: unknown, where: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw new Malformed(where, 'Expected a non-negative safe integer');
  return v;
}

function incarnationOf(v: unknown, where: string): number {
  const n = count(v, where);
  if (n > MAX_INCARNATION) throw new Malformed(where, `incarnation must be at most ${MAX_INCARNATION}`);
  return n;
}

function readRecordAt(v: unknown, where: string): WireRecord {
  if (!isObject(v)) throw new Malformed(where, 'Expected object');
  const state = v.state;
  if (typeof state !== 'string' || !STATE_SET.has(state)) throw new Malformed(`${where}.state`, `Expected one of ${MEMBER_STATES.join(', ')}`);
  return {
    nodeId: printable(v.nodeId, MAX_NODE_ID_CHARS, `${where}.nodeId`, 'node id'),
    addr: printable(v.addr, MAX_ADDR_CHARS, `${where}.addr`, 'address'),
    state: state as MemberState,
    incarnation: incarnationOf(v.incarnation, `${where}.incarnation`),
    capacity: count(v.capacity, `${where}.capacity`),
    used: count(v.used, `${where}.used`),
    statsVersion: count(v.statsVersion, `${where}.statsVersion`),
    ...(v.zone === undefined ? {} : { zone: printable(v.zone, MAX_ZONE_CHARS, `${where}.zone`, 'zone') }),
  };
}

function readList(v: unknown, max: number, where: string): WireRecord[] {
  // The length is checked before any element is looked at, so a huge list costs nothing.
  if (!Array.isArray(v) || v.length > max) throw new Malformed(where, `${where} must be a list of at most ${max} entries`);
  const out = new Array<WireRecord>(v.length);
  for (let i = 0; i < v.length; i++) out[i] = readRecordAt(v[i], `${where}.${i}`);
  return out;
}

function malformed<T>(what: string, f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof Malformed) throw new TesseraError('BAD_INPUT', `malformed ${what}: ${e.where}: ${e.reason}`);
    throw e;
  }
}

function body(v: unknown): Record<string, unknown> {
  if (!isObject(v)) throw new Malformed('(body)', 'Expected object');
  return v;
}

export function readPing(v: unknown, what: string): PingBody {
  return malformed(what, () => {
    const b = body(v);
    return { from: readRecordAt(b.from, 'from'), updates: readList(b.updates, MAX_UPDATES_PER_MESSAGE, 'updates') };
  });
}

export function readPingReq(v: unknown, what: string): PingReqBody {
  return malformed(what, () => {
    const b = body(v);
    const from = readRecordAt(b.from, 'from');
    const t = b.target;
    if (!isObject(t)) throw new Malformed('target', 'Expected object');
    const target = { nodeId: printable(t.nodeId, MAX_NODE_ID_CHARS, 'target.nodeId', 'node id'), addr: printable(t.addr, MAX_ADDR_CHARS, 'target.addr', 'address') };
    return { from, target, updates: readList(b.updates, MAX_UPDATES_PER_MESSAGE, 'updates') };
  });
}

export function readPingReqReply(v: unknown, what: string): PingReqReply {
  return malformed(what, () => {
    const b = body(v);
    const from = readRecordAt(b.from, 'from');
    if (typeof b.ok !== 'boolean') throw new Malformed('ok', 'Expected boolean');
    return { from, ok: b.ok, updates: readList(b.updates, MAX_UPDATES_PER_MESSAGE, 'updates') };
  });
}

export function readSync(v: unknown, what: string): SyncBody {
  return malformed(what, () => {
    const b = body(v);
    return { from: readRecordAt(b.from, 'from'), members: readList(b.members, MAX_SYNC_RECORDS, 'members') };
  });
}
