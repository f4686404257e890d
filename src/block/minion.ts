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
import { MAX_BATCH_BYTES, MAX_BATCH_OPS, type BatchFailure } from './remote-member.js';

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
  batch: z.object({
    name,
    ops: z.array(z.union([
      z.tuple([z.literal(0), offset, z.number().int().positive().max(MAX_MEMBER_IO_BYTES)]),
      z.tuple([z.literal(1), offset, z.number().int().positive().max(MAX_MEMBER_IO_BYTES)]),
      z.tuple([z.literal(1), offset, z.number().int().positive().max(MAX_MEMBER_IO_BYTES), z.number().int().min(0).max(MAX_EXTENT_GENERATION)]),
    ])).min(1).max(MAX_BATCH_OPS),
    durable: z.boolean().optional(),
  }).strict(),
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
      case 'batch':
        return this.batch(parse('batch', req.body), req.payload);
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

  /**
   * Runs a batch's reads and writes concurrently (the store serialises writes that share a unit)
   * and answers with every read in op order as one payload, read in place. Each op succeeds or
   * fails alone; a durable batch is synced once, after its writes.
   */
  private async batch(b: z.infer<(typeof schemas)['batch']>, payload: Buffer): Promise<Reply> {
    let reads = 0;
    let writes = 0;
    for (const op of b.ops) {
      if (op[0] === 0) reads += op[2];
      else writes += op[2];
    }
    if (reads > MAX_BATCH_BYTES) throw tooLarge(`extent.batch reads ${reads} bytes, over ${MAX_BATCH_BYTES}`);
    if (writes !== payload.length) throw badInput(`extent.batch: writes of ${writes} bytes came with ${payload.length} bytes of payload`);
    const out = Buffer.allocUnsafe(reads);
    const failures: BatchFailure[] = [];
    const fail = (i: number, e: unknown) => {
      const err = e instanceof TesseraError ? e : new TesseraError('IO', e instanceof Error ? e.message : String(e));
      failures.push([i, err.code, err.message.slice(0, 1024)]);
    };
    let rAt = 0;
    let wAt = 0;
    await Promise.all(b.ops.map(async (op, i) => {
      const [kind, off, len] = op;
      try {
        if (kind === 0) {
          const view = out.subarray(rAt, rAt + len);
          rAt += len;
          await this.store.readInto(b.name, off, view);
        } else {
          const data = payload.subarray(wAt, wAt + len);
          wAt += len;
          await this.store.write(b.name, off, data, op[3] !== undefined ? { generation: op[3] } : {});
        }
      } catch (e) {
        fail(i, e);
      }
    }));
    if (b.durable && writes > 0) {
      try {
        await this.store.sync(b.name);
      } catch (e) {
        // Nothing of a durable batch may be acknowledged if the sync failed.
        failures.length = 0;
        b.ops.forEach((_, i) => fail(i, e));
      }
    }
    return { body: failures.length > 0 ? { e: failures } : {}, payload: out };
  }
}
