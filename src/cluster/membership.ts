/**
 * Cluster membership with SWIM failure detection (DESIGN §3.5).
 *
 * - Probing: every probe interval one member, round-robin over a shuffled list, gets a direct ping;
 *   if it fails, `indirectProbes` other members are asked to ping it (member.ping-req). No ack at
 *   all makes the member suspect; a suspect not refuted within the suspicion timeout is dead.
 * - Isolation guard: when none of the indirect helpers answers either (not even "could not reach
 *   it"), the fault is most likely ours, so we suspect nobody; a node cut off for a moment therefore
 *   does not flood the cluster with accusations once it is back.
 * - Dissemination: updates piggyback on every ping, ack and gossip message (bounded per message,
 *   each re-sent λ·log(n) times), gossip goes to `gossipFanout` members every gossip interval, and
 *   a periodic full-state push-pull (member.sync) repairs whatever gossip missed.
 * - Refutation: a node that hears it is suspect, dead or left raises its incarnation and gossips
 *   'alive'; a higher incarnation overrides any accusation, which is also how a restarted node with
 *   the same id rejoins.
 * - Dead members are remembered (the address book) and one of them, picked at random, gets a
 *   full-state push-pull every `deadProbeIntervalMs`: this costs one message per interval per node,
 *   and is how two halves of a healed partition, or a restarted node that only knows a dead seed,
 *   find each other again without anyone contacting them first.
 * - Before a suspicion runs out into 'dead' the suspect gets one last direct ping carrying the
 *   accusation, so a member whose refutation gossip happened to miss us is not declared dead.
 * - Full-state merges downgrade a remote 'dead' to 'suspect' for members we hold alive, so stale
 *   views exchanged after a partition give the accused a chance to refute instead of killing them.
 *
 * Membership knows nothing of sockets: it calls peers through `MembershipNet` and serves
 * `handle(method, body)`, so the same code runs over TLS and in the simulator.
 */
import { EventEmitter } from 'node:events';
import { TesseraError } from '../errors.js';
import type { Logger } from '../log.js';
import { silentLogger } from '../log.js';
import type { PeerHandlers } from '../net/index.js';
import { MEMBER_RPC_PREFIX } from './membership-wire.js';
import { pick, randomInt, shuffle, type Clock, type RandomSource } from './clock.js';
import { BroadcastQueue } from './membership-broadcast.js';
import { compareRecords, credibleIncarnation, isProbeable, refutationIncarnation, retransmitLimit } from './membership-rules.js';
import {
  MAX_INCARNATION,
  MAX_MEMBERS,
  MAX_SYNC_RECORDS,
  MAX_UPDATES_PER_MESSAGE,
  METHODS,
  addrSchema,
  MAX_ZONE_CHARS,
  zoneSchema,
  nodeIdSchema,
  readPing,
  readPingReq,
  readPingReqReply,
  readSync,
  type MemberState,
  type WireRecord,
} from './membership-wire.js';

export type { MemberState } from './membership-wire.js';

export interface MemberInfo {
  nodeId: string;
  addr: string;
  state: MemberState;
  incarnation: number;
  capacity: number;
  used: number;
  /** Failure domain the member declared ('' for the unnamed zone of members that declare none). */
  zone: string;
  /** Clock ms of the last direct evidence (a message from the member itself); 0 if never. */
  lastSeen: number;
}

export interface MembershipNet {
  call(addr: string, method: string, body: unknown, opts: { timeoutMs: number; expectNodeId?: string }): Promise<unknown>;
}

export interface MembershipConfig {
  probeIntervalMs: number;
  probeTimeoutMs: number;
  /** Members asked to probe on our behalf after a failed direct ping. */
  indirectProbes: number;
  suspicionTimeoutMs: number;
  gossipIntervalMs: number;
  gossipFanout: number;
  /** λ in the λ·⌈log10(n+1)⌉ re-sends of each update. */
  retransmitMult: number;
  /** Updates piggybacked on one message (≤ MAX_UPDATES_PER_MESSAGE). */
  maxUpdatesPerMessage: number;
  pushPullIntervalMs: number;
  deadProbeIntervalMs: number;
  /** How long a newly dead member still receives gossip, so a live one wrongly declared can refute. */
  gossipToDeadMs: number;
  joinRetryMinMs: number;
  joinRetryMaxMs: number;
  /** Least time between two broadcasts of our own capacity/used. */
  statsIntervalMs: number;
}

/** A killed node is declared dead within ~3–4 s on loopback with these (probe + indirect + suspicion). */
export const DEFAULT_MEMBERSHIP_CONFIG: Readonly<MembershipConfig> = Object.freeze({
  probeIntervalMs: 500,
  probeTimeoutMs: 300,
  indirectProbes: 3,
  suspicionTimeoutMs: 2000,
  gossipIntervalMs: 200,
  gossipFanout: 3,
  retransmitMult: 4,
  maxUpdatesPerMessage: 16,
  pushPullIntervalMs: 10_000,
  deadProbeIntervalMs: 10_000,
  gossipToDeadMs: 5_000,
  joinRetryMinMs: 500,
  joinRetryMaxMs: 15_000,
  statsIntervalMs: 2_000,
});

