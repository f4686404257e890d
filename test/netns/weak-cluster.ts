/**
 * Weak nodes on one fast network: `storageHosts` hosts whose links are each capped with tc tbf,
 * plus one gateway host whose link is not capped and which stores nothing (`--quota 0`), so a
 * client reading through it measures what the capped holders deliver together. Shared by the
 * netns-weak test and `npm run bench -- weak`.
 */
import { createHash, randomBytes } from 'node:crypto';
import { NetnsCluster, type NetnsClusterOptions } from './harness.js';

export interface WeakClusterOptions {
  storageHosts: number;
  /** Bytes per second each way on every storage host's link. */
  capBytes: number;
  memory?: boolean;
  /** Node runtime flags for every host, e.g. a heap bound. */
  runtimeFlags?: string[];
  nodeArgs?: string[];
  logLevel?: string;
  convergeMs?: number;
}

export interface WeakCluster {
  c: NetnsCluster;
  /** Index of the uncapped gateway host (the last one). */
  gateway: number;
  storage: number[];
}

export async function startWeakCluster(o: WeakClusterOptions, onCreated?: (c: NetnsCluster) => void): Promise<WeakCluster> {
  const gateway = o.storageHosts;
  const opts: NetnsClusterOptions = {
    hosts: o.storageHosts + 1,
    hostArgs: (i) => (i === gateway ? ['--quota', '0'] : []),
    ...(o.memory ? { memory: true } : {}),
    ...(o.nodeArgs ? { nodeArgs: o.nodeArgs } : {}),
    ...(o.runtimeFlags ? { runtimeFlags: o.runtimeFlags } : {}),
    ...(o.logLevel ? { logLevel: o.logLevel } : {}),
  };
  const c = await NetnsCluster.create(opts);
  onCreated?.(c);
  const storage = [...Array(o.storageHosts).keys()];
  for (const i of storage) await c.capLink(i, o.capBytes);
  await c.start();
  await c.waitConverged(o.convergeMs ?? 60_000);
  return { c, gateway, storage };
}

/** `size` bytes of incompressible data in 1 MiB pieces, distinct per `seed`; `sha()` is their digest once consumed. */
export function hashedSource(size: number, seed: number): { stream: AsyncGenerator<Buffer>; sha: () => string } {
  const SEG = 1 << 20;
  const base = randomBytes(SEG);
  const hash = createHash('sha256');
  async function* gen(): AsyncGenerator<Buffer> {
    for (let off = 0, n = 0; off < size; off += SEG, n++) {
      const piece = Buffer.from(base.subarray(0, Math.min(SEG, size - off)));
      piece.writeUInt32BE(seed >>> 0, 0);
      piece.writeUInt32BE(n, 4);
      hash.update(piece);
      yield piece;
    }
  }
  return { stream: gen(), sha: () => hash.digest('hex') };
}

export interface Drained {
  bytes: number;
  sha: string;
  ms: number;
  /** The longest wait between two pieces of the stream: how long the read stood still. */
  maxGapMs: number;
}

/** Reads a stream to its end, hashing it and timing the gaps between pieces. `onBytes` sees the running count. */
export async function drain(stream: AsyncIterable<Buffer>, onBytes?: (n: number) => void): Promise<Drained> {
  const hash = createHash('sha256');
  const t0 = Date.now();
  let last = t0;
  let maxGapMs = 0;
  let bytes = 0;
  for await (const b of stream) {
    const now = Date.now();
    maxGapMs = Math.max(maxGapMs, now - last);
    last = now;
    hash.update(b);
    bytes += b.length;
    onBytes?.(bytes);
  }
  return { bytes, sha: hash.digest('hex'), ms: Date.now() - t0, maxGapMs };
}

/** A counter of `tessera_chunk_ops_total` from a node's /metrics text (0 when absent). */
export function chunkOps(metrics: string, op: string, result: string): number {
  const re = new RegExp(`^tessera_chunk_ops_total\\{[^}]*op="${op}"[^}]*result="${result}"[^}]*\\} (\\d+(?:\\.\\d+)?)$`, 'm');
  const m = re.exec(metrics);
  return m ? Number(m[1]) : 0;
}

/** Carries a host's API certificate (PEM) to a client process in its namespace, which pins it. */
export const API_CERT_ENV = 'WEAK_API_CERT_PEM';
