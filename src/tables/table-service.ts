/**
 * The replicated table service of one full node. Each partition lives on R full nodes chosen by
 * rendezvous placement; writes return once a majority of them hold the entry durably, reads ask a
 * majority and repair replicas that answered with an older version, and a periodic anti-entropy
 * round compares digest trees with the other holders and moves only the entries that differ.
 * Partitions this node no longer holds after a membership change are handed to their new holders
 * and dropped only once every one of them has acknowledged a durable merge.
 */
import { randomBytes } from 'node:crypto';
import { describeFailures, Placer, reachQuorum, type QuorumOutcome, type WeightedNode } from '../cluster/index.js';
import { majorityQuorum, type HybridClock } from '../content/index.js';
import { TesseraError, isTesseraError, unavailable } from '../errors.js';
import type { Logger } from '../log.js';
import { batchEntries, compareVersions, entryWireBytes, fromWire, makeEntry, toWire, verifyEntry, type EntryKey, type TableEntry, type WireEntry } from './entry.js';
import { EntryStore, MAX_LEAF_KEYS, MAX_SCAN_BYTES, MAX_SCAN_LIMIT, type MergeResult } from './entry-store.js';
import { childrenOf, diffKeyLists, digestCount, differing, TREE_DEPTH, type KeyHash } from './digest-tree.js';
import { callerProof, fullNodeProof, proofMatches, PROOF_NONCE_BYTES } from './full-nodes.js';
import { checkPartition, encodeToken, decodeToken, partitionOf, partitionPlacementId, PARTITION_COUNT, SEAL_SORT_KEY } from './keys.js';
import { mergePages, mergePoint, type Repair } from './page-merge.js';
import * as rpc from './rpc.js';
import { WriteBatcher } from './write-batcher.js';

export const DEFAULT_TABLE_REPLICAS = 3;
export const DEFAULT_TABLE_CALL_TIMEOUT_MS = 10_000;
export const DEFAULT_TABLE_SYNC_INTERVAL_MS = 30_000;
/** Storage-only answers are trusted this long before a member is asked again (it may be re-keyed). */
export const NOT_FULL_RECHECK_MS = 60_000;
/** Merged pages one listing reads while skipping deletions before it returns what it has. */
export const MAX_SCAN_ROUNDS = 16;
/** Entries one coalesced write batch carries: what one merge request may. */
export const WRITE_BATCH_MAX_ENTRIES = rpc.MAX_MERGE_ENTRIES;
/** Bytes one coalesced write batch carries: one merge request's budget. */
export const WRITE_BATCH_MAX_BYTES = MAX_SCAN_BYTES;
const SEAL_VALUE = Buffer.from('sealed', 'utf8');

/** A write refused because its partition key is sealed (a deleted bucket's objects). */
export function isSealedError(e: unknown): boolean {
  return isTesseraError(e, 'NOT_FOUND') && e.details?.['sealed'] === true;
}

/** What a key in a versions request costs beyond its strings (field names, framing). */
const VERSION_KEY_OVERHEAD_BYTES = 16;
/** Callers' expected proofs kept (one per peer); past this the map starts afresh. */
const MAX_CACHED_PROOFS = 1024;
/** Members asked at once whether they hold the data key. */
const HELLO_CONCURRENCY = 8;

export interface TableNet {
  readonly selfId: string;
  /** Live members, this node included; the service keeps only those that prove they hold the data key. */
  live(): readonly WeightedNode[];
  call(nodeId: string, method: string, body: unknown, opts: { timeoutMs: number }): Promise<unknown>;
}

export interface TableServiceOptions {
  readonly net: TableNet;
  readonly store: EntryStore;
  /** From deriveClusterKeys(dataKey).tableMacKey. */
  readonly macKey: Buffer;
  readonly clock: HybridClock;
  readonly replicas?: number;
  readonly callTimeoutMs?: number;
  readonly syncIntervalMs?: number;
  readonly log: Logger;
}

export interface ListOptions {
  readonly prefix?: string;
  /** Continuation token from a previous page. */
  readonly token?: string;
  /** Start after this sort key (what `--after KEY` passes). */
  readonly after?: string;
  readonly limit: number;
}

export interface ListPage {
  readonly entries: TableEntry[];
  /** Pass back to get the next page; null at the end. */
  readonly token: string | null;
}

export interface TableCounters {
  writes: number;
  reads: number;
  scans: number;
  repairsSent: number;
  syncRounds: number;
  /** Entries fetched from other replicas by anti-entropy. */
  entriesPulled: number;
  /** Entries sent to other replicas by anti-entropy and handoff. */
  entriesPushed: number;
  partitionsDropped: number;
  /** Entries from other nodes (writes, repairs, anti-entropy) that were newer than what this node held. */
  entriesApplied: number;
  refusedEntries: number;
}

export interface TableStatus {
  readonly fullNodes: number;
  readonly replicas: number;
  /** Partitions with entries on this node. */
  readonly partitionsHeld: number;
  readonly counters: TableCounters;
  /** Client-write batches this node sent: how many, the entries they carried, the largest. */
  readonly writeBatches: { batches: number; entries: number; largest: number };
  /** This node's table-store transactions: how many, the merges and writes they carried, the most in one. */
  readonly storeCommits: { commits: number; jobs: number; largest: number };
  /** Set when fewer full nodes than the replica count are live. */
  readonly warning?: string;
}

interface Known {
  full: boolean;
  at: number;
}

/** A client write waiting for its batch; `want`: the version it replaces is asked for. */
interface WriteItem {
  readonly e: TableEntry;
  readonly want: boolean;
}

interface WriteOutcome {
  /** A seal refused it. */
  sealed: boolean;
  /** For a write that asked: the live version it replaced (null for none or a deletion). */
  replaced?: TableEntry | null;
}