const INCREDIBLE_LOG_INTERVAL_MS = 10_000;
/**
 * How long a node that no helper answers (neither ack nor nack) goes on doubting itself rather
 * than its peers. Unanswered helpers usually mean our own link is down, so targets are spared;
 * but when the helpers are dead too (the last live node of a small cluster), sparing them for
 * ever would keep dead nodes alive in our view. A node really cut off for longer then suspects
 * its peers, and their refutations undo that once it is reachable again.
 */
const MAX_SELF_DOUBT_MS = 15_000;
/** Indirect probes served at once; more are refused so a peer cannot make us fan out unboundedly. */
export const MAX_CONCURRENT_INDIRECT_PROBES = 32;
/** Bounds on configuration, so a typo cannot turn the detector into a busy loop or a flood. */
export const MIN_INTERVAL_MS = 1;
export const MAX_INTERVAL_MS = 24 * 3600 * 1000;
export const MAX_FANOUT = 64;
/** Slack over the transport's own timeout before membership gives up on a call itself. */
export const CALL_GRACE_MS = 50;
/** Quick full-state exchanges right after joining, before the regular push-pull interval. */
export const JOIN_FOLLOW_UP_SYNCS = 3;
/** Seeds plus address-book entries tried while joining. */
export const MAX_JOIN_CONTACTS = 256;

export interface MembershipEvents {
  change: [member: MemberInfo, prev: MemberState | undefined];
}

export interface MembershipOptions {
  self: { nodeId: string; addr: string; zone?: string };
  net: MembershipNet;
  clock: Clock;
  random: RandomSource;
  config?: Partial<MembershipConfig>;
  seeds: string[];
  /** Members known from a previous run; loaded as 'dead' (unknown liveness) and used as join contacts. */
  addressBook?: (Omit<MemberInfo, 'zone'> & { zone?: string })[];
  incarnation?: number;
  localStats: () => { capacity: number; used: number };
  logger?: Logger;
}

interface Member extends MemberInfo {
  statsVersion: number;
  suspectTimer: unknown;
  /** Clock ms when the member entered its current state. */
  since: number;
}

type IndirectResult = 'ack' | 'nack' | 'fail';

function validateConfig(c: MembershipConfig): void {
  const intervals: (keyof MembershipConfig)[] = [
    'probeIntervalMs',
    'probeTimeoutMs',
    'suspicionTimeoutMs',
    'gossipIntervalMs',
    'pushPullIntervalMs',
    'deadProbeIntervalMs',
    'joinRetryMinMs',
    'joinRetryMaxMs',
    'statsIntervalMs',
  ];
  for (const k of intervals) {
    const v = c[k];
    if (!(Number.isFinite(v) && v >= MIN_INTERVAL_MS && v <= MAX_INTERVAL_MS)) {
      throw new TesseraError('BAD_INPUT', `membership config ${k} must be between ${MIN_INTERVAL_MS} and ${MAX_INTERVAL_MS} ms, got ${v}`);
    }
  }
  if (!(c.gossipToDeadMs >= 0 && c.gossipToDeadMs <= MAX_INTERVAL_MS)) {
    throw new TesseraError('BAD_INPUT', `membership config gossipToDeadMs must be between 0 and ${MAX_INTERVAL_MS} ms, got ${c.gossipToDeadMs}`);
  }
  const counts: [keyof MembershipConfig, number, number][] = [
    ['indirectProbes', 0, MAX_FANOUT],
    ['gossipFanout', 0, MAX_FANOUT],
    ['retransmitMult', 1, 64],
    ['maxUpdatesPerMessage', 1, MAX_UPDATES_PER_MESSAGE],
  ];
  for (const [k, lo, hi] of counts) {
    const v = c[k];
    if (!(Number.isInteger(v) && v >= lo && v <= hi)) {
      throw new TesseraError('BAD_INPUT', `membership config ${k} must be an integer between ${lo} and ${hi}, got ${v}`);
    }
  }
  if (c.joinRetryMaxMs < c.joinRetryMinMs) {
    throw new TesseraError('BAD_INPUT', 'membership config joinRetryMaxMs must not be below joinRetryMinMs');
  }
}

function publicInfo(m: Member): MemberInfo {
  return {
    nodeId: m.nodeId,
    addr: m.addr,
    state: m.state,
    incarnation: m.incarnation,
    capacity: m.capacity,
    used: m.used,
    zone: m.zone,
    lastSeen: m.lastSeen,
  };
}

function toRecord(m: Member): WireRecord {
  return {
    nodeId: m.nodeId,
    addr: m.addr,
    state: m.state,
    incarnation: m.incarnation,
    capacity: m.capacity,
    used: m.used,
    statsVersion: m.statsVersion,
    ...(m.zone === '' ? {} : { zone: m.zone }),
  };
}

