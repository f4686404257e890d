/**
 * The get side: fetching verified chunks (this node's own store before anyone, then the holder
 * the board expects to answer first, hedged when it stays silent: see hedged-gather.ts), and
 * streaming a byte range of a file in order with a window of chunks fetched in parallel.
 *
 * A copy that fails verification is quarantined by its holder; once a good copy is found it is
 * written back there, so bit rot found by a read is repaired by the same read.
 */
import { TesseraError, notFound, unavailable, corrupt } from '../errors.js';
import type { Logger } from '../log.js';
import { chunkIdOf, decryptChunk, encryptedSize, type FileManifest } from '../content/index.js';
import { CHUNK_CALL_TIMEOUT_MS } from './limits.js';
import { errorMessage } from './errors.js';
import { ByteLru } from './lru.js';
import type { Peers } from './peers.js';
import { FILE_METHODS } from './rpc.js';
import { Semaphore } from '../net/index.js';
import { gather, type Candidate } from './hedged-gather.js';
import { Spares, type ReadBuffers } from './read-buffers.js';

/** What the board assumes a chunk weighs when the caller does not say (manifest pages, descriptors). */
const ASSUMED_CHUNK_BYTES = 1 << 20;
/** Copies assumed when the caller does not say (the default replica count). */
const DEFAULT_COPIES = 3;

export interface FetchCounters {
  chunksFetched: number;
  cacheHits: number;
  failovers: number;
  badCopiesReported: number;
  copiesRepaired: number;
  /** Second requests sent because a holder stayed silent past its deadline. */
  hedges: number;
}

/** Where a fetch looks: `order` of nodes to try; `local` when the first is this node's own store. */
export interface FetchPlan {
  order: string[];
  local: boolean;
  /** Placement order, where the first R nodes are the chunk's homes. */
  rank: string[];
}

/** What the caller knows of a chunk: its stored size and how many copies placement made. */
export interface FetchHint {
  bytes?: number;
  copies?: number;
}

/**
 * Reads a copy from this node's own store, into `into` when it fits: verified there, unless
 * `unverified` (the caller authenticates the bytes itself; see `ChunkFetcher.openLocal`).
 */
export type LocalRead = (id: Buffer, into?: Buffer, unverified?: boolean) => Promise<Buffer>;

export class ChunkFetcher {
  readonly counters: FetchCounters = { chunksFetched: 0, cacheHits: 0, failovers: 0, badCopiesReported: 0, copiesRepaired: 0, hedges: 0 };
  readonly #cache: ByteLru;
  readonly #local: LocalRead | undefined;

  constructor(
    private readonly peers: Peers,
    private readonly log: Logger,
    cacheBytes: number,
    /** This node's own store, read directly rather than through the request handler. */
    local?: LocalRead,
  ) {
    this.#cache = new ByteLru(cacheBytes);
    this.#local = local;
  }

