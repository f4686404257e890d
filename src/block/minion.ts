/**
 * The storage-node side of block volumes: serves `extent.*` RPCs from the node's ExtentStore.
 * A master sends one call per member unit piece; every body is validated here because any peer
 * in the cluster may send anything, and a bad request must never take the node down. Creating,
 * writing and deleting an extent pass the guard first (volume-authority.ts: only the volume's
 * current master writes); reads, syncs and listings are open to members, since every extent
 * holds only sectors sealed at the master.
 */
import { z } from 'zod';
import { badInput, TesseraError, tooLarge } from '../errors.js';
import type { IncomingRequest, Reply } from '../net/index.js';
import { type ExtentStore, MAX_EXTENT_GENERATION, MAX_EXTENT_UNITS, MAX_EXTENT_UNIT_BYTES, MIN_EXTENT_UNIT_BYTES } from '../store/index.js';
import { MAX_GENERATIONS_PER_CALL, MAX_MEMBER_IO_BYTES } from './volume/member.js';
import { MAX_BATCH_BYTES, MAX_BATCH_OPS, type BatchFailure, type BatchOp } from './remote-member.js';
import type { ExtentOp } from './volume-authority.js';

export const EXTENT_RPC_PREFIX = 'extent.';
/** Extent names are "<volume>.<volume id>"; the store's own name rule bounds them further. */
export const MAX_EXTENT_NAME_CHARS = 128;

const name = z.string().min(1).max(MAX_EXTENT_NAME_CHARS);
const offset = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);
const schemas = {
  create: z.object({ name, units: z.number().int().min(1).max(MAX_EXTENT_UNITS), unitSize: z.number().int().min(MIN_EXTENT_UNIT_BYTES).max(MAX_EXTENT_UNIT_BYTES), record: z.unknown().optional() }).strict(),
  delete: z.object({ name }).strict(),
  info: z.object({ name }).strict(),
  read: z.object({ name, offset, length: z.number().int().nonnegative().max(MAX_MEMBER_IO_BYTES) }).strict(),
  write: z.object({ name, offset, generation: z.number().int().min(0).max(MAX_EXTENT_GENERATION).optional(), durable: z.boolean().optional() }).strict(),
  sync: z.object({ name }).strict(),
  generations: z.object({ name, first: offset, count: z.number().int().nonnegative().max(MAX_GENERATIONS_PER_CALL) }).strict(),
  list: z.object({}).strict(),
};
type Method = keyof typeof schemas;

interface BatchBody {
  name: string;
  ops: BatchOp[];
  durable?: boolean;
}

const isInt = (v: unknown, min: number, max: number): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= min && v <= max;

/**
 * The batch body checked by hand: it carries up to MAX_BATCH_OPS tuples per call, and a schema
 * union tried per op (building an issue for each alternative that fails) cost more than the
 * I/O of a small write. Refuses exactly what the schema form did: [0, offset, length] reads,
 * [1, offset, length, generation?] writes, nothing else in the body.
 */
function parseBatch(body: unknown): BatchBody {
  const bad = (where: string, msg: string) => badInput(`extent.batch: malformed request: ${where}: ${msg}`);
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw bad('body', 'expected an object');
  const o = body as Record<string, unknown>;
  for (const k of Object.keys(o)) if (k !== 'name' && k !== 'ops' && k !== 'durable') throw bad('body', `unrecognized key '${k}'`);
  const { name: n, ops, durable } = o;
  if (typeof n !== 'string' || n.length < 1 || n.length > MAX_EXTENT_NAME_CHARS) throw bad('name', `expected a string of 1 to ${MAX_EXTENT_NAME_CHARS} characters`);
  if (durable !== undefined && typeof durable !== 'boolean') throw bad('durable', 'expected a boolean');
  if (!Array.isArray(ops) || ops.length < 1 || ops.length > MAX_BATCH_OPS) throw bad('ops', `expected an array of 1 to ${MAX_BATCH_OPS} ops`);
  for (let i = 0; i < ops.length; i++) {
    const op: unknown = ops[i];
    if (!Array.isArray(op) || op.length < 3 || op.length > 4
      || (op[0] !== 0 && op[0] !== 1)
      || !isInt(op[1], 0, Number.MAX_SAFE_INTEGER)
      || !isInt(op[2], 1, MAX_MEMBER_IO_BYTES)
      || (op.length === 4 && (op[0] !== 1 || !isInt(op[3], 0, MAX_EXTENT_GENERATION)))) {
      throw bad(`ops.${i}`, `expected [0, offset, length] or [1, offset, length, generation?] with length 1..${MAX_MEMBER_IO_BYTES}`);
    }
  }
  return { name: n, ops: ops as BatchOp[], ...(durable !== undefined ? { durable } : {}) };
}

