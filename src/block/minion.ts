/**
 * The storage-node side of block volumes: serves `extent.*` RPCs from the node's ExtentStore.
 * A master sends one call per member unit piece; every body is validated here because any peer
 * in the cluster may send anything, and a bad request must never take the node down.
 */
import { z } from 'zod';
import { badInput, TesseraError, tooLarge } from '../errors.js';
import type { IncomingRequest, Reply } from '../net/transport.js';
import type { ExtentStore } from '../store/extent-store.js';
import { MAX_EXTENT_GENERATION, MAX_EXTENT_UNITS, MAX_EXTENT_UNIT_BYTES, MIN_EXTENT_UNIT_BYTES } from '../store/extent-store.js';
import { MAX_GENERATIONS_PER_CALL, MAX_MEMBER_IO_BYTES } from './volume/member.js';

export const EXTENT_RPC_PREFIX = 'extent.';
/** Extent names are "<volume>.<volume id>"; the store's own name rule bounds them further. */
export const MAX_EXTENT_NAME_CHARS = 128;

const name = z.string().min(1).max(MAX_EXTENT_NAME_CHARS);
const offset = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);
const schemas = {
  create: z.object({ name, units: z.number().int().min(1).max(MAX_EXTENT_UNITS), unitSize: z.number().int().min(MIN_EXTENT_UNIT_BYTES).max(MAX_EXTENT_UNIT_BYTES) }).strict(),
  delete: z.object({ name }).strict(),
  info: z.object({ name }).strict(),
  read: z.object({ name, offset, length: z.number().int().nonnegative().max(MAX_MEMBER_IO_BYTES) }).strict(),
  write: z.object({ name, offset, generation: z.number().int().min(0).max(MAX_EXTENT_GENERATION).optional(), durable: z.boolean().optional() }).strict(),
  sync: z.object({ name }).strict(),
  generations: z.object({ name, first: offset, count: z.number().int().nonnegative().max(MAX_GENERATIONS_PER_CALL) }).strict(),
  list: z.object({}).strict(),
};
type Method = keyof typeof schemas;

function parse<M extends Method>(method: M, body: unknown): z.infer<(typeof schemas)[M]> {
  const r = schemas[method].safeParse(body ?? {});
  if (!r.success) {
    const issue = r.error.issues[0];
    throw badInput(`extent.${method}: malformed request: ${issue ? `${issue.path.join('.') || 'body'}: ${issue.message}` : 'invalid body'}`);
  }
  return r.data as z.infer<(typeof schemas)[M]>;
}

export class Minion {
  constructor(private readonly store: ExtentStore) {}

  /** Dispatches one `extent.*` request. */
  async handle(req: IncomingRequest): Promise<Reply> {
    const method = req.method.slice(EXTENT_RPC_PREFIX.length);
    switch (method) {
      case 'create': {
        const b = parse('create', req.body);
        // Idempotent: a master retrying a create whose answer it lost must not fail.
        const have = this.store.list().find((v) => v.name === b.name);
        if (have !== undefined) {
          if (have.units === b.units && have.unitSize === b.unitSize) return { body: have };
          throw new TesseraError('CONFLICT', `extent '${b.name}' already exists here with ${have.units} units of ${have.unitSize} bytes`);
        }
        return { body: await this.store.create(b.name, { units: b.units, unitSize: b.unitSize }) };
      }
      case 'delete': {
        const b = parse('delete', req.body);
        return { body: { deleted: await this.store.delete(b.name) } };
      }
      case 'info':
        return { body: this.store.info(parse('info', req.body).name) };
      case 'read': {
        const b = parse('read', req.body);
        return { payload: await this.store.read(b.name, b.offset, b.length) };
      }
      case 'write': {
        const b = parse('write', req.body);
        if (req.payload.length > MAX_MEMBER_IO_BYTES) throw tooLarge(`extent.write of ${req.payload.length} bytes exceeds ${MAX_MEMBER_IO_BYTES}`);
        await this.store.write(b.name, b.offset, req.payload, {
          ...(b.generation !== undefined ? { generation: b.generation } : {}),
          ...(b.durable ? { durable: true } : {}),
        });
        return {};
      }
      case 'sync':
        await this.store.sync(parse('sync', req.body).name);
        return {};
      case 'generations': {
        const b = parse('generations', req.body);
        const gens = await this.store.generations(b.name, b.first, b.count);
        const out = Buffer.allocUnsafe(gens.length * 4);
        gens.forEach((g, i) => out.writeUInt32LE(g, i * 4));
        return { payload: out };
      }
      case 'list':
        parse('list', req.body);
        return { body: { extents: this.store.list() } };
      default:
        throw badInput(`unknown method '${req.method}'`);
    }
  }
}