  /**
   * The nodes a fetch of `id` tries, in order (this node first when placement puts a copy here),
   * and whether it starts with this node's own store.
   */
  plan(id: Buffer): FetchPlan {
    const rank = this.peers.rank(id, this.peers.live());
    const self = this.peers.selfId;
    if (!rank.includes(self)) return { order: rank, local: false, rank };
    return { order: [self, ...rank.filter((n) => n !== self)], local: this.#local !== undefined, rank };
  }

  /**
   * The verified stored bytes of a chunk. `scratch`: a buffer a copy read from this node's own
   * store may be read into; the result may then be a view of it, so the caller must be done with
   * the result before it reuses `scratch`. Copies from peers and the cache never alias it.
   */
  async fetch(id: Buffer, signal?: AbortSignal, scratch?: Buffer, plan?: FetchPlan, hint: FetchHint = {}): Promise<Buffer> {
    const { bytes = ASSUMED_CHUNK_BYTES, copies = DEFAULT_COPIES } = hint;
    const hex = id.toString('hex');
    const cached = this.#cache.get(hex);
    if (cached !== undefined) {
      this.counters.cacheHits++;
      return cached;
    }
    const { order, local, rank } = plan ?? this.plan(id);
    const self = this.peers.selfId;
    const bad: string[] = [];
    const failures: string[] = [];
    let missing = 0;
    const failed = (node: string, e: unknown) => {
      const code = e instanceof TesseraError ? e.code : 'INTERNAL';
      if (code === 'NOT_FOUND') missing++;
      else {
        this.counters.failovers++;
        failures.push(`${node.slice(0, 12)}: ${errorMessage(e)}`);
      }
      if (code === 'CORRUPT') {
        bad.push(node);
        this.counters.badCopiesReported++;
        this.log.warn({ chunk: hex, holder: node }, 'bad copy of a chunk: quarantined on its holder, reading another copy');
      }
    };
    const found = (node: string, payload: Buffer): Buffer => {
      this.counters.chunksFetched++;
      if (node !== self) this.#cache.set(hex, payload);
      // A repair outlives this call, so it must not be handed bytes that live in `scratch`.
      if (bad.length > 0) void this.#repair(id, node === self ? Buffer.from(payload) : payload, bad);
      return payload;
    };
    // This node's own copy costs no link: read it first; it was verified as the store read it.
    if (local) {
      signal?.throwIfAborted();
      try {
        return found(self, await this.#local!(id, scratch));
      } catch (e) {
        if (signal?.aborted) throw signal.reason;
        failed(self, e);
      }
    }
    const candidates: Candidate[] = [];
    // Placement puts the copies on the first `copies` of the ranking (this node moved to the front
    // when it is one of them); the rest may hold one after failures, and are asked only after those.
    const homes = new Set(rank.slice(0, copies));
    for (const node of order) {
      if (local && node === self) continue;
      if (node !== self && this.peers.isHeldDown(node)) failures.push(`${node.slice(0, 12)}: failed moments ago`);
      else candidates.push({ key: hex, holder: node, tier: homes.has(node) ? 0 : 1 });
    }
    // The holder expected to answer first is asked; a silent one is hedged with the next.
    const { got, counts } = await gather<Buffer>({
      need: 1,
      candidates,
      board: this.peers.board,
      bytes,
      sizeOf: (b) => b.length,
      ...(signal ? { signal } : {}),
      onError: (c, e) => failed(c.holder, e),
      attempt: async (c, sig) => {
        const payload = (await this.peers.call(c.holder, FILE_METHODS.chunkGet, { id }, undefined, { timeoutMs: CHUNK_CALL_TIMEOUT_MS, signal: sig })).payload;
        // A peer's copy is checked here against damage on the way and lying peers.
        if (!chunkIdOf(payload).equals(id)) throw corrupt(`node ${c.holder.slice(0, 12)} sent bytes that do not hash to chunk ${hex.slice(0, 16)}`);
        return payload;
      },
    });
    this.counters.hedges += counts.hedges;
    const won = got.get(hex);
    if (won !== undefined) return found(won.holder, won.value);
    if (failures.length === 0) throw notFound(`chunk ${hex.slice(0, 16)} is on none of the ${order.length} live nodes`, { id: hex });
    if (bad.length > 0 && bad.length === failures.length) throw corrupt(`every reachable copy of chunk ${hex.slice(0, 16)} is damaged (${bad.length}); ${missing} node(s) lack it`);
    throw unavailable(`no live holder returned chunk ${hex.slice(0, 16)} (${missing} node(s) lack it): ${failures.join('; ')}`);
  }

  /**
   * The plaintext of this node's own copy of a data chunk, authenticated by its AES-GCM tag
   * instead of the store's SHA-256: the tag is keyed by the chunk's key, which only a holder of
   * the manifest knows, so a copy that decrypts is the one that was stored, and a get then pays
   * one pass over the bytes instead of two. Undefined when there is no local copy or it does not
   * decrypt: the caller then goes through `fetch`, whose verified read tells a bad copy (hash
   * mismatch: quarantined, read elsewhere, repaired) from a wrong key, exactly as before.
   */
  async openLocal(id: Buffer, key: Buffer, scratch: Buffer | undefined, plain: Buffer | undefined, signal?: AbortSignal): Promise<Buffer | undefined> {
    if (this.#local === undefined) return undefined;
    signal?.throwIfAborted();
    let data: Buffer;
    try {
      data = await this.#local(id, scratch, true);
    } catch {
      return undefined;
    }
    try {
      const out = decryptChunk(data, key, undefined, plain);
      this.counters.chunksFetched++;
      return out;
    } catch {
      return undefined;
    }
  }

  async #repair(id: Buffer, data: Buffer, holders: string[]): Promise<void> {
    for (const node of holders) {
      try {
        await this.peers.call(node, FILE_METHODS.chunkPut, { id }, data, { timeoutMs: CHUNK_CALL_TIMEOUT_MS });
        this.counters.copiesRepaired++;
        this.log.info({ chunk: id.toString('hex'), holder: node }, 'bad copy replaced with a verified one');
      } catch (err) {
        this.log.warn({ chunk: id.toString('hex'), holder: node, err: errorMessage(err) }, 'could not repair a bad copy');
      }
    }
  }
}

/** Verified ciphertext for a manifest entry's id (for erasure coding, the chunk a stripe descriptor rebuilds). */
export type CipherSource = (id: Buffer, signal?: AbortSignal) => Promise<Buffer>;

export interface ReadRangeOptions {
  /**
   * Decrypt into buffers that are used again: a yielded Buffer is only valid until the consumer
   * asks for the next one. Saves a fresh chunk-sized allocation (and its page faults and GC
   * work) per chunk, for consumers that are done with each piece before they move on.
   */
  reuse?: boolean;
}

/** What `readRange` reads, and how. */
export interface ReadRange extends ReadRangeOptions {
  start: number;
  /** Exclusive. */
  end: number;
  /** Chunks fetched and decrypted ahead of the consumer. */
  window: number;
  signal?: AbortSignal | undefined;
  /** Where verified ciphertext comes from when a manifest entry is not a plain chunk (erasure-coded files). */
  source?: CipherSource | undefined;
  /**
   * Free lists shared with other reads (the node's), so buffers outlive one read; without them a
   * read keeps its own, as many as its window.
   */
  buffers?: ReadBuffers;
}

interface Loaded {
  bytes: Buffer;
  /** The reusable buffer `bytes` lives in, free again once the consumer moves past it. */
  backing?: Buffer;
  /** Read from this node's own store: holds a LOCAL_CHUNKS_AHEAD slot until the consumer moves past it. */
  local: boolean;
}

/**
 * Chunks read from this node's own store that a read decrypts at once. Copies from peers use the
 * whole window to hide network latency; local ones come from the page cache in well under a
 * millisecond, and with few in flight their buffers stay in cache (a 1 GiB get on loopback,
 * against 16 at once: ≈ 5 % less CPU on the serving node, 60 % fewer page faults, 25 MiB less
 * peak memory, the same throughput).
 */
export const LOCAL_LOADS_IN_FLIGHT = 2;
/**
 * Chunks read from this node's own store that a read holds decrypted ahead of its consumer (or is
 * loading). Local copies need no latency hiding, and a client that downloads in ranges runs many
 * reads at once (aws-cli: 10): with the whole window each, a node held ten times the buffers of
 * one get, cold in cache and beyond what the node's pool keeps (read-buffers.ts).
 */
export const LOCAL_CHUNKS_AHEAD = 4;

/**
 * Plaintext of bytes [start, end) of a file, in order. `window` chunks are fetched and
 * decrypted ahead of the consumer, no more.
 */
export async function* readRange(reader: FileManifest, fetcher: ChunkFetcher, range: ReadRange): AsyncGenerator<Buffer, void, undefined> {
  const { start, end, window, signal, source } = range;
  const queue: Promise<Loaded>[] = [];
  const policy = reader.info.policy;
  const copies = policy.kind === 'replicas' ? policy.r : undefined;
  // Local reads land in these, each back as soon as its chunk is decrypted: at most `window` exist.
  const scratch = range.buffers?.cipher ?? new Spares(window);
  // With `reuse`, plaintext too: the window ahead plus the one the consumer holds.
  const plains = range.buffers?.plain ?? new Spares(window + 1);
  // Local copies need no latency hiding: a few at a time keep their buffers warm in cache.
  const localSlots = new Semaphore(LOCAL_LOADS_IN_FLIGHT);
  const localAhead = new Semaphore(LOCAL_CHUNKS_AHEAD);
  const load = async (ref: { id: Buffer; key: Buffer; offset: number; size: number }): Promise<Loaded> => {
    const plan = source === undefined ? fetcher.plan(ref.id) : undefined;
    const local = plan?.local === true;
    if (local) {
      await localAhead.acquire(signal);
      try {
        await localSlots.acquire(signal);
      } catch (e) {
        localAhead.release();
        throw e;
      }
    }
    const backing = range.reuse === true ? plains.take(ref.size) : undefined;
    let plain: Buffer;
    try {
      if (source !== undefined) {
        plain = decryptChunk(await source(Buffer.from(ref.id), signal), ref.key, undefined, backing);
      } else {
        const buf = scratch.take(encryptedSize(ref.size));
        try {
          const id = Buffer.from(ref.id);
          const own = local ? await fetcher.openLocal(id, ref.key, buf, backing, signal) : undefined;
          // fetch() returns only bytes verified against the id, so decryption need not hash them again.
          plain = own ?? decryptChunk(await fetcher.fetch(id, signal, buf, plan, { bytes: encryptedSize(ref.size), ...(copies !== undefined ? { copies } : {}) }), ref.key, undefined, backing);
        } finally {
          // The plaintext is written elsewhere, so the ciphertext's buffer is free again.
          scratch.give(buf);
        }
      }
      if (plain.length !== ref.size) throw corrupt(`chunk at offset ${ref.offset} holds ${plain.length} bytes; the manifest says ${ref.size}`);
    } catch (e) {
      if (backing !== undefined) plains.give(backing);
      if (local) localAhead.release();
      throw e;
    } finally {
      if (local) localSlots.release();
    }
    const from = Math.max(0, start - ref.offset);
    const to = Math.min(ref.size, end - ref.offset);
    return { bytes: from === 0 && to === ref.size ? plain : plain.subarray(from, to), local, ...(backing ? { backing } : {}) };
  };
  const enqueue = (p: Promise<Loaded>) => {
    // Failures surface when the consumer reaches the chunk; until then they must not be unhandled.
    p.catch(() => undefined);
    queue.push(p);
  };
  const next = async function* (): AsyncGenerator<Buffer, void, undefined> {
    const got = await queue.shift()!;
    yield got.bytes;
    // The consumer asked for the next piece, so it is done with this one.
    if (got.backing !== undefined) plains.give(got.backing);
    if (got.local) localAhead.release();
  };
  try {
    for await (const ref of reader.refs(start, end)) {
      enqueue(load(ref));
      if (queue.length >= window) yield* next();
    }
    while (queue.length > 0) yield* next();
  } finally {
    queue.length = 0;
  }
}
