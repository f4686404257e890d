/**
 * The files layer's peer protocol: method names and the schema of every request body. Bodies
 * arrive from other nodes, so each is parsed here before any handler looks at it.
 */
import { z } from 'zod';
import { TesseraError, badInput } from '../errors.js';
import { CHUNK_ID_BYTES } from '../limits.js';
import { MAX_CREATED_AT_MS, MAX_EC_SHARDS, AUTHORITY_PROOF_BYTES } from '../content/index.js';
import { MAX_IDS_PER_REQUEST, MAX_LIST_PAGE_RECORDS } from './limits.js';
import { MAX_HEAL_COPIES, MAX_OWNERS_PER_CHUNK } from './repair-limits.js';

/** References asked about in one `file.proofs` request (its reply stays well inside a control section). */
export const MAX_PROOF_QUERY = 256;

export const FILE_METHODS = {
  chunkHas: 'chunk.has',
  chunkClaim: 'chunk.claim',
  chunkPut: 'chunk.put',
  chunkGet: 'chunk.get',
  fileCommit: 'file.commit',
  fileAbort: 'file.abort',
  fileRm: 'file.rm',
  fileTombstones: 'file.tombstones',
  fileUploads: 'file.uploads',
  fileProofs: 'file.proofs',
  healDrain: 'heal.drain',
  healState: 'heal.state',
} as const;

const bytes = (n: number, what: string) =>
  z.custom<Uint8Array>((v) => v instanceof Uint8Array && v.length === n, `${what} must be ${n} bytes`).transform((v) => Buffer.from(v));

export const chunkIdSchema = bytes(CHUNK_ID_BYTES, 'chunk id');
/** Random per put: the owner of the references a put creates until it commits or aborts. */
export const uploadIdSchema = z.string().regex(/^[0-9a-f]{32}$/, 'upload id must be 32 hex digits');
const timeSchema = z.number().int().min(0).max(MAX_CREATED_AT_MS);
const rootHexSchema = z.string().regex(/^[0-9a-f]{64}$/, 'file root must be 64 hex digits');
/**
 * The authority proof of a destructive message (content/authority.ts). Optional in the schema so
 * a message from an older peer parses and is then refused with AUTH, naming why.
 */
const proofSchema = bytes(AUTHORITY_PROOF_BYTES, 'authority proof').optional();
const tombstoneSchema = z.object({ root: rootHexSchema, at: timeSchema, proof: proofSchema }).strict();
/**
 * A committed upload that holds a chunk, as repair hands it on: `proof` proves the commit,
 * `pin` that the upload holds this chunk (for a shard: that it holds the shard's stripe
 * descriptor, which names the shard).
 */
export const ownerSchema = z.object({ upload: uploadIdSchema, root: rootHexSchema, at: timeSchema, proof: proofSchema, pin: proofSchema }).strict();
const commitSchema = z.object({ upload: uploadIdSchema, root: rootHexSchema, at: timeSchema, proof: proofSchema }).strict();
/** What the holder must remember to heal the chunk later: copies wanted, stripe membership, owning files. */
export const healSchema = z
  .object({
    r: z.number().int().min(1).max(MAX_HEAL_COPIES).optional(),
    stripe: z.literal(true).optional(),
    of: z.object({ d: chunkIdSchema, i: z.number().int().min(0).max(MAX_EC_SHARDS - 1) }).strict().optional(),
    owners: z.array(ownerSchema).max(MAX_OWNERS_PER_CHUNK).optional(),
  })
  .strict();

export const schemas = {
  [FILE_METHODS.chunkHas]: z.object({ ids: z.array(chunkIdSchema).max(MAX_IDS_PER_REQUEST) }).strict(),
  // `pins[i]` proves that the upload may hold `ids[i]` (content/authority.ts, a pin statement).
  [FILE_METHODS.chunkClaim]: z
    .object({ upload: uploadIdSchema, ids: z.array(chunkIdSchema).max(MAX_IDS_PER_REQUEST), r: z.number().int().min(1).max(MAX_HEAL_COPIES).optional(), pins: z.array(bytes(AUTHORITY_PROOF_BYTES, 'pin proof')).max(MAX_IDS_PER_REQUEST).optional() })
    .strict(),
  // Without an upload the put only restores a copy (repair) and adds no reference of its own.
  [FILE_METHODS.chunkPut]: z.object({ upload: uploadIdSchema.optional(), id: chunkIdSchema, pin: proofSchema, heal: healSchema.optional() }).strict(),
  [FILE_METHODS.chunkGet]: z.object({ id: chunkIdSchema }).strict(),
  [FILE_METHODS.fileCommit]: commitSchema,
  // An abort without proof only ever drops a pending upload; a committed one needs the writer's proof.
  [FILE_METHODS.fileAbort]: z.object({ upload: uploadIdSchema, proof: proofSchema }).strict(),
  [FILE_METHODS.fileRm]: tombstoneSchema,
  [FILE_METHODS.fileTombstones]: z.object({ after: rootHexSchema.optional(), limit: z.number().int().min(1).max(MAX_LIST_PAGE_RECORDS) }).strict(),
  [FILE_METHODS.fileUploads]: z.object({ ids: z.array(uploadIdSchema).max(MAX_IDS_PER_REQUEST) }).strict(),
  // Proofs held of references stored before commits carried them (files/legacy-commits.ts).
  [FILE_METHODS.fileProofs]: z.object({ refs: z.array(z.object({ upload: uploadIdSchema, id: chunkIdSchema }).strict()).max(MAX_PROOF_QUERY) }).strict(),
  [FILE_METHODS.healDrain]: z.object({ on: z.boolean(), at: timeSchema.optional(), proof: proofSchema }).strict(),
  [FILE_METHODS.healState]: z.object({}).strict(),
} as const;