/** What one holder answered to a client write batch. */
interface HolderWrite {
  readonly sealed: readonly number[];
  /** Per index asked, what the holder held before the write. */
  readonly held: ReadonlyArray<TableEntry | null>;
}

export class TableService {
  readonly counters: TableCounters = {
    writes: 0, reads: 0, scans: 0, repairsSent: 0, syncRounds: 0, entriesPulled: 0, entriesPushed: 0, partitionsDropped: 0, entriesApplied: 0, refusedEntries: 0,
  };
  readonly #o: TableServiceOptions;
  readonly #r: number;
  readonly #timeoutMs: number;
  readonly #auth: Buffer;
  readonly #known = new Map<string, Known>();
  readonly #proofs = new Map<string, Buffer>();
  /**
   * Version reads, coalesced per holder as writes are per partition (the batcher's key is a
   * number given to each holder once; holders are members, so the map stays as small as the
   * membership).
   */
  readonly #versionBatches: WriteBatcher<{ nodeId: string; key: EntryKey }, Buffer | null>;
  readonly #holderBatch = new Map<string, number>();
  #placer: Placer | undefined;
  /** Holders of each partition under #placer. */
  readonly #placed = new Map<number, readonly string[]>();
  /** Client writes, coalesced per partition. */
  readonly #writes: WriteBatcher<WriteItem, WriteOutcome>;
  /**
   * Whether each other full node serves table.write-held, as last learnt from table.features. A
   * node that does not is asked again after NOT_FULL_RECHECK_MS (or when it comes back), since it
   * may have been upgraded; one probe per node at a time.
   */
  readonly #writeHeld = new Map<string, { serves: boolean; at: number }>();
  readonly #featureProbes = new Map<string, Promise<void>>();
  #timer: NodeJS.Timeout | undefined;
  #round: Promise<void> | undefined;
  #stopped = false;

