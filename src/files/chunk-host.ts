/**
 * The storage side of the files protocol: what a node does with the chunks, references and
 * tombstones other nodes send it. It holds no keys, so storage-only nodes run it too.
 *
 * Every decision that could delete a chunk (the grace sweep) and every decision that relies on
 * a chunk staying (a dedup claim, a put) runs under the chunk's lock, so a claim can never be
 * answered "have it" for a copy the sweep is about to delete.
 */
import { TesseraError } from '../errors.js';
import type { Logger } from '../log.js';
import { KeyedMutex, type ChunkStore } from '../store/index.js';
import { RefusalLog } from '../net/index.js';
import { MAX_CHUNK_BYTES } from '../limits.js';
import { tooLarge, badInput } from '../errors.js';
import { GC_SWEEP_BATCH } from './limits.js';
import { errorMessage } from './errors.js';
import type { RefStore, Tombstone } from './refs.js';
import { decodeStripe } from './erasure-stripe.js';
import { UNCOMMITTED_SHARE_ALL_PEERS, UNCOMMITTED_SHARE_PER_PEER, UncommittedLedger } from './uncommitted-ledger.js';

export interface HostCounters {
  chunksStored: number;
  chunksDeduplicated: number;
  chunksServed: number;
  chunksDeleted: number;
  corruptCopiesFound: number;
  uploadsAborted: number;
  tombstonesApplied: number;
}

export interface ChunkHostOptions {
  store: ChunkStore;
  refs: RefStore;
  log: Logger;
  gcGraceMs: number;
  pendingUploadTtlMs: number;
  /** Asks live peers which of these uploads committed (a node that missed a commit learns it here); only proven answers. */
  askCommitted: (uploads: string[]) => Promise<{ upload: string; root: string; at: number; proof?: Uint8Array | undefined }[]>;
  now?: () => number;
}

export class ChunkHost {
  readonly counters: HostCounters = {
    chunksStored: 0,
    chunksDeduplicated: 0,
    chunksServed: 0,
    chunksDeleted: 0,
    corruptCopiesFound: 0,
    uploadsAborted: 0,
    tombstonesApplied: 0,
  };
  readonly #o: ChunkHostOptions;
  readonly #lock = new KeyedMutex();
  readonly #now: () => number;
  /** What each peer keeps here that no committed file holds yet (uncommitted-ledger.ts). */
  readonly uncommitted: UncommittedLedger;
  readonly #refusals: RefusalLog;
  #timer: NodeJS.Timeout | undefined;
  #sweeping: Promise<void> | undefined;
  #closed = false;

  constructor(opts: ChunkHostOptions) {
    this.#o = opts;
    this.#now = opts.now ?? Date.now;
    this.#refusals = new RefusalLog(opts.log);
    this.uncommitted = new UncommittedLedger(() => {
      const capacity = opts.store.usage().capacity;
      return { perPeer: capacity * UNCOMMITTED_SHARE_PER_PEER, allPeers: capacity * UNCOMMITTED_SHARE_ALL_PEERS };
    });
  }

  get graceMs(): number {
    return this.#o.gcGraceMs;
  }

