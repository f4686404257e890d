/**
 * A volume member that lives on another node, reached by `extent.*` RPCs to the node's minion.
 * Reads and writes issued in the same turn of the event loop travel together as one
 * `extent.batch` call (payloads as a list of buffers, no copies): under a queue of small requests
 * the per-RPC cost (framing, TLS records, syscalls, the minion's dispatch) was most of the work.
 * The node is named by id and its address looked up per call, so a member that restarts on a new
 * address is reached again without rebuilding the volume.
 */
import { badInput, isTesseraError, TesseraError } from '../errors.js';
import { toErrorCode } from '../net/index.js';
import {
  checkGeneration, checkGenerationRange, checkMemberRange, MAX_MEMBER_IO_BYTES,
  type MemberWriteOptions, type VolumeMember,
} from './volume/member.js';

/** A member call outlives the volume's own member timeout so the volume, not the wire, decides. */
export const DEFAULT_REMOTE_CALL_TIMEOUT_MS = 15_000;

/** A batch carries at most this many reads and writes. */
export const MAX_BATCH_OPS = 256;
/** Bytes a batch moves each way; one frame carries 8 MiB + 64 KiB. */
export const MAX_BATCH_BYTES = MAX_MEMBER_IO_BYTES;

/** What a remote member needs from the node: one RPC to a node by id. */
export interface MemberNet {
  call(nodeId: string, method: string, body: unknown, payload: Buffer | Buffer[] | undefined, timeoutMs: number): Promise<{ body: unknown; payload: Buffer }>;
}

/** One op of an `extent.batch` body: [0, offset, length] reads, [1, offset, length, generation?] writes. */
export type BatchOp = [kind: 0 | 1, offset: number, length: number, generation?: number];
/** Failed ops of a batch, by index: [index, error code, message]. */
export type BatchFailure = [index: number, code: string, message: string];

interface Queued {
  op: BatchOp;
  data: Buffer | undefined;
  resolve: (b: Buffer | undefined) => void;
  reject: (e: unknown) => void;
}

interface Pending {
  ops: Queued[];
  durable: boolean;
  bytesOut: number;
  bytesIn: number;
}

export interface RemoteMemberOptions {
  net: MemberNet;
  nodeId: string;
  /** Extent name on that node. */
  extent: string;
  size: number;
  unitSize: number;
  timeoutMs?: number;
}

export class RemoteMember implements VolumeMember {
  readonly id: string;
  readonly size: number;
  private readonly units: number;
  private readonly timeoutMs: number;
  private closed = false;
  /** Turned off when the node answers that it does not know `extent.batch`. */
  private batching = true;
  private pending: Pending | null = null;

  constructor(private readonly o: RemoteMemberOptions) {
    this.id = o.nodeId;
    this.size = o.size;
    this.units = Math.ceil(o.size / o.unitSize);
    this.timeoutMs = o.timeoutMs ?? DEFAULT_REMOTE_CALL_TIMEOUT_MS;
  }

  private rpc(method: string, body: Record<string, unknown>, payload?: Buffer | Buffer[]) {
    if (this.closed) throw new TesseraError('UNAVAILABLE', `member ${this.id} is closed`);
    return this.o.net.call(this.o.nodeId, `extent.${method}`, { name: this.o.extent, ...body }, payload, this.timeoutMs);
  }

  async read(offset: number, length: number): Promise<Buffer> {
    checkMemberRange(this.id, this.size, offset, length);
    if (length === 0) return Buffer.alloc(0);
    if (this.batching) return this.enqueue([0, offset, length], undefined, false) as Promise<Buffer>;
    return this.readOne(offset, length);
  }

  private async readOne(offset: number, length: number): Promise<Buffer> {
    const r = await this.rpc('read', { offset, length });
    // A peer that answers with the wrong length is broken; treat it as a failed member.
    if (r.payload.length !== length) throw new TesseraError('PROTOCOL', `member ${this.id} answered a read of ${length} bytes with ${r.payload.length}`);
    return r.payload;
  }

  async write(offset: number, data: Buffer, opts: MemberWriteOptions = {}): Promise<void> {
    checkMemberRange(this.id, this.size, offset, data.length);
    checkGeneration(this.id, opts.generation);
    if (data.length === 0 && !opts.durable) return;
    if (this.batching && data.length > 0) {
      const op: BatchOp = opts.generation !== undefined ? [1, offset, data.length, opts.generation] : [1, offset, data.length];
      await this.enqueue(op, data, opts.durable === true);
      return;
    }
    await this.writeOne(offset, data, opts);
  }

