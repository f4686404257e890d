/**
 * A simulated network for membership: request/response calls between addresses with latency,
 * random loss, partitions, slow nodes, crashes and restarts, all driven by a SimClock and a seeded
 * PRNG so a run replays exactly. Bodies are deep-copied in both directions, as serialization would,
 * so nodes never share objects.
 */
import { TesseraError } from '../../errors.js';
import type { RandomSource } from '../clock.js';
import type { MembershipNet } from '../membership.js';
import { createPrng } from './prng.js';
import type { SimClock } from './sim-clock.js';

export type SimHandler = (method: string, body: unknown) => Promise<unknown>;

export interface SimNetworkOptions {
  seed: number;
  /** One-way latency is uniform in [min, max] ms, plus any per-node extra delay. */
  minLatencyMs?: number;
  maxLatencyMs?: number;
  /** Probability that any one message (request or response) is lost. */
  lossRate?: number;
  /** Trace lines kept in memory; the digest covers every line regardless. */
  traceLimit?: number;
  /**
   * Deep-copy bodies as serialization would (default). Large simulations may turn it off: the
   * membership readers build fresh records from every body and never mutate one, so sharing is
   * invisible to them (a test checks that both modes replay the same run).
   */
  cloneBodies?: boolean;
}

export const DEFAULT_TRACE_LIMIT = 10_000;

interface Endpoint {
  nodeId: string;
  handler: SimHandler;
  up: boolean;
  gen: number;
}

export interface SimNetStats {
  sent: number;
  delivered: number;
  dropped: number;
  refused: number;
  timedOut: number;
}

export class SimNetwork {
  readonly random: RandomSource;
  lossRate: number;
  readonly stats: SimNetStats = { sent: 0, delivered: 0, dropped: 0, refused: 0, timedOut: 0 };
  readonly trace: string[] = [];
  private digestState = 0x811c9dc5;
  private readonly traceLimit: number;
  private readonly copy: <T>(v: T) => T;
  private readonly minLatency: number;
  private readonly maxLatency: number;
  private readonly endpoints = new Map<string, Endpoint>();
  private readonly delays = new Map<string, number>();
  private groups: Map<string, number> | undefined;

  constructor(
    readonly clock: SimClock,
    opts: SimNetworkOptions,
  ) {
    this.random = createPrng(opts.seed, 'network');
    this.minLatency = opts.minLatencyMs ?? 0.2;
    this.maxLatency = Math.max(this.minLatency, opts.maxLatencyMs ?? 2);
    this.lossRate = opts.lossRate ?? 0;
    this.traceLimit = opts.traceLimit ?? DEFAULT_TRACE_LIMIT;
    this.copy = opts.cloneBodies === false ? (v) => v : (v) => structuredClone(v);
  }

  /** FNV-1a over every trace line so far: equal digests mean identical runs. */
  get digest(): string {
    return (this.digestState >>> 0).toString(16).padStart(8, '0');
  }

  /** Bring a node up at `addr` (a restart if it was there before: in-flight messages to the old one are lost). */
  listen(addr: string, nodeId: string, handler: SimHandler): void {
    const old = this.endpoints.get(addr);
    this.endpoints.set(addr, { nodeId, handler, up: true, gen: (old?.gen ?? 0) + 1 });
    this.note(`up ${addr} ${nodeId}`);
  }

  /** The node at `addr` stops answering (silently, like a powered-off host) until it listens again. */
  crash(addr: string): void {
    const e = this.endpoints.get(addr);
    if (e === undefined) return;
    e.up = false;
    e.gen++;
    this.note(`crash ${addr}`);
  }

  /** Only addresses in the same group can talk; unlisted addresses share one further group. */
  partition(...groups: string[][]): void {
    this.groups = new Map();
    groups.forEach((g, i) => g.forEach((a) => this.groups!.set(a, i)));
    this.note(`partition ${groups.map((g) => g.join(',')).join(' | ')}`);
  }

  heal(): void {
    this.groups = undefined;
    this.note('heal');
  }

  /** Extra one-way delay on every message to or from `addr` (0 to clear). */
  setDelay(addr: string, ms: number): void {
    if (ms > 0) this.delays.set(addr, ms);
    else this.delays.delete(addr);
    this.note(`delay ${addr} ${ms}`);
  }

  /** The MembershipNet for the node at `from`. */
  endpoint(from: string): MembershipNet {
    return { call: (addr, method, body, opts) => this.call(from, addr, method, body, opts) };
  }

  private canTalk(a: string, b: string): boolean {
    if (this.groups === undefined) return true;
    return (this.groups.get(a) ?? -1) === (this.groups.get(b) ?? -1);
  }

  private latency(a: string, b: string): number {
    const base = this.minLatency + this.random() * (this.maxLatency - this.minLatency);
    return base + (this.delays.get(a) ?? 0) + (this.delays.get(b) ?? 0);
  }

  private note(line: string): void {
    const s = `${this.clock.now().toFixed(3)} ${line}`;
    let h = this.digestState;
    for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
    this.digestState = h >>> 0;
    if (this.trace.length < this.traceLimit) this.trace.push(s);
  }

  private call(from: string, to: string, method: string, body: unknown, opts: { timeoutMs: number; expectNodeId?: string }): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const src = this.endpoints.get(from);
      const srcGen = src?.gen;
      const srcAlive = () => src !== undefined && src.up && src.gen === srcGen;
      let done = false;
      const finish = (outcome: string, f: () => void) => {
        if (done) return;
        done = true;
        this.clock.clearTimeout(timer);
        this.note(`${from}>${to} ${method} ${outcome}`);
        f();
      };
      const timer = this.clock.setTimeout(() => {
        this.stats.timedOut++;
        finish('timeout', () => reject(new TesseraError('TIMEOUT', `${method} to ${to} timed out after ${opts.timeoutMs} ms`)));
      }, opts.timeoutMs);
      this.stats.sent++;
      const req = this.copy(body);
      const lost = this.random() < this.lossRate;
      this.clock.setTimeout(() => {
        const dst = this.endpoints.get(to);
        if (dst === undefined) {
          this.stats.refused++;
          finish('refused', () => reject(new TesseraError('UNAVAILABLE', `connection to ${to} refused`)));
          return;
        }
        if (lost || !dst.up || !srcAlive() || !this.canTalk(from, to)) {
          this.stats.dropped++;
          return;
        }
        if (opts.expectNodeId !== undefined && opts.expectNodeId !== dst.nodeId) {
          finish('auth', () => reject(new TesseraError('AUTH', `peer at ${to} is ${dst.nodeId}, expected ${opts.expectNodeId}`)));
          return;
        }
        this.stats.delivered++;
        const dstGen = dst.gen;
        const respond = (ok: boolean, value: unknown) => {
          const lostBack = this.random() < this.lossRate;
          this.clock.setTimeout(() => {
            if (lostBack || dst.gen !== dstGen || !srcAlive() || !this.canTalk(to, from)) {
              this.stats.dropped++;
              return;
            }
            if (ok) finish('ok', () => resolve(this.copy(value)));
            else finish('error', () => reject(value));
          }, this.latency(to, from));
        };
        dst.handler(method, req).then(
          (v) => respond(true, v),
          (e: unknown) => respond(false, e),
        );
      }, this.latency(from, to));
    });
  }
}
