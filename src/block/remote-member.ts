/**
 * A volume member that lives on another node: each call is one `extent.*` RPC to the node's
 * minion. The node is named by id and its address looked up per call, so a member that restarts
 * on a new address is reached again without rebuilding the volume.
 */
import { badInput, TesseraError } from '../errors.js';
import {
  checkGeneration, checkGenerationRange, checkMemberRange,
  type MemberWriteOptions, type VolumeMember,
} from './volume/member.js';

/** A member call outlives the volume's own member timeout so the volume, not the wire, decides. */
export const DEFAULT_REMOTE_CALL_TIMEOUT_MS = 15_000;

/** What a remote member needs from the node: one RPC to a node by id. */
export interface MemberNet {
  call(nodeId: string, method: string, body: unknown, payload: Buffer | undefined, timeoutMs: number): Promise<{ body: unknown; payload: Buffer }>;
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

  constructor(private readonly o: RemoteMemberOptions) {
    this.id = o.nodeId;
    this.size = o.size;
    this.units = Math.ceil(o.size / o.unitSize);
    this.timeoutMs = o.timeoutMs ?? DEFAULT_REMOTE_CALL_TIMEOUT_MS;
  }

  private rpc(method: string, body: Record<string, unknown>, payload?: Buffer) {
    if (this.closed) throw new TesseraError('UNAVAILABLE', `member ${this.id} is closed`);
    return this.o.net.call(this.o.nodeId, `extent.${method}`, { name: this.o.extent, ...body }, payload, this.timeoutMs);
  }

  async read(offset: number, length: number): Promise<Buffer> {
    checkMemberRange(this.id, this.size, offset, length);
    if (length === 0) return Buffer.alloc(0);
    const r = await this.rpc('read', { offset, length });
    // A peer that answers with the wrong length is broken; treat it as a failed member.
    if (r.payload.length !== length) throw new TesseraError('PROTOCOL', `member ${this.id} answered a read of ${length} bytes with ${r.payload.length}`);
    return r.payload;
  }

  async write(offset: number, data: Buffer, opts: MemberWriteOptions = {}): Promise<void> {
    checkMemberRange(this.id, this.size, offset, data.length);
    checkGeneration(this.id, opts.generation);
    if (data.length === 0 && !opts.durable) return;
    await this.rpc('write', {
      offset,
      ...(opts.generation !== undefined ? { generation: opts.generation } : {}),
      ...(opts.durable ? { durable: true } : {}),
    }, data);
  }

  async flush(): Promise<void> {
    await this.rpc('sync', {});
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