export class Membership extends EventEmitter<MembershipEvents> {
  private readonly cfg: MembershipConfig;
  private readonly net: MembershipNet;
  private readonly clock: Clock;
  private readonly random: RandomSource;
  private readonly log: Logger;
  private readonly localStats: () => { capacity: number; used: number };
  private readonly contacts: string[];
  private readonly table = new Map<string, Member>();
  private readonly me: Member;
  private readonly queue = new BroadcastQueue();
  private readonly probing = new Set<string>();
  private probeList: string[] = [];
  private probeIndex = 0;
  private readonly timers = new Map<string, unknown>();
  private running = false;
  private leaving = false;
  private joinBackoffMs: number;
  private indirectInFlight = 0;
  /** Records ignored because their incarnation was not credible, and when that was last logged. */
  private incredibleIgnored = 0;
  private incredibleLoggedAt = -Infinity;
  private lastStatsBroadcast = Number.NEGATIVE_INFINITY;
  private isolatedProbes = 0;
  /** When the current run of probes that no helper answered began. */
  private isolatedSince: number | undefined;
  private followUpSyncs = 0;
  /**
   * Bumped on every change to the table (every change is emitted, plus evictions). The member lists
   * below and the full state are rebuilt only when it moved: at a thousand members, filtering the
   * table on every gossip tick and re-encoding it on every push-pull dominated the profile.
   */
  private version = 0;
  private viewVersion = -1;
  private upOthers: Member[] = [];
  private aliveOthers: Member[] = [];
  private deadOthers: Member[] = [];
  private fullStateVersion = -1;
  private fullStateCache: WireRecord[] = [];

  constructor(opts: MembershipOptions) {
    super();
    this.cfg = { ...DEFAULT_MEMBERSHIP_CONFIG, ...(opts.config ?? {}) };
    validateConfig(this.cfg);
    const idOk = nodeIdSchema.safeParse(opts.self.nodeId);
    const addrOk = addrSchema.safeParse(opts.self.addr);
    if (!idOk.success || !addrOk.success) {
      throw new TesseraError('BAD_INPUT', `membership self must have a printable node id ≤ 128 chars and address ≤ 256 chars`);
    }
    const zone = opts.self.zone ?? '';
    if (zone !== '' && !zoneSchema.safeParse(zone).success) {
      throw new TesseraError('BAD_INPUT', `zone must be 1 to ${MAX_ZONE_CHARS} printable ASCII characters without spaces, got ${JSON.stringify(zone)}`);
    }
    const inc = opts.incarnation ?? 0;
    if (!(Number.isSafeInteger(inc) && inc >= 0 && inc <= MAX_INCARNATION)) {
      throw new TesseraError('BAD_INPUT', `incarnation must be an integer from 0 to ${MAX_INCARNATION}, got ${inc}`);
    }
    this.net = opts.net;
    this.clock = opts.clock;
    this.random = opts.random;
    this.log = opts.logger ?? silentLogger;
    this.localStats = opts.localStats;
    this.joinBackoffMs = this.cfg.joinRetryMinMs;
    const stats = this.readStats() ?? { capacity: 0, used: 0 };
    const now = this.clock.now();
    this.me = {
      nodeId: opts.self.nodeId,
      addr: opts.self.addr,
      state: 'alive',
      incarnation: inc,
      capacity: stats.capacity,
      used: stats.used,
      zone,
      lastSeen: now,
      // The clock orders our stats across restarts, when a counter alone would start over.
      statsVersion: Math.max(0, Math.floor(now)),
      suspectTimer: undefined,
      since: now,
    };
    this.table.set(this.me.nodeId, this.me);
    const contacts = new Set<string>();
    for (const s of opts.seeds) if (s !== this.me.addr && addrSchema.safeParse(s).success) contacts.add(s);
    for (const m of opts.addressBook ?? []) {
      if (m.nodeId === this.me.nodeId || this.table.size >= MAX_MEMBERS) continue;
      if (!nodeIdSchema.safeParse(m.nodeId).success || !addrSchema.safeParse(m.addr).success) continue;
      const incarnation = Number.isSafeInteger(m.incarnation) && m.incarnation >= 0 && m.incarnation <= MAX_INCARNATION ? m.incarnation : 0;
      this.table.set(m.nodeId, {
        nodeId: m.nodeId,
        addr: m.addr,
        state: m.state === 'left' ? 'left' : 'dead',
        incarnation,
        capacity: Number.isSafeInteger(m.capacity) && m.capacity >= 0 ? m.capacity : 0,
        used: Number.isSafeInteger(m.used) && m.used >= 0 ? m.used : 0,
        zone: typeof m.zone === 'string' && zoneSchema.safeParse(m.zone).success ? m.zone : '',
        lastSeen: 0,
        statsVersion: 0,
        suspectTimer: undefined,
        since: now,
      });
      if (m.addr !== this.me.addr) contacts.add(m.addr);
    }
    this.contacts = [...contacts].slice(0, MAX_JOIN_CONTACTS);
  }

  get incarnation(): number {
    return this.me.incarnation;
  }

  get nodeId(): string {
    return this.me.nodeId;
  }

  get isRunning(): boolean {
    return this.running;
  }

  start(): void {
    if (this.running) return;
    if (this.leaving) throw new TesseraError('CONFLICT', 'membership has left the cluster; create a new instance to rejoin');
    this.running = true;
    this.me.lastSeen = this.clock.now();
    // Random phases keep nodes started together from probing in lockstep.
    this.schedule('probe', this.random() * this.cfg.probeIntervalMs, () => this.probeTick());
    this.schedule('gossip', this.random() * this.cfg.gossipIntervalMs, () => this.gossipTick());
    this.schedule('pushPull', this.cfg.pushPullIntervalMs * (0.5 + this.random()), () => this.pushPullTick());
    this.schedule('deadProbe', this.cfg.deadProbeIntervalMs * (0.5 + this.random()), () => this.deadProbeTick());
    this.schedule('join', 0, () => this.joinTick());
  }

  stop(): void {
    this.running = false;
    for (const t of this.timers.values()) this.clock.clearTimeout(t);
    this.timers.clear();
    for (const m of this.table.values()) this.clearSuspicion(m);
  }