  private async writeOne(offset: number, data: Buffer, opts: MemberWriteOptions): Promise<void> {
    await this.rpc('write', {
      offset,
      ...(opts.generation !== undefined ? { generation: opts.generation } : {}),
      ...(opts.durable ? { durable: true } : {}),
    }, data);
  }

  async flush(): Promise<void> {
    await this.rpc('sync', {});
  }

  private enqueue(op: BatchOp, data: Buffer | undefined, durable: boolean): Promise<Buffer | undefined> {
    if (this.closed) return Promise.reject(new TesseraError('UNAVAILABLE', `member ${this.id} is closed`));
    const out = op[0] === 1 ? op[2] : 0;
    const back = op[0] === 0 ? op[2] : 0;
    let p = this.pending;
    // FUA writes travel in batches of their own so ordinary writes never wait for an fdatasync.
    if (p !== null && (p.durable !== durable || p.ops.length >= MAX_BATCH_OPS || p.bytesOut + out > MAX_BATCH_BYTES || p.bytesIn + back > MAX_BATCH_BYTES)) {
      this.send(p);
      p = null;
    }
    if (p === null) {
      const fresh: Pending = { ops: [], durable, bytesOut: 0, bytesIn: 0 };
      this.pending = fresh;
      p = fresh;
      // Everything issued in this turn of the event loop (a burst of NBD requests) joins this batch.
      setImmediate(() => { if (this.pending === fresh) this.send(fresh); });
    }
    p.bytesOut += out;
    p.bytesIn += back;
    return new Promise((resolve, reject) => { (p as Pending).ops.push({ op, data, resolve, reject }); });
  }

  private send(p: Pending): void {
    if (this.pending === p) this.pending = null;
    void this.runBatch(p);
  }

  private async runBatch(p: Pending): Promise<void> {
    const payload: Buffer[] = [];
    for (const q of p.ops) if (q.data !== undefined) payload.push(q.data);
    let r: { body: unknown; payload: Buffer };
    try {
      r = await this.rpc('batch', { ops: p.ops.map((q) => q.op), ...(p.durable ? { durable: true } : {}) }, payload);
    } catch (e) {
      if (this.batching && isTesseraError(e, 'BAD_INPUT') && /unknown method/.test((e as Error).message)) {
        // An older node: fall back to one call per op.
        this.batching = false;
        for (const q of p.ops) {
          const [kind, offset, length, generation] = q.op;
          const one = kind === 0
            ? this.readOne(offset, length)
            : this.writeOne(offset, q.data as Buffer, { durable: p.durable, ...(generation !== undefined ? { generation } : {}) }).then(() => undefined);
          one.then(q.resolve, q.reject);
        }
        return;
      }
      for (const q of p.ops) q.reject(e);
      return;
    }
    const failed = new Map<number, BatchFailure>();
    const body = r.body as { e?: unknown } | undefined;
    if (body !== undefined && body !== null && Array.isArray(body.e)) {
      for (const f of body.e as unknown[]) {
        if (Array.isArray(f) && f.length === 3 && Number.isInteger(f[0]) && typeof f[1] === 'string' && typeof f[2] === 'string') failed.set(f[0] as number, f as BatchFailure);
      }
    }
    if (r.payload.length !== p.bytesIn) {
      const err = new TesseraError('PROTOCOL', `member ${this.id} answered a batch reading ${p.bytesIn} bytes with ${r.payload.length}`);
      for (const q of p.ops) q.reject(err);
      return;
    }
    let at = 0;
    p.ops.forEach((q, i) => {
      const f = failed.get(i);
      const len = q.op[0] === 0 ? q.op[2] : 0;
      const view = r.payload.subarray(at, at + len);
      at += len;
      if (f !== undefined) q.reject(new TesseraError(toErrorCode(f[1]), f[2], { peer: this.id, method: 'extent.batch', remote: true }));
      else q.resolve(q.op[0] === 0 ? view : undefined);
    });
  }

  async generations(firstUnit: number, count: number): Promise<number[]> {
    checkGenerationRange(this.id, this.units, firstUnit, count);
    if (count === 0) {
      // Still a round trip: the volume uses a zero-length probe to learn whether the node is back.
      await this.rpc('info', {});
      return [];
    }
    const r = await this.rpc('generations', { first: firstUnit, count });
    if (r.payload.length !== count * 4) throw new TesseraError('PROTOCOL', `member ${this.id} answered ${count} generations with ${r.payload.length} bytes`);
    const out = new Array<number>(count);
    for (let i = 0; i < count; i++) out[i] = r.payload.readUInt32LE(i * 4);
    return out;
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}

export function checkExtentName(volume: string, id: string): string {
  const n = `${volume}.${id}`;
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(n)) throw badInput(`volume name '${volume}' cannot name an extent`);
  return n;
}