export type Method = keyof typeof schemas;
export type Body<K extends Method> = z.output<(typeof schemas)[K]>;

/** A plain object with exactly these own keys allowed and no value undefined (what a peer's encoder sends), else undefined. */
function plainFields(v: unknown, allowed: readonly string[]): Record<string, unknown> | undefined {
  if (typeof v !== 'object' || v === null) return undefined;
  const proto = Object.getPrototypeOf(v) as unknown;
  if (proto !== Object.prototype && proto !== null) return undefined;
  const o = v as Record<string, unknown>;
  for (const k of Object.keys(o)) if (!allowed.includes(k) || o[k] === undefined) return undefined;
  return o;
}

const UPLOAD_ID = /^[0-9a-f]{32}$/;
const isBytes = (v: unknown, n: number): v is Uint8Array => v instanceof Uint8Array && v.length === n;
const isCopies = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 1 && v <= MAX_HEAL_COPIES;

/**
 * The two bodies every chunk of a put sends each holder, checked by hand: parsed by their zod
 * schemas they took about a twentieth of a receiving node's event loop. Each returns exactly what
 * the schema would for the shapes a writer sends (a claim, a put with at most `heal.r`), and
 * undefined for anything else, which then goes through the schema: it decides what is accepted
 * and names the problem. `test/unit/files/rpc-fast.test.ts` holds the two to the same answers.
 */
export const fastParsers: { [K in Method]?: (body: unknown) => Body<K> | undefined } = {
  [FILE_METHODS.chunkPut]: (body) => {
    const b = plainFields(body, ['upload', 'id', 'pin', 'heal']);
    if (b === undefined || !isBytes(b.id, CHUNK_ID_BYTES)) return undefined;
    if (b.upload !== undefined && (typeof b.upload !== 'string' || !UPLOAD_ID.test(b.upload))) return undefined;
    if (b.pin !== undefined && !isBytes(b.pin, AUTHORITY_PROOF_BYTES)) return undefined;
    let heal: { r?: number } | undefined;
    if (b.heal !== undefined) {
      const h = plainFields(b.heal, ['r']);
      if (h === undefined || (h.r !== undefined && !isCopies(h.r))) return undefined;
      heal = h.r !== undefined ? { r: h.r } : {};
    }
    return {
      id: Buffer.from(b.id),
      ...(b.upload !== undefined ? { upload: b.upload } : {}),
      ...(b.pin !== undefined ? { pin: Buffer.from(b.pin as Uint8Array) } : {}),
      ...(heal !== undefined ? { heal } : {}),
    };
  },
  [FILE_METHODS.chunkClaim]: (body) => {
    const b = plainFields(body, ['upload', 'ids', 'r', 'pins']);
    if (b === undefined || typeof b.upload !== 'string' || !UPLOAD_ID.test(b.upload)) return undefined;
    const { ids, pins } = b;
    if (!Array.isArray(ids) || ids.length > MAX_IDS_PER_REQUEST || !ids.every((id) => isBytes(id, CHUNK_ID_BYTES))) return undefined;
    if (pins !== undefined && (!Array.isArray(pins) || pins.length > MAX_IDS_PER_REQUEST || !pins.every((p) => isBytes(p, AUTHORITY_PROOF_BYTES)))) return undefined;
    if (b.r !== undefined && !isCopies(b.r)) return undefined;
    return {
      upload: b.upload,
      ids: ids.map((id: Uint8Array) => Buffer.from(id)),
      ...(b.r !== undefined ? { r: b.r } : {}),
      ...(pins !== undefined ? { pins: pins.map((p: Uint8Array) => Buffer.from(p)) } : {}),
    };
  },
};

/** Validates a request body; BAD_INPUT names the method and the first problem. */
export function parseBody<K extends Method>(method: K, body: unknown): Body<K> {
  const fast = (fastParsers[method] as ((body: unknown) => Body<K> | undefined) | undefined)?.(body);
  if (fast !== undefined) return fast;
  const parsed = schemas[method].safeParse(body);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue && issue.path.length > 0 ? ` at ${issue.path.join('.')}` : '';
    throw badInput(`bad ${method} request${where}: ${issue?.message ?? 'invalid'}`);
  }
  return parsed.data as Body<K>;
}

/** Replies are checked too: a confused or hostile peer must not crash the caller. */
export const replies = {
  has: z.object({ have: z.array(z.boolean()).max(MAX_IDS_PER_REQUEST) }).strict(),
  uploads: z.object({ committed: z.array(commitSchema).max(MAX_IDS_PER_REQUEST) }).strict(),
  tombstones: z.object({ items: z.array(tombstoneSchema).max(MAX_LIST_PAGE_RECORDS), more: z.boolean() }).strict(),
  proofs: z.object({ owners: z.array(ownerSchema.extend({ id: chunkIdSchema })).max(MAX_PROOF_QUERY) }).strict(),
};

export function parseReply<S extends z.ZodTypeAny>(schema: S, body: unknown, from: string): z.output<S> {
  const parsed = schema.safeParse(body);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new TesseraError('PROTOCOL', `node ${from} sent a malformed reply: ${issue ? `${issue.path.join('.')}: ${issue.message}` : 'invalid'}`);
  }
  return parsed.data as z.output<S>;
}