  /** Tell peers we are leaving on purpose (state 'left'), then stop. */
  async leave(): Promise<void> {
    if (!this.running) return;
    this.leaving = true;
    const prev = this.me.state;
    this.me.state = 'left';
    this.me.since = this.clock.now();
    this.queue.enqueue(toRecord(this.me));
    this.emitChange(this.me, prev);
    const targets = pick(this.random, this.view().up, Math.max(1, this.cfg.gossipFanout * 2));
    const body = { from: toRecord(this.me), updates: [toRecord(this.me)] };
    await Promise.allSettled(
      targets.map((m) =>
        this.call(m.addr, METHODS.gossip, body, { timeoutMs: this.cfg.probeTimeoutMs, expectNodeId: m.nodeId }),
      ),
    );
    this.stop();
  }

  members(): MemberInfo[] {
    this.touchSelf();
    return [...this.table.values()].map(publicInfo);
  }

  /** Members believed up: alive or suspect (a suspect still holds its data), self included. */
  live(): MemberInfo[] {
    this.touchSelf();
    return [...this.table.values()].filter((m) => isProbeable(m.state)).map(publicInfo);
  }

  get(nodeId: string): MemberInfo | undefined {
    this.touchSelf();
    const m = this.table.get(nodeId);
    return m === undefined ? undefined : publicInfo(m);
  }

  /** Membership answers the 'member.' part of the peer protocol; the simulator calls handle() directly. */
  registerPeerHandlers(handlers: PeerHandlers): void {
    handlers.register(MEMBER_RPC_PREFIX, async (req) => ({ body: await this.handle(req.method, req.body, { peerNodeId: req.peer.nodeId }) }));
  }

  /** Serve one incoming membership RPC (method starts with 'member.'). */
  async handle(method: string, body: unknown, ctx?: { peerNodeId?: string }): Promise<unknown> {
    if (!this.running) throw new TesseraError('UNAVAILABLE', `membership of ${this.me.nodeId} is not running`);
    switch (method) {
      case METHODS.ping:
      case METHODS.gossip: {
        const b = readPing(body, method);
        this.checkPeer(b.from.nodeId, ctx);
        const fixes = this.receive(b.from, b.updates);
        return { from: toRecord(this.me), updates: this.takeUpdates(b.from.nodeId, fixes) };
      }
      case METHODS.pingReq: {
        const b = readPingReq(body, method);
        this.checkPeer(b.from.nodeId, ctx);
        const fixes = this.receive(b.from, b.updates);
        if (this.indirectInFlight >= MAX_CONCURRENT_INDIRECT_PROBES) {
          throw new TesseraError('UNAVAILABLE', `too many indirect probes in flight (max ${MAX_CONCURRENT_INDIRECT_PROBES}); retry later`);
        }
        this.indirectInFlight++;
        let ok: boolean;
        try {
          ok = await this.ping(b.target.nodeId, b.target.addr);
        } finally {
          this.indirectInFlight--;
        }
        return { from: toRecord(this.me), ok, updates: this.takeUpdates(b.from.nodeId, fixes) };
      }
      case METHODS.sync: {
        const b = readSync(body, method);
        this.checkPeer(b.from.nodeId, ctx);
        this.receive(b.from, []);
        this.mergeFull(b.members);
        return { from: toRecord(this.me), members: this.fullState() };
      }
      default:
        throw new TesseraError('BAD_INPUT', `unknown membership method ${JSON.stringify(method.slice(0, 64))}`);
    }
  }

  // ---- timers -------------------------------------------------------------------------------

  private schedule(name: string, ms: number, fn: () => void): void {
    if (!this.running) return;
    const old = this.timers.get(name);
    if (old !== undefined) this.clock.clearTimeout(old);
    this.timers.set(
      name,
      this.clock.setTimeout(() => {
        this.timers.delete(name);
        if (this.running) fn();
      }, ms),
    );
  }

  private probeTick(): void {
    this.schedule('probe', this.cfg.probeIntervalMs, () => this.probeTick());
    this.refreshStats();
    const target = this.nextProbeTarget();
    if (target !== undefined) void this.probe(target).catch((e) => this.log.error({ err: e }, 'membership probe failed unexpectedly'));
  }

  private gossipTick(): void {
    this.schedule('gossip', this.cfg.gossipIntervalMs, () => this.gossipTick());
    if (this.queue.size === 0) return;
    const now = this.clock.now();
    const v = this.view();
    let candidates: readonly Member[] = v.up;
    for (const m of v.dead) {
      if (now - m.since < this.cfg.gossipToDeadMs) {
        if (candidates === v.up) candidates = [...v.up];
        (candidates as Member[]).push(m);
      }
    }
    for (const m of pick(this.random, candidates, this.cfg.gossipFanout)) {
      const updates = this.takeUpdates(m.nodeId);
      if (updates.length === 0) break;
      void this.exchange(m.nodeId, m.addr, METHODS.gossip, updates, this.cfg.probeTimeoutMs);
    }
  }

  private pushPullTick(): void {
    const early = this.followUpSyncs > 0;
    if (early) this.followUpSyncs--;
    const wait = early ? this.cfg.probeIntervalMs * (1 + this.random()) : this.cfg.pushPullIntervalMs;
    this.schedule('pushPull', wait, () => this.pushPullTick());
    const stray = this.strayContact();
    if (stray !== undefined) void this.sync(stray, undefined);
    const alive = this.view().alive;
    if (alive.length === 0) return;
    const m = alive[randomInt(this.random, alive.length)]!;
    void this.sync(m.addr, m.nodeId);
  }

