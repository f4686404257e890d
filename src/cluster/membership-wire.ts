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
/** Most piggybacked updates one ping, ack or gossip message may carry. */
export const MAX_UPDATES_PER_MESSAGE = 64;
/**
 * Most member records in one full-state exchange. At ~150 bytes a record this stays well under the
 * CBOR control limit (MAX_CONTROL_BYTES, 256 KiB).
 */
export const MAX_SYNC_RECORDS = 1024;
/** Members remembered by one node, dead and left included; the oldest dead are evicted beyond it. */
export const MAX_MEMBERS = 4096;

export const MEMBER_STATES = ['alive', 'suspect', 'dead', 'left'] as const;
export type MemberState = (typeof MEMBER_STATES)[number];

// Printable ASCII without spaces: ids and addresses end up in logs and on the dashboard.
const PRINTABLE = /^[\x21-\x7e]+$/;
const counter = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);

export const nodeIdSchema = z.string().min(1).max(MAX_NODE_ID_CHARS).regex(PRINTABLE, 'node id must be printable ASCII');
export const addrSchema = z.string().min(1).max(MAX_ADDR_CHARS).regex(PRINTABLE, 'address must be printable ASCII');

/** What one node believes about one member; the unit of gossip. */
export const recordSchema = z.object({
  nodeId: nodeIdSchema,
  addr: addrSchema,
  state: z.enum(MEMBER_STATES),
  incarnation: counter,
  capacity: counter,
  used: counter,
  /** Orders stats updates within one incarnation; set by the member itself from its clock. */
  statsVersion: counter,
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