  constructor(o: TableServiceOptions) {
    this.#o = o;
    this.#r = o.replicas ?? DEFAULT_TABLE_REPLICAS;
    if (!Number.isInteger(this.#r) || this.#r < 1 || this.#r > 16) throw new TesseraError('BAD_INPUT', `table replicas must be 1..16, got ${this.#r}`);
    this.#timeoutMs = o.callTimeoutMs ?? DEFAULT_TABLE_CALL_TIMEOUT_MS;
    this.#auth = callerProof(o.macKey, o.net.selfId);
    this.#known.set(o.net.selfId, { full: true, at: Infinity });
    this.#versionBatches = new WriteBatcher({
      flush: (_holder, items) => this.#sendVersions(items),
      sizeOf: ({ key }) => VERSION_KEY_OVERHEAD_BYTES + key.table.length + Buffer.byteLength(key.pk) + Buffer.byteLength(key.sk),
      maxEntries: rpc.MAX_VERSION_KEYS,
      maxBytes: MAX_SCAN_BYTES,
    });
    this.#writes = new WriteBatcher<WriteItem, WriteOutcome>({
      flush: (p, items) => this.#writeBatch(p, items),
      sizeOf: (it) => entryWireBytes(it.e),
      maxEntries: WRITE_BATCH_MAX_ENTRIES,
      maxBytes: WRITE_BATCH_MAX_BYTES,
      // The held versions come back in one reply: each asked for may be as large as an entry can be.
      costOf: (it) => (it.want ? 1 : 0),
      maxCost: rpc.MAX_HELD_PER_WRITE,
    });
  }

  /** Batches sent and entries they carried, for tests and status. */
  get writeBatches(): { batches: number; entries: number; largest: number } {
    return { ...this.#writes.stats };
  }

  get store(): EntryStore {
    return this.#o.store;
  }

  start(): void {
    const every = this.#o.syncIntervalMs ?? DEFAULT_TABLE_SYNC_INTERVAL_MS;
    const tick = () => {
      this.#timer = setTimeout(() => {
        void this.#syncLogged().finally(() => {
          if (!this.#stopped) tick();
        });
      }, every);
      this.#timer.unref();
    };
    tick();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
    await this.#round?.catch(() => undefined);
  }

  /** A member came (back): ask it again whether it holds the data key, and sync soon. */
  peerUp(nodeId: string): void {
    const k = this.#known.get(nodeId);
    if (k && !k.full) this.#known.delete(nodeId);
    // It may come back as another version.
    this.#writeHeld.delete(nodeId);
    if (this.#stopped) return;
    setTimeout(() => void this.#syncLogged(), 200).unref();
  }

  /** A round from a timer: nobody awaits it, so a failure is logged here rather than left unhandled (which ends the process). */
  #syncLogged(): Promise<void> {
    return this.syncNow().catch((err: unknown) => this.#o.log.warn({ err }, 'table anti-entropy round failed; the next one retries'));
  }

  status(): TableStatus {
    const n = this.#fullLive().length;
    let held = 0;
    for (let p = 0; p < PARTITION_COUNT; p++) if (digestCount(this.#o.store.root(p)) > 0) held++;
    return {
      fullNodes: n,
      replicas: this.#r,
      partitionsHeld: held,
      counters: { ...this.counters },
      writeBatches: this.writeBatches,
      storeCommits: this.#o.store.commits,
      ...(n < this.#r ? { warning: `metadata redundancy is below ${this.#r}: only ${n} live node(s) hold the data key, so each holds every table partition; add full nodes` } : {}),
    };
  }

  // ---- placement ----

  #fullLive(): WeightedNode[] {
    return this.#o.net.live().filter((n) => this.#known.get(n.nodeId)?.full === true).map((n) => ({ ...n, weight: 1 }));
  }

  /** Learns which live members hold the data key; unknown ones are asked before anything is placed. */
  discover(): Promise<void> {
    return this.#discover();
  }

  async #discover(): Promise<void> {
    const now = Date.now();
    const unknown = this.#o.net.live().filter((n) => {
      const k = this.#known.get(n.nodeId);
      return k === undefined || (!k.full && now - k.at > NOT_FULL_RECHECK_MS);
    });
    for (let i = 0; i < unknown.length; i += HELLO_CONCURRENCY) {
      await Promise.all(unknown.slice(i, i + HELLO_CONCURRENCY).map((n) => this.#hello(n.nodeId)));
    }
  }

  async #hello(nodeId: string): Promise<void> {
    const nonce = randomBytes(PROOF_NONCE_BYTES);
    try {
      const reply = rpc.parseBody(rpc.helloReply, await this.#o.net.call(nodeId, rpc.TABLE_METHODS.hello, { nonce }, { timeoutMs: this.#timeoutMs }), 'table.hello');
      const full = proofMatches(fullNodeProof(this.#o.macKey, nodeId, nonce), reply.proof);
      if (!full) this.#o.log.warn({ peer: nodeId }, 'member answered the full-node challenge with a wrong proof; it gets no table data');
      this.#known.set(nodeId, { full, at: Date.now() });
    } catch (err) {
      // A storage-only node has no table service; one that is merely unreachable is asked again next time.
      if (isTesseraError(err, 'BAD_INPUT') || isTesseraError(err, 'AUTH')) this.#known.set(nodeId, { full: false, at: Date.now() });
      else this.#o.log.debug({ err, peer: nodeId }, 'full-node challenge failed');
    }
  }

  /** The R full nodes that hold a partition, best first (all of them when fewer are live). */
  holders(partition: number): readonly string[] {
    const nodes = this.#fullLive();
    if (this.#placer === undefined || !this.#placer.matches(nodes)) {
      this.#placer = new Placer(nodes);
      this.#placed.clear();
    }
    // Every read and write asks; a placement is a rendezvous hash over every full node, and it
    // changes only with the placer (at most PARTITION_COUNT remembered).
    let got = this.#placed.get(partition);
    if (got === undefined) {
      got = Object.freeze(this.#placer.place(partitionPlacementId(partition), this.#r));
      this.#placed.set(partition, got);
    }
    return got;
  }

  /**
   * Answers with the first majority (of R, capped at the holders there are). By default every
   * holder is called at once and those that answer later go to `late`; with `majorityOnly` just a
   * majority is called, this node first when it is a holder, and the next holder stands in for one
   * that fails (a listing page then costs one remote scan fewer, and needs no third copy to agree).
   */
  async #quorum<T>(
    holders: readonly string[],
    call: (nodeId: string) => Promise<T>,
    what: string,
    opts: { late?: (nodeId: string, value: T) => void; majorityOnly?: boolean; need?: number } = {},
  ): Promise<Array<{ nodeId: string; value: T }>> {
    // `need`: answers wanted from these nodes when the caller counts itself apart (a holder's own read).
    const need = opts.need ?? Math.min(majorityQuorum(this.#r), holders.length);
    const late = opts.late;
    const self = this.#o.net.selfId;
    const ranked = opts.majorityOnly && holders.includes(self) ? [self, ...holders.filter((h) => h !== self)] : holders;
    const shortfall = (o: QuorumOutcome<T>) =>
      o.failed.length === 0 && o.done.length === 0
        ? unavailable(`${what} needs ${need} replicas but only ${holders.length} full nodes are live`)
        : unavailable(`${what} reached ${o.done.length} of the ${need} replicas it needs (${describeFailures(o.failed, (e) => (e instanceof Error ? e.message : String(e)))})`, { ok: o.done.length, need });
    const outcome = await reachQuorum({
      ranked,
      ...(opts.majorityOnly ? { want: need } : {}),
      quorum: need,
      early: true,
      attempt: (nodeId) => call(nodeId),
      ...(late !== undefined ? { late: (d: { nodeId: string; value: T }) => late(d.nodeId, d.value) } : {}),
      shortfall,
    });
    return outcome.done.map((d) => ({ nodeId: d.nodeId, value: d.value }));
  }

  // ---- client operations ----

  /**
   * Writes (or, with null, deletes) one entry; resolves once a majority of its holders have it on
   * disk. Writes to one partition that arrive together share one merge request per holder and one
   * transaction on each (WriteBatcher); a batch that fails fails every write in it.
   */
  async put(key: EntryKey, value: Buffer | null): Promise<TableEntry> {
    const e = makeEntry(this.#o.macKey, key, this.#o.clock.tick(), value);
    await this.#discover();
    if ((await this.#writes.submit(partitionOf(key.table, key.pk), { e, want: false })).sealed) throw this.#sealed(e);
    this.counters.writes++;
    return e;
  }

  /**
   * A write that also says what it replaced: the live version a majority of the holders held
   * just before it (null for none or a deletion), what a read just before the write would have
   * returned. The holders read that version to judge the write anyway and hand it back with
   * their answer (table.write-held), so it costs no read of its own; where a holder of an older
   * version cannot, the version is read first, as a read would.
   */
  async putReplacing(key: EntryKey, value: Buffer | null): Promise<{ entry: TableEntry; replaced: TableEntry | null }> {
    const e = makeEntry(this.#o.macKey, key, this.#o.clock.tick(), value);
    await this.#discover();
    const r = await this.#writes.submit(partitionOf(key.table, key.pk), { e, want: true });
    if (r.sealed) throw this.#sealed(e);
    this.counters.writes++;
    return { entry: e, replaced: r.replaced ?? null };
  }

  /** Many entries at once: they join the same per-partition batches as single writes. */
  async putMany(items: ReadonlyArray<{ key: EntryKey; value: Buffer | null }>): Promise<void> {
    const entries = items.map((it) => makeEntry(this.#o.macKey, it.key, this.#o.clock.tick(), it.value));
    await this.#discover();
    const refused = await Promise.all(entries.map(async (e) => (await this.#writes.submit(partitionOf(e.table, e.pk), { e, want: false })).sealed));
    const first = refused.indexOf(true);
    if (first >= 0) throw this.#sealed(entries[first]!);
    this.counters.writes += items.length;
  }

  /**
   * Closes a partition key to client writes: once this returns, a write that starts later fails on
   * at least one holder of every majority, so it cannot succeed (a bucket being deleted).
   */
  async seal(table: string, pk: string): Promise<void> {
    await this.put({ table, pk, sk: SEAL_SORT_KEY }, SEAL_VALUE);
  }

  async unseal(table: string, pk: string): Promise<void> {
    await this.put({ table, pk, sk: SEAL_SORT_KEY }, null);
  }

  #sealed(e: EntryKey): TesseraError {
    return new TesseraError('NOT_FOUND', `table '${e.table}' is closed to writes under '${e.pk.slice(0, 64)}' (its bucket was deleted); look the bucket up again`, { sealed: true });
  }

  /**
   * One coalesced batch to the partition's holders; per entry, whether a seal refused it and, for
   * those that asked, what it replaced.
   */
  async #writeBatch(p: number, items: readonly WriteItem[]): Promise<WriteOutcome[]> {
    const entries = items.map((it) => it.e);
    const want = items.flatMap((it, i) => (it.want ? [i] : []));
    const holders = this.holders(p);
    let readFirst: Array<TableEntry | null> | undefined;
    if (want.length > 0 && !(await this.#allServeWriteHeld(holders))) {
      // A holder that cannot say what it held: the versions are read before the write, as a read would.
      readFirst = await Promise.all(want.map((i) => this.get(entries[i]!)));
    }
    const ask = readFirst === undefined ? want : [];
    const need = Math.min(majorityQuorum(this.#r), holders.length);
    const res = await this.#quorum(holders, (id) => this.#sendWrite(id, entries, ask), `write to partition ${p}`);
    const refusals = new Array<number>(entries.length).fill(0);
    for (const r of res) for (const i of r.value.sealed) refusals[i]!++;
    // An entry stands only where a full quorum took it; one sealed holder among them refuses it.
    const out: WriteOutcome[] = refusals.map((n) => ({ sealed: res.length - n < need }));
    want.forEach((i, j) => {
      // Every acknowledged write is on a majority, and so on one of this quorum at least: the
      // newest version older than this write that the quorum held is the one it replaced.
      let newest: TableEntry | null = null;
      if (readFirst === undefined) {
        for (const r of res) {
          const h = r.value.held[j] ?? null;
          if (h !== null && compareVersions(h, entries[i]!) < 0 && (newest === null || compareVersions(h, newest) > 0)) newest = h;
        }
      } else newest = readFirst[j] ?? null;
      out[i]!.replaced = newest === null || newest.value === null ? null : newest;
    });
    return out;
  }

  /** Sends a client write batch to one holder; returns the indices its seals refused and, for those in `want`, what it held. */
  async #sendWrite(nodeId: string, entries: readonly TableEntry[], want: readonly number[]): Promise<HolderWrite> {
    if (nodeId === this.#o.net.selfId) {
      const r = await this.#o.store.write(entries, want);
      return { sealed: r.sealed, held: r.held ?? [] };
    }
    if (want.length === 0) {
      const body = { auth: this.#auth, entries: entries.map(toWire) };
      const r = rpc.parseBody(rpc.writeReply, await this.#call(nodeId, rpc.TABLE_METHODS.write, body), 'table.write');
      this.#checkSealed(nodeId, r.sealed, entries.length);
      return { sealed: r.sealed, held: [] };
    }
    let reply: unknown;
    try {
      reply = await this.#call(nodeId, rpc.TABLE_METHODS.writeHeld, { auth: this.#auth, entries: entries.map(toWire), want });
    } catch (err) {
      // Went back to a version without it: the next batches read first.
      if (isTesseraError(err, 'BAD_INPUT')) this.#writeHeld.set(nodeId, { serves: false, at: Date.now() });
      throw err;
    }
    const r = rpc.parseBody(rpc.writeHeldReply, reply, 'table.write-held');
    this.#checkSealed(nodeId, r.sealed, entries.length);
    if (r.held.length !== want.length) throw new TesseraError('PROTOCOL', `node ${nodeId} answered ${r.held.length} held versions for ${want.length} asked`);
    const held = r.held.map((w, j) => {
      if (w === null) return null;
      const asked = entries[want[j]!]!;
      if (w.t !== asked.table || w.p !== asked.pk || w.s !== asked.sk) throw new TesseraError('PROTOCOL', `node ${nodeId} answered a held version of another key than the one asked`);
      return this.#accept(fromWire(w), nodeId);
    });
    return { sealed: r.sealed, held };
  }

  #checkSealed(nodeId: string, sealed: readonly number[], count: number): void {
    if (sealed.some((i) => i >= count)) throw new TesseraError('PROTOCOL', `node ${nodeId} refused entries a write of ${count} did not hold`);
  }

  /** True when every other holder is known to serve table.write-held; asks those not known first. */
  async #allServeWriteHeld(holders: readonly string[]): Promise<boolean> {
    const self = this.#o.net.selfId;
    const now = Date.now();
    const ask = holders.filter((h) => {
      const f = this.#writeHeld.get(h);
      return h !== self && (f === undefined || (!f.serves && now - f.at > NOT_FULL_RECHECK_MS));
    });
    if (ask.length > 0) await Promise.all(ask.map((h) => this.#probeFeatures(h)));
    return holders.every((h) => h === self || this.#writeHeld.get(h)?.serves === true);
  }

  #probeFeatures(nodeId: string): Promise<void> {
    let probe = this.#featureProbes.get(nodeId);
    if (probe !== undefined) return probe;
    probe = (async () => {
      try {
        const r = rpc.parseBody(rpc.featuresReply, await this.#call(nodeId, rpc.TABLE_METHODS.features, { auth: this.#auth }), 'table.features');
        this.#rememberFeatures(nodeId, r.f.includes(rpc.FEATURE_WRITE_HELD));
      } catch (err) {
        // An older node does not know the method; one that is unreachable is asked again next time.
        if (isTesseraError(err, 'BAD_INPUT')) this.#rememberFeatures(nodeId, false);
        else this.#o.log.debug({ err, peer: nodeId }, 'table feature probe failed');
      } finally {
        this.#featureProbes.delete(nodeId);
      }
    })();
    this.#featureProbes.set(nodeId, probe);
    return probe;
  }

  #rememberFeatures(nodeId: string, serves: boolean): void {
    // Members only, but bounded whatever the churn, as the proofs are.
    if (this.#writeHeld.size >= MAX_CACHED_PROOFS) this.#writeHeld.clear();
    this.#writeHeld.set(nodeId, { serves, at: Date.now() });
  }

  /**
   * The live value of a key (null when absent or deleted), from a majority of its holders. A
   * holder reads its own copy and asks only enough other holders to make the majority which
   * version they hold (its MAC, table.versions): no value crosses the network and no remote value
   * is read from disk when they agree, which is nearly always. The reads of one event-loop turn
   * that ask one holder go to it as one request (#versionBatches). A holder that holds another version
   * is then read in full and the newer one wins, as before. Still a majority read: with writes
   * acknowledged by a majority, R + W > N, so it sees every acknowledged write.
   */
  async get(key: EntryKey): Promise<TableEntry | null> {
    await this.#discover();
    const holders = this.holders(partitionOf(key.table, key.pk));
    const self = this.#o.net.selfId;
    if (!holders.includes(self)) return this.#getFromAll(key, holders);
    const need = Math.min(majorityQuorum(this.#r), holders.length);
    const own = this.#o.store.get(key);
    const others = holders.filter((h) => h !== self);
    const res = await this.#quorum(others, (id) => this.#versionAt(id, key, own), `read from table '${key.table}'`, { majorityOnly: true, need: need - 1 });
    const { winner, repairs } = mergePoint([{ nodeId: self, entry: own }, ...res.map((r) => ({ nodeId: r.nodeId, entry: r.value }))]);
    this.#repair(repairs);
    this.counters.reads++;
    return winner === null || winner.value === null ? null : winner;
  }

  /** What a holder has of a key: `own` when it holds the same version, else its entry, read in full. */
  async #versionAt(id: string, key: EntryKey, own: TableEntry | null): Promise<TableEntry | null> {
    let batcher = this.#holderBatch.get(id);
    if (batcher === undefined) {
      batcher = this.#holderBatch.size;
      this.#holderBatch.set(id, batcher);
    }
    let mac: Buffer | null;
    try {
      mac = await this.#versionBatches.submit(batcher, { nodeId: id, key });
    } catch (err) {
      // A node of a version without table.versions answers BAD_INPUT: it is read in full.
      if (!isTesseraError(err, 'BAD_INPUT')) throw err;
      return this.#entryAt(id, key);
    }
    if (mac === null ? own === null : own !== null && own.mac.equals(mac)) return own;
    return this.#entryAt(id, key);
  }

  /** One holder's versions of a batch of keys (every item of a batch names the same holder). */
  async #sendVersions(items: readonly { nodeId: string; key: EntryKey }[]): Promise<(Buffer | null)[]> {
    const id = items[0]!.nodeId;
    const keys = items.map(({ key }) => ({ t: key.table, p: key.pk, s: key.sk }));
    const r = rpc.parseVersionsReply(await this.#call(id, rpc.TABLE_METHODS.versions, { auth: this.#auth, keys }), 'table.versions');
    if (r.m.length !== items.length) throw new TesseraError('PROTOCOL', `node ${id} answered ${r.m.length} versions for ${items.length} keys`);
    return r.m.map((m) => (m === null ? null : Buffer.from(m)));
  }

  async #entryAt(id: string, key: EntryKey): Promise<TableEntry | null> {
    if (id === this.#o.net.selfId) return this.#o.store.get(key);
    const body = await this.#call(id, rpc.TABLE_METHODS.get, { auth: this.#auth, t: key.table, p: key.pk, s: key.sk });
    const r = rpc.parseBody(rpc.getReply, body, 'table.get');
    return r.e === null ? null : this.#accept(fromWire(r.e), id);
  }

  /** A read by a node that holds no copy: every holder asked at once, the first majority answers. */
  async #getFromAll(key: EntryKey, holders: readonly string[]): Promise<TableEntry | null> {
    const replies: { nodeId: string; entry: TableEntry | null }[] = [];
    const res = await this.#quorum(holders, (id) => this.#entryAt(id, key), `read from table '${key.table}'`, { late: (nodeId, entry) => {
      // A holder that answered after the quorum still gets repaired against what was returned.
      const { repairs } = mergePoint([...replies, { nodeId, entry }]);
      this.#repair(repairs.filter((r) => r.nodeId === nodeId));
    } });
    for (const r of res) replies.push({ nodeId: r.nodeId, entry: r.value });
    const { winner, repairs } = mergePoint(replies);
    this.#repair(repairs);
    this.counters.reads++;
    return winner === null || winner.value === null ? null : winner;
  }

  /** One page of a partition key's live entries in sort-key byte order. */
  async list(table: string, pk: string, opts: ListOptions): Promise<ListPage> {
    if (!Number.isInteger(opts.limit) || opts.limit < 1 || opts.limit > MAX_SCAN_LIMIT) {
      throw new TesseraError('BAD_INPUT', `listing limit must be 1..${MAX_SCAN_LIMIT}, got ${opts.limit}`);
    }
    await this.#discover();
    const holders = this.holders(partitionOf(table, pk));
    let after = opts.token !== undefined ? decodeToken(opts.token) : opts.after;
    const out: TableEntry[] = [];
    for (let round = 0; round < MAX_SCAN_ROUNDS; round++) {
      const want = opts.limit - out.length;
      const scanOne = async (id: string) => {
        const q = { ...(opts.prefix !== undefined ? { prefix: opts.prefix } : {}), ...(after !== undefined ? { after } : {}), limit: want };
        if (id === this.#o.net.selfId) {
          // After the remote scan request has left: peer frames go out when the connection
          // uncorks on an immediate queued in this turn, so the own scan (milliseconds for a full
          // page) waits one immediate past it and runs while the other holder scans.
          await new Promise<void>((resolve) => setImmediate(() => setImmediate(resolve)));
          return this.#o.store.scan(table, pk, q);
        }
        // Checked below, and only those that win the merge: most equal this node's own copy.
        const r = rpc.parseScanReply(await this.#call(id, rpc.TABLE_METHODS.scan, { auth: this.#auth, t: table, p: pk, ...q }), 'table.scan');
        return { entries: r.entries.map(fromWire), more: r.more };
      };
      const res = await this.#quorum(holders, scanOne, `listing of table '${table}'`, { majorityOnly: true });
      // This node's page first, so where a replica holds the same version the merge keeps our copy.
      const self = this.#o.net.selfId;
      res.sort((a, b) => (a.nodeId === self ? -1 : b.nodeId === self ? 1 : 0));
      const merged = mergePages(res.map((r) => ({ nodeId: r.nodeId, entries: r.value.entries, more: r.value.more })));
      const own = new Set(res.find((r) => r.nodeId === self)?.value.entries);
      const from = new Map<TableEntry, string>();
      for (const r of res) if (r.nodeId !== self) for (const e of r.value.entries) from.set(e, r.nodeId);
      // An entry from the network is used (returned, or repaired onto others) only once its MAC checks.
      for (const e of merged.entries) if (!own.has(e)) this.#accept(e, from.get(e) ?? 'unknown');
      this.#repair(merged.repairs);
      for (const e of merged.entries) if (e.value !== null && out.length < opts.limit) out.push(e);
      if (merged.next === null) {
        this.counters.scans++;
        return { entries: out, token: null };
      }
      after = out.length >= opts.limit ? out[out.length - 1]!.sk : merged.next;
      if (out.length >= opts.limit) break;
    }
    this.counters.scans++;
    return { entries: out, token: after === undefined ? null : encodeToken(after) };
  }

  #repair(repairs: readonly Repair[]): void {
    for (const r of repairs) {
      this.counters.repairsSent += r.entries.length;
      void this.#sendMerge(r.nodeId, r.entries).catch((err: unknown) => this.#o.log.debug({ err, peer: r.nodeId }, 'read repair failed'));
    }
  }

  async #sendMerge(nodeId: string, entries: readonly TableEntry[]): Promise<number> {
    if (nodeId === this.#o.net.selfId) return (await this.#o.store.merge(entries)).length;
    let kept = 0;
    for (const batch of batchEntries(entries, rpc.MAX_MERGE_ENTRIES, MAX_SCAN_BYTES)) {
      kept += rpc.parseBody(rpc.mergeReply, await this.#call(nodeId, rpc.TABLE_METHODS.merge, { auth: this.#auth, entries: batch.map(toWire) }), 'table.merge').kept;
    }
    return kept;
  }

  #call(nodeId: string, method: string, body: unknown): Promise<unknown> {
    return this.#o.net.call(nodeId, method, body, { timeoutMs: this.#timeoutMs });
  }

  /** Checks an entry from the network: made by a data-key holder, and not stamped in the future. */
  #accept(e: TableEntry, from: string): TableEntry {
    try {
      verifyEntry(this.#o.macKey, e);
      this.#o.clock.receive(e.ts);
    } catch (err) {
      this.counters.refusedEntries++;
      this.#o.log.warn({ peer: from, err }, 'refused a table entry');
      throw err;
    }
    return e;
  }

  // ---- serving other full nodes ----

  /** The proof a peer's requests must carry; an HMAC per request otherwise, on every table read served. */
  #proofOf(peerId: string): Buffer {
    let p = this.#proofs.get(peerId);
    if (p === undefined) {
      // Peer ids are transport-authenticated members, but the map stays bounded whatever the churn.
      if (this.#proofs.size >= MAX_CACHED_PROOFS) this.#proofs.clear();
      p = callerProof(this.#o.macKey, peerId);
      this.#proofs.set(peerId, p);
    }
    return p;
  }

  async handle(method: string, body: unknown, peerId: string): Promise<unknown> {
    if (method === rpc.TABLE_METHODS.hello) {
      const r = rpc.parseBody(rpc.helloRequest, body, method);
      return { proof: fullNodeProof(this.#o.macKey, this.#o.net.selfId, r.nonce) };
    }
    const auth = (body as { auth?: unknown } | null)?.auth;
    if (!(auth instanceof Uint8Array) || !proofMatches(this.#proofOf(peerId), auth)) {
      throw new TesseraError('AUTH', `node ${peerId} sent '${method}' without proof that it holds the data key; table data is served to full nodes only`);
    }
    this.#known.set(peerId, { full: true, at: Date.now() });
    switch (method) {
      case rpc.TABLE_METHODS.merge: {
        const r = rpc.parseEntriesRequest(body, method);
        const entries = r.entries.map((w) => this.#accept(fromWire(w), peerId));
        const kept = (await this.#o.store.merge(entries)).length;
        this.counters.entriesApplied += kept;
        return { kept };
      }
      case rpc.TABLE_METHODS.write: {
        const r = rpc.parseEntriesRequest(body, method);
        const res = await this.#serveWrite(r.entries, [], peerId);
        return { kept: res.kept.length, sealed: res.sealed };
      }
      case rpc.TABLE_METHODS.writeHeld: {
        const r = rpc.parseBody(rpc.writeHeldRequest, body, method);
        if (r.want.some((i) => i >= r.entries.length)) throw new TesseraError('BAD_INPUT', `${method} asks the held version of an entry past the ${r.entries.length} it carries`);
        const res = await this.#serveWrite(r.entries, r.want, peerId);
        return { kept: res.kept.length, sealed: res.sealed, held: (res.held ?? []).map((h) => (h === null ? null : toWire(h))) };
      }
      case rpc.TABLE_METHODS.features:
        rpc.parseBody(rpc.featuresRequest, body, method);
        return { f: [rpc.FEATURE_WRITE_HELD] };
      case rpc.TABLE_METHODS.get: {
        const r = rpc.parseBody(rpc.getRequest, body, method);
        const e = this.#o.store.get({ table: r.t, pk: r.p, sk: r.s });
        return { e: e === null ? null : toWire(e) };
      }
      case rpc.TABLE_METHODS.versions: {
        const r = rpc.parseVersionsRequest(body, method);
        return { m: r.keys.map((k) => this.#o.store.macOf({ table: k.t, pk: k.p, sk: k.s })) };
      }
      case rpc.TABLE_METHODS.scan: {
        const r = rpc.parseBody(rpc.scanRequest, body, method);
        const res = this.#o.store.scan(r.t, r.p, { limit: r.limit, ...(r.prefix !== undefined ? { prefix: r.prefix } : {}), ...(r.after !== undefined ? { after: r.after } : {}) });
        return { entries: res.entries.map(toWire), more: res.more };
      }
      case rpc.TABLE_METHODS.roots: {
        const r = rpc.parseBody(rpc.rootsRequest, body, method);
        return { roots: r.parts.map((p) => this.#o.store.root(p)) };
      }
      case rpc.TABLE_METHODS.tree: {
        const r = rpc.parseBody(rpc.treeRequest, body, method);
        return { nodes: this.#o.store.treeNodes(r.part, r.level, r.idx) };
      }
      case rpc.TABLE_METHODS.leaf: {
        const r = rpc.parseBody(rpc.leafRequest, body, method);
        const res = this.#o.store.leafKeys(r.part, r.leaf, r.after === undefined ? undefined : Buffer.from(r.after), r.limit);
        return { keys: res.keys.map((k) => ({ k: k.key, h: k.hash })), more: res.more };
      }
      case rpc.TABLE_METHODS.fetch: {
        const r = rpc.parseBody(rpc.fetchRequest, body, method);
        const res = this.#o.store.fetch(r.keys.map((k) => Buffer.from(k)), MAX_SCAN_BYTES);
        return { entries: res.entries.map(toWire), done: res.done };
      }
      default:
        throw new TesseraError('BAD_INPUT', `unknown table method '${method}'`);
    }
  }

  async #serveWrite(wire: readonly WireEntry[], want: readonly number[], peerId: string): Promise<MergeResult> {
    const entries = wire.map((w) => this.#accept(fromWire(w), peerId));
    const res = await this.#o.store.write(entries, want);
    this.counters.entriesApplied += res.kept.length;
    return res;
  }

  // ---- anti-entropy and handoff ----

  /** One anti-entropy round now (or joins the one running). */
  syncNow(): Promise<void> {
    // stop() waits only for the round already running; one begun later (a member's sync due
    // 200 ms after it came up) would read the store after its close.
    if (this.#stopped) return Promise.resolve();
    this.#round ??= this.#syncRound().finally(() => {
      this.#round = undefined;
    });
    return this.#round;
  }

  async #syncRound(): Promise<void> {
    await this.#discover();
    const self = this.#o.net.selfId;
    const shared = new Map<string, number[]>();
    const handoff: number[] = [];
    for (let p = 0; p < PARTITION_COUNT; p++) {
      const holders = this.holders(p);
      if (holders.includes(self)) {
        for (const h of holders) if (h !== self) shared.set(h, [...(shared.get(h) ?? []), p]);
      } else if (digestCount(this.#o.store.root(p)) > 0) {
        handoff.push(p);
      }
    }
    for (const [peer, parts] of shared) {
      if (this.#stopped) return;
      try {
        const theirs = rpc.parseBody(rpc.rootsReply, await this.#call(peer, rpc.TABLE_METHODS.roots, { auth: this.#auth, parts }), 'table.roots').roots;
        const ours = parts.map((p) => this.#o.store.root(p));
        for (const i of differing(ours, theirs)) await this.syncPartition(peer, parts[i]!, { pull: true });
      } catch (err) {
        this.#o.log.debug({ err, peer }, 'table anti-entropy with peer failed; retrying next round');
      }
    }
    for (const p of handoff) {
      if (this.#stopped) return;
      await this.#handOff(p).catch((err: unknown) => this.#o.log.debug({ err, partition: p }, 'table partition handoff incomplete; retrying next round'));
    }
    this.counters.syncRounds++;
  }

  /** Pushes a partition this node no longer holds to every holder, then drops it once all acknowledged. */
  async #handOff(p: number): Promise<void> {
    const holders = this.holders(p);
    if (holders.length === 0) return;
    for (const h of holders) await this.syncPartition(h, p, { pull: false });
    // Each holder answered every merge after it was on disk, and keeps the newer of its version and ours.
    this.counters.partitionsDropped++;
    await this.#o.store.dropPartition(p);
    this.#o.log.info({ partition: p, holders }, 'table partition handed off and dropped');
  }

  /**
   * Brings this node and `peer` to the same content for one partition: walks down the digest
   * tree along differing nodes only, then for each differing leaf exchanges key lists and moves
   * just the entries that differ (pulling only when asked to).
   */
  async syncPartition(peer: string, p: number, opts: { pull: boolean }): Promise<void> {
    checkPartition(p);
    let diff = [0];
    // Leaves the peer holds nothing in: our keys there go without asking for its (empty) list.
    const emptyThere = new Set<number>();
    for (let level = 1; level <= TREE_DEPTH && diff.length > 0; level++) {
      const next: number[] = [];
      const children = diff.flatMap((i) => childrenOf(level - 1, i));
      for (let i = 0; i < children.length; i += rpc.MAX_TREE_NODES) {
        const idx = children.slice(i, i + rpc.MAX_TREE_NODES);
        const theirs = rpc.parseBody(rpc.treeReply, await this.#call(peer, rpc.TABLE_METHODS.tree, { auth: this.#auth, part: p, level, idx }), 'table.tree').nodes;
        const ours = this.#o.store.treeNodes(p, level, idx);
        if (theirs.length !== idx.length) throw new TesseraError('PROTOCOL', `node ${peer} answered ${theirs.length} digests for ${idx.length} asked`);
        for (const j of differing(ours, theirs)) {
          next.push(idx[j]!);
          if (level === TREE_DEPTH && digestCount(theirs[j]!) === 0) emptyThere.add(idx[j]!);
        }
      }
      diff = next;
    }
    // Differing keys of many leaves travel together, a bounded batch at a time.
    const pending = { pull: [] as Buffer[], push: [] as Buffer[] };
    const flush = async (all: boolean) => {
      if (opts.pull && (all || pending.pull.length >= rpc.MAX_FETCH_KEYS)) await this.#pull(peer, pending.pull.splice(0));
      if (all || pending.push.length >= rpc.MAX_MERGE_ENTRIES) await this.#push(peer, pending.push.splice(0));
    };
    for (const leaf of diff) {
      const differ = async (want: Buffer[], push: Buffer[]) => {
        pending.pull.push(...want);
        pending.push.push(...push);
        await flush(false);
      };
      if (emptyThere.has(leaf)) await this.#ownLeafKeys(p, leaf, (keys) => differ([], keys));
      else await this.#syncLeaf(peer, p, leaf, differ);
    }
    await flush(true);
  }

  async #syncLeaf(peer: string, p: number, leaf: number, differ: (pull: Buffer[], push: Buffer[]) => Promise<void>): Promise<void> {
    let after: Buffer | undefined;
    for (;;) {
      const body = { auth: this.#auth, part: p, leaf, ...(after ? { after } : {}), limit: MAX_LEAF_KEYS };
      const page = rpc.parseBody(rpc.leafReply, await this.#call(peer, rpc.TABLE_METHODS.leaf, body), 'table.leaf');
      const theirs: KeyHash[] = page.keys.map((k) => ({ key: Buffer.from(k.k), hash: Buffer.from(k.h) }));
      const through = page.more ? theirs[theirs.length - 1]?.key : undefined;
      // Our keys in the same range, read in bounded pages: those past `through` wait for the next page of theirs.
      const ours: KeyHash[] = [];
      let ourAfter = after;
      for (;;) {
        const mine = this.#o.store.leafKeys(p, leaf, ourAfter, MAX_LEAF_KEYS, through);
        ours.push(...mine.keys);
        if (!mine.more) break;
        ourAfter = mine.keys[mine.keys.length - 1]!.key;
      }
      const { pull: want, push } = diffKeyLists(ours, theirs);
      await differ(want, push);
      if (!page.more || through === undefined) return;
      after = through;
    }
  }

  async #ownLeafKeys(p: number, leaf: number, each: (keys: Buffer[]) => Promise<void>): Promise<void> {
    let after: Buffer | undefined;
    for (;;) {
      const page = this.#o.store.leafKeys(p, leaf, after, MAX_LEAF_KEYS);
      await each(page.keys.map((k) => k.key));
      if (!page.more) return;
      after = page.keys[page.keys.length - 1]!.key;
    }
  }

  async #pull(peer: string, keys: readonly Buffer[]): Promise<void> {
    for (let i = 0; i < keys.length; ) {
      const asked = keys.slice(i, i + rpc.MAX_FETCH_KEYS);
      const r = rpc.parseBody(rpc.fetchReply, await this.#call(peer, rpc.TABLE_METHODS.fetch, { auth: this.#auth, keys: asked }), 'table.fetch');
      // A reply cut short by its byte budget says how far it got; one that got nowhere is a broken peer.
      if (r.done === 0) throw new TesseraError('PROTOCOL', `node ${peer} answered a fetch of ${asked.length} keys with none looked at`);
      i += r.done;
      const entries = r.entries.map((w) => this.#accept(fromWire(w), peer));
      this.counters.entriesPulled += entries.length;
      // Awaited before the sum: `x += await y` reads x first, and would write back over whatever
      // merges from other holders added to it while this one was committing.
      const kept = (await this.#o.store.merge(entries)).length;
      this.counters.entriesApplied += kept;
    }
  }

  async #push(peer: string, keys: readonly Buffer[]): Promise<void> {
    for (let i = 0; i < keys.length; i += rpc.MAX_MERGE_ENTRIES) {
      const { entries } = this.#o.store.fetch(keys.slice(i, i + rpc.MAX_MERGE_ENTRIES));
      await this.#sendMerge(peer, entries);
      this.counters.entriesPushed += entries.length;
    }
  }
}