  /**
   * A seed (or remembered address) at which no member we hold up lives. Joining stops once any
   * member is known, so a node whose seed was not listening yet, but which another newcomer
   * reached first, would otherwise stay in an island its seed never hears of; one sync with such
   * a contact per push-pull merges the two views. Costs nothing once every contact is up.
   */
  private strayContact(): string | undefined {
    if (this.contacts.length === 0) return undefined;
    const upAddrs = new Set(this.view().up.map((m) => m.addr));
    const stray = this.contacts.filter((a) => !upAddrs.has(a));
    return stray.length === 0 ? undefined : stray[randomInt(this.random, stray.length)];
  }

  private deadProbeTick(): void {
    this.schedule('deadProbe', this.cfg.deadProbeIntervalMs, () => this.deadProbeTick());
    const dead = this.view().dead;
    if (dead.length === 0) return;
    const m = dead[randomInt(this.random, dead.length)]!;
    void this.sync(m.addr, m.nodeId);
  }

  /** While we know no other live member, keep trying the seeds (and address book) with backoff. */
  private joinTick(): void {
    const alone = this.view().up.length === 0;
    if (!alone || this.contacts.length === 0) {
      this.joinBackoffMs = this.cfg.joinRetryMinMs;
      this.schedule('join', this.cfg.joinRetryMaxMs, () => this.joinTick());
      return;
    }
    void this.joinAttempt().then((joined) => {
      if (!this.running) return;
      if (joined) {
        this.joinBackoffMs = this.cfg.joinRetryMinMs;
        // Members that joined at the same moment are not in the seed's list yet: a few quick
        // push-pulls with whoever we now know find them faster than gossip alone.
        this.followUpSyncs = JOIN_FOLLOW_UP_SYNCS;
        this.schedule('pushPull', this.cfg.probeIntervalMs * (1 + this.random()), () => this.pushPullTick());
        this.schedule('join', this.cfg.joinRetryMaxMs, () => this.joinTick());
      } else {
        const wait = this.joinBackoffMs * (0.75 + 0.5 * this.random());
        this.joinBackoffMs = Math.min(this.cfg.joinRetryMaxMs, this.joinBackoffMs * 2);
        this.schedule('join', wait, () => this.joinTick());
      }
    });
  }

  private async joinAttempt(): Promise<boolean> {
    for (const addr of shuffle(this.random, [...this.contacts])) {
      if (!this.running) return false;
      if (await this.sync(addr, undefined)) {
        this.log.info({ seed: addr, members: this.table.size }, 'joined the cluster');
        return true;
      }
    }
    this.log.debug({ contacts: this.contacts.length }, 'no seed answered; retrying with backoff');
    return false;
  }

  // ---- probing ------------------------------------------------------------------------------

  private nextProbeTarget(): Member | undefined {
    for (let attempts = 0; attempts < 2; attempts++) {
      while (this.probeIndex < this.probeList.length) {
        const id = this.probeList[this.probeIndex++]!;
        const m = this.table.get(id);
        if (m !== undefined && isProbeable(m.state) && !this.probing.has(id)) return m;
      }
      this.probeList = shuffle(
        this.random,
        this.view().up.map((m) => m.nodeId),
      );
      this.probeIndex = 0;
    }
    return undefined;
  }

  private async probe(target: Member): Promise<void> {
    const { nodeId, addr, incarnation } = target;
    this.probing.add(nodeId);
    try {
      if (await this.ping(nodeId, addr)) return;
      if (!this.running) return;
      const helpers = pick(
        this.random,
        this.view().alive.filter((m) => m.nodeId !== nodeId),
        this.cfg.indirectProbes,
      );
      if (helpers.length > 0) {
        const results = await Promise.all(helpers.map((h) => this.indirect(h, nodeId, addr)));
        if (!this.running || results.includes('ack')) return;
        if (!results.includes('nack')) {
          this.isolatedProbes++;
          this.isolatedSince ??= this.clock.now();
          if (this.clock.now() - this.isolatedSince < MAX_SELF_DOUBT_MS) {
            this.log.warn({ target: nodeId, helpers: helpers.length, consecutive: this.isolatedProbes }, 'no member answered an indirect probe; suspecting ourselves, not the target');
            return;
          }
          this.log.warn({ target: nodeId, consecutive: this.isolatedProbes }, `no member has answered an indirect probe for ${MAX_SELF_DOUBT_MS / 1000} s: the helpers are most likely down too; suspecting the target`);
        } else {
          this.isolatedProbes = 0;
          this.isolatedSince = undefined;
        }
      }
      this.suspect(nodeId, incarnation);
    } finally {
      this.probing.delete(nodeId);
    }
  }

  /** Direct ping; true on a valid ack from the expected node. */
  private async ping(nodeId: string, addr: string): Promise<boolean> {
    return this.exchange(nodeId, addr, METHODS.ping, this.takeUpdates(nodeId), this.cfg.probeTimeoutMs);
  }

