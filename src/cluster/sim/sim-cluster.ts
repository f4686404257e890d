/**
 * A cluster of Membership instances on one SimNetwork: start, crash and restart nodes, and ask what
 * every node believes. Every membership change is recorded with its simulated time, so tests can
 * check histories (no false deaths) and compare runs (determinism).
 */
import { Membership, type MemberInfo, type MemberState, type MembershipConfig } from '../membership.js';
import { createPrng } from './prng.js';
import { SimClock } from './sim-clock.js';
import { SimNetwork, type SimNetworkOptions } from './sim-network.js';

export interface SimChange {
  at: number;
  observer: string;
  nodeId: string;
  state: MemberState;
  prev: MemberState | undefined;
  incarnation: number;
}

export interface SimNode {
  nodeId: string;
  addr: string;
  membership: Membership;
  up: boolean;
  starts: number;
}

export interface SimClusterOptions extends Omit<SimNetworkOptions, 'seed'> {
  seed: number;
  config?: Partial<MembershipConfig>;
  /** Changes kept in memory (oldest first); counts cover all. */
  changeLimit?: number;
}

export const DEFAULT_CHANGE_LIMIT = 200_000;

export class SimCluster {
  readonly clock = new SimClock();
  readonly net: SimNetwork;
  readonly nodes = new Map<string, SimNode>();
  readonly changes: SimChange[] = [];
  /** Per observer, how many other members it holds alive; kept from change events, O(1) to read. */
  readonly aliveSeen = new Map<string, number>();
  /** Every state change any observer emitted (its own stats refreshes excluded), kept or not. */
  stateChanges = 0;
  /** Declarations of death (a transition into 'dead'), by the member declared, kept or not. */
  readonly deathsOf = new Map<string, number>();
  private readonly seed: number;
  private readonly config: Partial<MembershipConfig> | undefined;
  private readonly changeLimit: number;

  constructor(opts: SimClusterOptions) {
    this.seed = opts.seed;
    this.config = opts.config;
    this.changeLimit = opts.changeLimit ?? DEFAULT_CHANGE_LIMIT;
    this.net = new SimNetwork(this.clock, opts);
  }

  static addrOf(nodeId: string): string {
    return `sim://${nodeId}`;
  }

  /** Start (or restart) `nodeId` with the given seeds; a restart gets a fresh Membership, like a new process. */
  start(nodeId: string, seeds: string[], opts: { incarnation?: number; capacity?: number; stats?: () => { capacity: number; used: number }; addressBook?: MemberInfo[]; zone?: string } = {}): Membership {
    const addr = SimCluster.addrOf(nodeId);
    const prev = this.nodes.get(nodeId);
    if (prev?.up) throw new Error(`sim node ${nodeId} is already running`);
    const starts = (prev?.starts ?? 0) + 1;
    const capacity = opts.capacity ?? 1 << 30;
    const m = new Membership({
      self: { nodeId, addr, ...(opts.zone !== undefined ? { zone: opts.zone } : {}) },
      net: this.net.endpoint(addr),
      clock: this.clock,
      random: createPrng(this.seed, `${nodeId}#${starts}`),
      config: this.config,
      seeds,
      incarnation: opts.incarnation,
      addressBook: opts.addressBook,
      localStats: opts.stats ?? (() => ({ capacity, used: 0 })),
    });
    this.aliveSeen.set(nodeId, 0);
    m.on('change', (info, before) => {
      if (info.nodeId !== nodeId) {
        const was = before === 'alive';
        const is = info.state === 'alive';
        if (was !== is) this.aliveSeen.set(nodeId, (this.aliveSeen.get(nodeId) ?? 0) + (is ? 1 : -1));
        if (before !== undefined && before !== info.state) this.stateChanges++;
        if (info.state === 'dead' && before !== 'dead') this.deathsOf.set(info.nodeId, (this.deathsOf.get(info.nodeId) ?? 0) + 1);
      }
      if (this.changes.length < this.changeLimit) {
        this.changes.push({ at: this.clock.now(), observer: nodeId, nodeId: info.nodeId, state: info.state, prev: before, incarnation: info.incarnation });
      }
    });
    this.net.listen(addr, nodeId, (method, body) => m.handle(method, body));
    m.start();
    this.nodes.set(nodeId, { nodeId, addr, membership: m, up: true, starts });
    return m;
  }

  /** Kill the process: it stops answering and its timers stop, with no goodbye. */
  crash(nodeId: string): void {
    const n = this.nodes.get(nodeId);
    if (n === undefined || !n.up) return;
    n.membership.stop();
    this.net.crash(n.addr);
    n.up = false;
  }

  get(nodeId: string): Membership {
    const n = this.nodes.get(nodeId);
    if (n === undefined) throw new Error(`no sim node ${nodeId}`);
    return n.membership;
  }

  running(): SimNode[] {
    return [...this.nodes.values()].filter((n) => n.up);
  }

  /** True when every running node other than `nodeId` holds it in `state`. */
  allSee(nodeId: string, state: MemberState): boolean {
    return this.running().every((n) => n.nodeId === nodeId || n.membership.get(nodeId)?.state === state);
  }

  /** True when every running node sees every other running node alive. */
  converged(): boolean {
    const up = this.running();
    return up.every((a) => up.every((b) => a === b || a.membership.get(b.nodeId)?.state === 'alive'));
  }

  /** Changes where an observer declared `nodeId` dead (for any node when omitted). */
  deaths(nodeId?: string): SimChange[] {
    return this.changes.filter((c) => c.state === 'dead' && c.prev !== 'dead' && (nodeId === undefined || c.nodeId === nodeId));
  }

  stopAll(): void {
    for (const n of this.nodes.values()) if (n.up) n.membership.stop();
  }
}