  /** Starts the grace sweep, after queueing chunks that a crash left without any reference. */
  start(): void {
    const every = Math.max(200, Math.min(10_000, Math.floor(this.#o.gcGraceMs / 4)));
    this.#timer = setInterval(() => void this.sweep(), every);
    this.#timer.unref();
    void this.#scanOrphans().catch((err: unknown) => this.#o.log.warn({ err: errorMessage(err) }, 'orphan chunk scan failed'));
  }

  async stop(): Promise<void> {
    this.#closed = true;
    if (this.#timer) clearInterval(this.#timer);
    await this.#sweeping;
    await this.#lock.idle();
  }

  async has(ids: Buffer[]): Promise<boolean[]> {
    return Promise.all(ids.map((id) => this.#o.store.has(id)));
  }

  /** For each id: true (and a reference for `upload` recorded, with its pin) when a copy is here. */
  async claim(upload: string, ids: Buffer[], pins?: readonly (Uint8Array | undefined)[]): Promise<boolean[]> {
    return Promise.all(
      ids.map((id, i) => {
        const hex = id.toString('hex');
        return this.#lock.run(hex, async () => {
          if (!(await this.#o.store.has(id))) return false;
          await this.#o.refs.addRefs(upload, [hex], this.#now(), [pins?.[i]]);
          this.counters.chunksDeduplicated++;
          return true;
        });
      }),
    );
  }

  /**
   * Stores a copy durably and, with an upload, records its reference; resolves only when both are
   * on disk. `verified`: this process computed `id` from `data` itself (the store skips its hash).
   * `from`: the peer that sent it, charged for it until a commit holds it (none for this node's own).
   * `pin`: the writer's proof that `upload` holds this chunk, kept to be handed on.
   */
  async put(upload: string | undefined, id: Buffer, data: Buffer, verified = false, from?: string, pin?: Uint8Array): Promise<void> {
    if (data.length > MAX_CHUNK_BYTES) throw tooLarge(`chunk of ${data.length} bytes is over the ${MAX_CHUNK_BYTES}-byte limit`);
    const hex = id.toString('hex');
    await this.#lock.run(hex, async () => {
      const charged = from !== undefined ? this.#charge(from, upload, hex, data.length) : undefined;
      const [stored, ref] = await Promise.allSettled([
        this.#o.store.put(id, data, verified ? { verified: true } : undefined),
        upload !== undefined ? this.#o.refs.addRefs(upload, [hex], this.#now(), [pin]) : Promise.resolve(),
      ]);
      if (stored.status === 'fulfilled' && (ref.status === 'rejected' || upload === undefined)) {
        await this.#o.refs.scheduleIfOrphan(hex, this.#o.gcGraceMs, this.#now());
      }
      // Bytes that were already here, or never written, take no share.
      if (charged !== undefined && (stored.status === 'rejected' || !stored.value)) this.uncommitted.refund(charged, data.length);
      if (stored.status === 'rejected') throw stored.reason;
      if (ref.status === 'rejected') throw ref.reason;
      if (stored.value) this.counters.chunksStored++;
      else this.counters.chunksDeduplicated++;
    });
  }

  /** Charges a peer's chunk to its upload, or, when no upload or file holds it, to a grace-period bucket; returns the key. */
  #charge(from: string, upload: string | undefined, hex: string, bytes: number): string | undefined {
    try {
      return this.#chargeTo(from, upload, hex, bytes);
    } catch (e) {
      this.#refusals.refused(from, { reason: errorMessage(e) }, 'refused a chunk over the sender\'s share of uncommitted bytes');
      throw e;
    }
  }

  #chargeTo(from: string, upload: string | undefined, hex: string, bytes: number): string | undefined {
    const now = this.#now();
    const grace = Math.max(1000, this.#o.gcGraceMs);
    if (upload !== undefined) {
      // The sweep aborts an idle upload after the TTL and retires its charge then; this is only a backstop.
      this.uncommitted.charge(from, upload, bytes, now + this.#o.pendingUploadTtlMs + 2 * grace);
      return upload;
    }
    if (this.#o.refs.hasRefs(hex)) return undefined;
    const bucket = Math.floor(now / grace);
    const key = `orphan/${from}/${bucket}`;
    this.uncommitted.charge(from, key, bytes, (bucket + 2) * grace);
    return key;
  }

  /** Deletes a copy that repair made surplus (its replacements are confirmed elsewhere); true when one was here. */
  async release(id: Buffer): Promise<boolean> {
    return this.#lock.run(id.toString('hex'), () => this.#o.store.delete(id));
  }

  /**
   * The verified bytes of a copy held here; `into` and `unverified` as in ChunkStore.get (an
   * unverified read is for a caller that authenticates the bytes itself).
   */
  async get(id: Buffer, into?: Buffer, unverified = false): Promise<Buffer> {
    try {
      const data = await this.#o.store.get(id, { ...(into !== undefined ? { into } : {}), ...(unverified ? { unverified } : {}) });
      this.counters.chunksServed++;
      return data;
    } catch (e) {
      if (e instanceof TesseraError && e.code === 'CORRUPT') {
        this.counters.corruptCopiesFound++;
        this.#o.log.warn({ chunk: id.toString('hex') }, 'bad copy of a chunk found on read; quarantined');
      }
      throw e;
    }
  }

  async commit(upload: string, root: string, at: number, proof?: Uint8Array): Promise<void> {
    await this.#o.refs.commit(upload, root, at, this.#o.gcGraceMs, this.#now(), proof);
    this.uncommitted.release(upload);
  }

  async abort(upload: string): Promise<void> {
    const dropped = await this.#o.refs.dropUpload(upload, this.#o.gcGraceMs, this.#now());
    this.uncommitted.retire(upload, this.#now() + this.#o.gcGraceMs);
    this.counters.uploadsAborted++;
    this.#o.log.info({ upload, chunks: dropped }, 'upload aborted; its chunks wait out the grace period');
  }

  async tombstone(t: Tombstone): Promise<void> {
    if (t.at > this.#now() + 24 * 3600_000) throw badInput(`removal time ${t.at} is a day or more in this node's future; check the clocks`);
    if (await this.#o.refs.tombstone(t.root, t.at, this.#o.gcGraceMs, this.#now(), t.proof)) {
      this.counters.tombstonesApplied++;
      this.#o.log.info({ file: t.root }, 'file removed; its unshared chunks will be deleted after the grace period');
    }
  }

  listTombstones(after: string | undefined, limit: number): { items: Tombstone[]; more: boolean } {
    return this.#o.refs.listTombstones(after, limit);
  }

  committed(uploads: string[]): { upload: string; root: string; at: number; proof?: Buffer }[] {
    return this.#o.refs.committed(uploads);
  }

  /** True when the stripe descriptor `d` is held here and names `shard` as its shard `i`. */
  async stripeNames(d: Buffer, i: number, shard: Buffer): Promise<boolean> {
    try {
      return decodeStripe(await this.#o.store.get(d)).s[i]?.equals(shard) === true;
    } catch {
      return false;
    }
  }

  /** One pass of deletion for chunks past their grace period, and of stale uploads. */
  sweep(): Promise<void> {
    this.#sweeping ??= this.#sweep()
      .catch((err: unknown) => {
        if (!this.#closed) this.#o.log.warn({ err: errorMessage(err) }, 'chunk sweep failed');
      })
      .finally(() => {
        this.#sweeping = undefined;
      });
    return this.#sweeping;
  }

  async #sweep(): Promise<void> {
    const now = this.#now();
    this.uncommitted.expire(now);
    for (const hex of this.#o.refs.dueForDeletion(now, GC_SWEEP_BATCH)) {
      if (this.#closed) return;
      await this.#lock.run(hex, async () => {
        if (!this.#o.refs.hasRefs(hex) && (await this.#o.store.delete(Buffer.from(hex, 'hex')))) this.counters.chunksDeleted++;
        await this.#o.refs.forgetDue(hex);
      });
    }
    const { pending, aborted } = this.#o.refs.staleUploads(now - this.#o.pendingUploadTtlMs, GC_SWEEP_BATCH);
    for (const u of aborted) await this.#o.refs.forgetUpload(u);
    if (pending.length === 0 || this.#closed) return;
    // Before giving up on a put, ask whether it committed while this node was not listening.
    const known = new Map((await this.#o.askCommitted(pending).catch(() => [])).map((c) => [c.upload, c]));
    for (const u of pending) {
      const c = known.get(u);
      if (c) await this.commit(u, c.root, c.at, c.proof);
      else await this.abort(u);
    }
  }

  async #scanOrphans(): Promise<void> {
    const now = this.#now();
    let queued = 0;
    for await (const id of this.#o.store.list()) {
      if (this.#closed) return;
      const hex = id.toString('hex');
      if (!this.#o.refs.hasRefs(hex)) {
        await this.#o.refs.scheduleIfOrphan(hex, this.#o.gcGraceMs, now);
        queued++;
      }
    }
    if (queued > 0) this.#o.log.info({ chunks: queued }, 'found chunks without references; they will be deleted after the grace period');
  }
}