  /**
   * net.call with our own deadline on top of the transport's: a transport that never settles must
   * not wedge a probe, a join or a leave.
   */
  private call(addr: string, method: string, body: unknown, opts: { timeoutMs: number; expectNodeId?: string }): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const timer = this.clock.setTimeout(
        () => reject(new TesseraError('TIMEOUT', `${method} to ${addr} got no answer within ${opts.timeoutMs} ms`)),
        opts.timeoutMs + CALL_GRACE_MS,
      );
      this.net.call(addr, method, body, opts).then(
        (v) => {
          this.clock.clearTimeout(timer);
          resolve(v);
        },
        (e: unknown) => {
          this.clock.clearTimeout(timer);
          reject(e);
        },
      );
    });
  }

  private async exchange(nodeId: string, addr: string, method: string, updates: WireRecord[], timeoutMs: number): Promise<boolean> {
    let reply: unknown;
    try {
      reply = await this.call(addr, method, { from: toRecord(this.me), updates }, { timeoutMs, expectNodeId: nodeId });
    } catch {
      return false;
    }
    if (!this.running) return false;
    try {
      const ack = readPing(reply, `${method} reply`);
      if (ack.from.nodeId !== nodeId) return false;
      for (const fix of this.receive(ack.from, ack.updates)) this.queue.enqueue(fix);
      return true;
    } catch (e) {
      this.log.warn({ peer: nodeId, err: e }, 'dropping malformed membership reply');
      return false;
    }
  }

  private async indirect(helper: Member, nodeId: string, addr: string): Promise<IndirectResult> {
    let reply: unknown;
    try {
      reply = await this.call(
        helper.addr,
        METHODS.pingReq,
        { from: toRecord(this.me), target: { nodeId, addr }, updates: this.takeUpdates(helper.nodeId) },
        { timeoutMs: this.cfg.probeTimeoutMs * 2, expectNodeId: helper.nodeId },
      );
    } catch {
      return 'fail';
    }
    if (!this.running) return 'fail';
    try {
      const r = readPingReqReply(reply, 'member.ping-req reply');
      if (r.from.nodeId !== helper.nodeId) return 'fail';
      for (const fix of this.receive(r.from, r.updates)) this.queue.enqueue(fix);
      return r.ok ? 'ack' : 'nack';
    } catch (e) {
      this.log.warn({ peer: helper.nodeId, err: e }, 'dropping malformed membership reply');
      return 'fail';
    }
  }

  /** Full-state push-pull; true when the peer answered. */
  private async sync(addr: string, nodeId: string | undefined): Promise<boolean> {
    let reply: unknown;
    try {
      reply = await this.call(
        addr,
        METHODS.sync,
        { from: toRecord(this.me), members: this.fullState() },
        nodeId === undefined ? { timeoutMs: this.cfg.probeTimeoutMs * 2 } : { timeoutMs: this.cfg.probeTimeoutMs * 2, expectNodeId: nodeId },
      );
    } catch {
      return false;
    }
    if (!this.running) return false;
    try {
      const r = readSync(reply, 'member.sync reply');
      if (nodeId !== undefined && r.from.nodeId !== nodeId) return false;
      this.receive(r.from, []);
      this.mergeFull(r.members);
      return true;
    } catch (e) {
      this.log.warn({ peer: addr, err: e }, 'dropping malformed membership reply');
      return false;
    }
  }

  private suspect(nodeId: string, incarnation: number): void {
    const m = this.table.get(nodeId);
    // The member may have refuted (or been declared otherwise) while the probe was in flight.
    if (m === undefined || m.state !== 'alive' || m.incarnation !== incarnation) return;
    this.transition(m, 'suspect', incarnation);
    this.log.info({ node: nodeId, incarnation }, 'member suspected');
  }

  private startSuspicion(m: Member): void {
    this.clearSuspicion(m);
    if (!this.running) return;
    const inc = m.incarnation;
    m.suspectTimer = this.clock.setTimeout(() => {
      m.suspectTimer = undefined;
      if (!this.running || this.table.get(m.nodeId) !== m) return;
      if (m.state === 'suspect' && m.incarnation === inc) void this.confirmDeath(m, inc);
    }, this.cfg.suspicionTimeoutMs);
  }

  /**
   * One last direct ping, carrying the accusation, before declaring a suspect dead: if the refutation
   * went round while we were not among its gossip targets, the member answers with it now and the
   * false 'dead' (and the repair it would set off) never happens. Costs at most one probe timeout.
   */
  private async confirmDeath(m: Member, inc: number): Promise<void> {
    const answered = await this.ping(m.nodeId, m.addr);
    if (!this.running || this.table.get(m.nodeId) !== m || m.state !== 'suspect' || m.incarnation !== inc) return;
    if (answered) {
      this.startSuspicion(m);
      return;
    }
    this.transition(m, 'dead', inc);
    this.log.info({ node: m.nodeId, incarnation: inc }, 'member declared dead');
  }

  private clearSuspicion(m: Member): void {
    if (m.suspectTimer !== undefined) {
      this.clock.clearTimeout(m.suspectTimer);
      m.suspectTimer = undefined;
    }
  }

  /** Our own verdict about a member: apply, gossip, notify. */
  private transition(m: Member, state: MemberState, incarnation: number): void {
    const prev = m.state;
    m.state = state;
    m.incarnation = incarnation;
    m.since = this.clock.now();
    if (state === 'suspect') this.startSuspicion(m);
    else this.clearSuspicion(m);
    this.queue.enqueue(toRecord(m));
    this.emitChange(m, prev);
  }

  // ---- merging what peers tell us -------------------------------------------------------------

  private checkPeer(claimed: string, ctx: { peerNodeId?: string } | undefined): void {
    if (ctx?.peerNodeId !== undefined && ctx.peerNodeId !== claimed) {
      throw new TesseraError('AUTH', `membership message claims to be from ${claimed} but the connection is authenticated as ${ctx.peerNodeId}`);
    }
  }

  /**
   * Apply a peer's header and updates. Returns our newer records about members the peer is behind
   * on, accusations first: an accuser that missed the accused's refutation (its gossip already
   * spent) would otherwise let its suspicion run out into a false 'dead'.
   */
  private receive(from: WireRecord, updates: WireRecord[]): WireRecord[] {
    this.apply(from, true, false);
    const fixes: WireRecord[] = [];
    for (const u of updates) {
      if (this.apply(u, false, false) && fixes.length < this.cfg.maxUpdatesPerMessage) {
        const ours = this.table.get(u.nodeId);
        if (ours !== undefined) fixes.push(toRecord(ours));
      }
    }
    return fixes;
  }

  private mergeFull(records: WireRecord[]): void {
    for (const r of records) this.apply(r, false, true);
  }

  /** Merge one record; true when ours is strictly newer (the sender is behind). */
  private apply(rec: WireRecord, direct: boolean, fromSync: boolean): boolean {
    if (rec.nodeId === this.me.nodeId) {
      this.aboutSelf(rec);
      return compareRecords(rec.incarnation, rec.state, this.me.incarnation, this.me.state) < 0;
    }
    const now = this.clock.now();
    let m = this.table.get(rec.nodeId);
    if (m === undefined) {
      if (this.table.size >= MAX_MEMBERS && !this.evictOne()) {
        this.log.warn({ node: rec.nodeId, max: MAX_MEMBERS }, 'member table full; ignoring a new member');
        return false;
      }
      m = { ...rec, zone: rec.zone ?? '', lastSeen: direct ? now : 0, suspectTimer: undefined, since: now };
      this.table.set(m.nodeId, m);
      if (m.state === 'suspect') this.startSuspicion(m);
      // A member first heard of in a full-state exchange is old news to the peer that sent it, and
      // re-gossiping a whole member list would flood every queue when many nodes join at once.
      if (!fromSync) this.queue.enqueue(toRecord(m));
      this.emitChange(m, undefined);
      return false;
    }
    if (direct) m.lastSeen = now;
    if (!direct && !credibleIncarnation(m.incarnation, rec.incarnation)) {
      this.noteIncredible(rec, m.incarnation);
      return false;
    }
    if (direct && !credibleIncarnation(rec.incarnation, m.incarnation)) {
      // What we hold is far ahead of what the member itself says: a forged rumour got in (as a
      // new member, where there was nothing to compare with). The member's own word wins.
      this.noteIncredible(toRecord(m), rec.incarnation);
      this.overwrite(m, rec, rec.state, now);
      return false;
    }
    // A remote full state may be stale by a whole partition: let an accused member we hold as up
    // refute within the suspicion timeout instead of dying on hearsay.
    const state: MemberState = fromSync && rec.state === 'dead' && isProbeable(m.state) ? 'suspect' : rec.state;
    const cmp = compareRecords(rec.incarnation, state, m.incarnation, m.state);
    if (cmp > 0) {
      this.overwrite(m, rec, state, now);
    } else if (cmp === 0 && state === 'alive' && rec.statsVersion > m.statsVersion) {
      m.capacity = rec.capacity;
      m.used = rec.used;
      m.zone = rec.zone ?? '';
      m.statsVersion = rec.statsVersion;
      if (direct && rec.addr !== m.addr) m.addr = rec.addr;
      this.queue.enqueue(toRecord(m));
      this.emitChange(m, m.state);
    } else if (cmp === 0 && direct && rec.addr !== m.addr) {
      // Only the member itself, over an authenticated connection, may move its address.
      m.addr = rec.addr;
      this.emitChange(m, m.state);
    }
    return cmp < 0;
  }

  /** Takes `rec` (with `state`) as what we now believe about `m`. */
  private overwrite(m: Member, rec: WireRecord, state: MemberState, now: number): void {
    const prev = m.state;
    m.incarnation = rec.incarnation;
    m.addr = rec.addr;
    if (state !== prev) m.since = now;
    m.state = state;
    if (rec.statsVersion >= m.statsVersion) {
      m.capacity = rec.capacity;
      m.used = rec.used;
      m.zone = rec.zone ?? '';
      m.statsVersion = rec.statsVersion;
    }
    if (state === 'suspect') this.startSuspicion(m);
    else this.clearSuspicion(m);
    this.queue.enqueue(toRecord(m));
    if (prev !== state) this.log.info({ node: m.nodeId, state, incarnation: m.incarnation, prev }, 'member state changed');
    this.emitChange(m, prev);
  }

  private aboutSelf(rec: WireRecord): void {
    if (this.leaving) return;
    if (rec.state === 'alive' ? rec.incarnation <= this.me.incarnation : rec.incarnation < this.me.incarnation) return;
    // Accused (or someone holds a newer 'alive' of ours from before a restart): outbid it, but
    // never to a value far beyond our own, which only an accuser could have chosen.
    const next = refutationIncarnation(this.me.incarnation, rec.incarnation);
    if (next === undefined) {
      this.noteIncredible(rec, this.me.incarnation);
      return;
    }
    const prevInc = this.me.incarnation;
    this.me.incarnation = next;
    this.queue.enqueue(toRecord(this.me));
    this.log.info({ heard: rec.state, heardIncarnation: rec.incarnation, incarnation: this.me.incarnation, prevIncarnation: prevInc }, 'refuting');
    this.emitChange(this.me, this.me.state);
  }

  /** One line per interval: a peer repeating a forged record must not flood the log. */
  private noteIncredible(rec: WireRecord, held: number): void {
    this.incredibleIgnored++;
    const now = this.clock.now();
    if (now - this.incredibleLoggedAt < INCREDIBLE_LOG_INTERVAL_MS) return;
    this.incredibleLoggedAt = now;
    this.log.warn(
      { node: rec.nodeId, state: rec.state, heardIncarnation: rec.incarnation, heldIncarnation: held, ignoredSoFar: this.incredibleIgnored },
      'ignoring a membership record whose incarnation jumps far beyond the one this node holds',
    );
  }

  private evictOne(): boolean {
    let victim: Member | undefined;
    for (const m of this.table.values()) {
      if (isProbeable(m.state) || m === this.me) continue;
      if (victim === undefined || m.since < victim.since) victim = m;
    }
    if (victim === undefined) return false;
    this.clearSuspicion(victim);
    this.table.delete(victim.nodeId);
    this.version++;
    return true;
  }

  // ---- outgoing state ---------------------------------------------------------------------------

  /**
   * Piggyback: an accusation against the recipient first (so it can refute), then corrections of
   * what the recipient just told us, then the queue.
   */
  private takeUpdates(toNodeId: string, fixes: WireRecord[] = []): WireRecord[] {
    const out: WireRecord[] = [];
    const about = this.table.get(toNodeId);
    if (about !== undefined && about !== this.me && about.state !== 'alive') out.push(toRecord(about));
    for (const f of fixes) if (out.length < this.cfg.maxUpdatesPerMessage && f.nodeId !== toNodeId) out.push(f);
    const n = this.table.size;
    for (const r of this.queue.take(this.cfg.maxUpdatesPerMessage - out.length, retransmitLimit(this.cfg.retransmitMult, n), toNodeId)) {
      out.push(r);
    }
    return out;
  }

  /** Self first, then live members, then the most recently changed dead and left, bounded. */
  /** Shared between replies until the table changes; the transport only reads it. */
  private fullState(): WireRecord[] {
    if (this.fullStateVersion === this.version) return this.fullStateCache;
    const up: WireRecord[] = [];
    const down: Member[] = [];
    for (const m of this.table.values()) {
      if (m === this.me) continue;
      if (isProbeable(m.state)) up.push(toRecord(m));
      else down.push(m);
    }
    down.sort((a, b) => b.since - a.since);
    const out = [toRecord(this.me), ...up, ...down.map(toRecord)];
    this.fullStateCache = out.length > MAX_SYNC_RECORDS ? out.slice(0, MAX_SYNC_RECORDS) : out;
    this.fullStateVersion = this.version;
    return this.fullStateCache;
  }

  /** Other members by state, in table order; shared arrays that callers must not modify. */
  private view(): { up: readonly Member[]; alive: readonly Member[]; dead: readonly Member[] } {
    if (this.viewVersion !== this.version) {
      const up: Member[] = [];
      const alive: Member[] = [];
      const dead: Member[] = [];
      for (const m of this.table.values()) {
        if (m === this.me) continue;
        if (isProbeable(m.state)) up.push(m);
        if (m.state === 'alive') alive.push(m);
        else if (m.state === 'dead') dead.push(m);
      }
      this.upOthers = up;
      this.aliveOthers = alive;
      this.deadOthers = dead;
      this.viewVersion = this.version;
    }
    return { up: this.upOthers, alive: this.aliveOthers, dead: this.deadOthers };
  }

  private touchSelf(): void {
    if (this.running) this.me.lastSeen = this.clock.now();
  }

  private readStats(): { capacity: number; used: number } | undefined {
    try {
      const s = this.localStats();
      const ok = (v: number) => Number.isFinite(v) && v >= 0;
      if (!ok(s.capacity) || !ok(s.used)) return undefined;
      return { capacity: Math.min(Number.MAX_SAFE_INTEGER, Math.floor(s.capacity)), used: Math.min(Number.MAX_SAFE_INTEGER, Math.floor(s.used)) };
    } catch (e) {
      this.log?.warn({ err: e }, 'local stats unavailable');
      return undefined;
    }
  }

  private refreshStats(): void {
    const now = this.clock.now();
    if (now - this.lastStatsBroadcast < this.cfg.statsIntervalMs) return;
    const s = this.readStats();
    if (s === undefined || (s.capacity === this.me.capacity && s.used === this.me.used)) return;
    this.lastStatsBroadcast = now;
    this.me.capacity = s.capacity;
    this.me.used = s.used;
    this.me.statsVersion = Math.max(this.me.statsVersion + 1, Math.floor(now));
    this.queue.enqueue(toRecord(this.me));
    this.emitChange(this.me, this.me.state);
  }

  private emitChange(m: Member, prev: MemberState | undefined): void {
    this.version++;
    try {
      this.emit('change', publicInfo(m), prev);
    } catch (e) {
      this.log.error({ err: e }, 'a membership change listener threw');
    }
  }
}