/** Consecutive ops of one kind (and generation) whose ranges follow one another: one store call. */
interface Run {
  kind: 0 | 1;
  offset: number;
  end: number;
  generation: number | undefined;
  bufs: Buffer[];
  ops: number[];
}

function parse<M extends Method>(method: M, body: unknown): z.infer<(typeof schemas)[M]> {
  const r = schemas[method].safeParse(body ?? {});
  if (!r.success) {
    const issue = r.error.issues[0];
    throw badInput(`extent.${method}: malformed request: ${issue ? `${issue.path.join('.') || 'body'}: ${issue.message}` : 'invalid body'}`);
  }
  return r.data as z.infer<(typeof schemas)[M]>;
}

/** What the minion asks before it changes an extent (volume-authority.ts and the record registry). */
export interface ExtentGuard {
  /** Merges a signed volume record a master sent with an extent.create; throws AUTH when it is not proven. */
  accept(record: unknown, from: string): Promise<void>;
  /** Throws AUTH unless `from` may run `op` on `extent`. */
  check(op: ExtentOp, extent: string, from: string): void;
}

export class Minion {
  constructor(private readonly store: ExtentStore, private readonly guard: ExtentGuard) {}

  /** Dispatches one `extent.*` request. */
  async handle(req: IncomingRequest): Promise<Reply> {
    const method = req.method.slice(EXTENT_RPC_PREFIX.length);
    switch (method) {
      case 'create': {
        const b = parse('create', req.body);
        if (b.record !== undefined) await this.guard.accept(b.record, req.peer.nodeId);
        this.guard.check('create', b.name, req.peer.nodeId);
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
        this.guard.check('delete', b.name, req.peer.nodeId);
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
        this.guard.check('write', b.name, req.peer.nodeId);
        if (req.payload.length > MAX_MEMBER_IO_BYTES) throw tooLarge(`extent.write of ${req.payload.length} bytes exceeds ${MAX_MEMBER_IO_BYTES}`);
        try {
          await this.store.write(b.name, b.offset, req.payload, {
            ...(b.generation !== undefined ? { generation: b.generation } : {}),
            ...(b.durable ? { durable: true } : {}),
          });
        } finally {
          req.recycle?.();
        }
        return {};
      }
      case 'sync':
        await this.store.sync(parse('sync', req.body).name);
        return {};
      case 'batch': {
        const b = parseBatch(req.body);
        if (b.ops.some((op) => op[0] === 1)) this.guard.check('write', b.name, req.peer.nodeId);
        return this.batch(b, req.payload, req.recycle);
      }
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
   * and answers with every read in op order as one payload, read in place. Consecutive ops that
   * continue one another (a sequential stream split into units) go to the store as one preadv or
   * pwritev: each store call is a thread-pool round trip. Each run succeeds or fails alone; a
   * durable batch is synced once, after its writes.
   */
  private async batch(b: BatchBody, payload: Buffer, recycle?: () => void): Promise<Reply> {
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
    const runs: Run[] = [];
    let rAt = 0;
    let wAt = 0;
    b.ops.forEach((op, i) => {
      const [kind, off, len] = op;
      let buf: Buffer;
      if (kind === 0) {
        buf = out.subarray(rAt, rAt + len);
        rAt += len;
      } else {
        buf = payload.subarray(wAt, wAt + len);
        wAt += len;
      }
      const gen = op[3];
      const last = runs[runs.length - 1];
      if (last !== undefined && last.kind === kind && last.end === off && last.generation === gen) {
        last.end += len;
        last.bufs.push(buf);
        last.ops.push(i);
      } else {
        runs.push({ kind, offset: off, end: off + len, generation: gen, bufs: [buf], ops: [i] });
      }
    });
    await Promise.all(runs.map(async (r) => {
      try {
        if (r.kind === 0) await this.store.readInto(b.name, r.offset, r.bufs);
        else await this.store.write(b.name, r.offset, r.bufs, r.generation !== undefined ? { generation: r.generation } : {});
      } catch (e) {
        for (const i of r.ops) fail(i, e);
      }
    }));
    // Every write has landed or failed: the payload's pooled buffer (a sequential stream's batches
    // are large enough to get one) takes the next batch instead of a fresh buffer for the collector.
    recycle?.();
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
