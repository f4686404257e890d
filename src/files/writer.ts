/**
 * The put pipeline: chunk → encrypt → place → dedup-claim → store on R nodes, with a window of
 * chunks in flight, then the manifest pages and finally its root, then the commit that binds
 * the upload's references to the file. Memory is the window times the chunk size, whatever the
 * file's size. Any failure aborts the upload on every node it touched, so nothing half-written
 * stays referenced.
 */
import { TesseraError, unavailable } from '../errors.js';
import type { Logger } from '../log.js';
import { randomBytes } from 'node:crypto';
import { type AuthoritySigner, MANIFEST_NONCE_BYTES, chunkStream, encryptChunk, encryptedSize, type ClusterKeys, type EncryptedChunk, formatFileId, ManifestBuilder, type ManifestInfo } from '../content/index.js';
import { PutWindow } from './put-window.js';
import type { PlainTap } from './md5-offload.js';
import { ChunkSealer, SEAL_AHEAD, SEAL_OFFLOAD_MIN_BYTES } from './chunk-sealer.js';
import { FILE_METHODS, parseReply, replies } from './rpc.js';
import type { Peers } from './peers.js';
import { CHUNK_CALL_TIMEOUT_MS, CLAIM_BATCH_CHUNKS, CONTROL_CALL_TIMEOUT_MS } from './limits.js';
import { errorMessage } from './errors.js';
import { describeFailures, reachQuorum, type WeightedNode } from '../cluster/index.js';

export interface WriteOptions {
  chunkSize: number;
  r: number;
  w: number;
  windowChunks: number;
  signal?: AbortSignal;
  /** Give the file an id of its own even if the same bytes were stored in the same millisecond. */
  unique?: boolean;
  /** The body's MD5 (an object's ETag): with a sealer, fed from the seal jobs, and taken before the commit. */
  plainTap?: PlainTap;
}

export interface WriteResult {
  fileId: string;
  root: string;
  upload: string;
  info: ManifestInfo;
  newChunks: number;
  /** Nodes that hold references of this upload: where a later abort must go. */
  touched: Set<string>;
}

interface Item {
  chunk: EncryptedChunk;
  data: boolean;
  /** The reusable buffer `chunk.data` lives in, handed back once every copy of the chunk is stored. */
  spare?: Buffer;
}

export class FileWriter {
  constructor(
    private readonly peers: Peers,
    private readonly keys: ClusterKeys,
    private readonly log: Logger,
    private readonly signer: AuthoritySigner,
  ) {}

  /** The proof that `upload` holds chunk `id`: holders refuse a reference without it, and repair hands it on. */
  pin(upload: string, id: Buffer): Buffer {
    return this.signer.prove({ kind: 'pin', upload, chunk: id });
  }

  /** A commit message with its proof; holders refuse a commit without it. */
  commitBody(upload: string, root: string, at: number): { upload: string; root: string; at: number; proof: Buffer } {
    return { upload, root, at, proof: this.signer.prove({ kind: 'commit', upload, root, at }) };
  }

  async write(source: AsyncIterable<unknown>, o: WriteOptions): Promise<WriteResult> {
    const w = new PutWindow(this.peers.selfId, o.windowChunks, o.signal);
    const { upload, touched } = w;
    let newChunks = 0;
    // Ciphertext buffers come back once their batch is stored everywhere, so a put allocates about
    // a window's worth of them instead of one per chunk (fewer allocations, far fewer GC passes).
    const spares: Buffer[] = [];
    const cipherBytes = encryptedSize(o.chunkSize);
    /** Set while the body's MD5 is fed from this put's seal jobs and not yet taken. */
    let tapped = false;
    const launch = (batch: Item[], slots: number) =>
      w.launch(async () => {
        const { fresh, clean } = await this.storeBatch(batch, upload, o, touched, w.signal);
        newChunks += fresh;
        // After a failed call the transport may still hold a payload: such a buffer is left to the GC.
        if (clean) for (const it of batch) if (it.spare && spares.length < o.windowChunks) spares.push(it.spare);
      }, slots);
    try {
      this.checkLive(o.w);
      const builder = new ManifestBuilder({ manifestSecret: this.keys.manifestSecret, chunkSize: o.chunkSize, policy: { kind: 'replicas', r: o.r, w: o.w }, ...(o.unique ? { nonce: randomBytes(MANIFEST_NONCE_BYTES) } : {}) });
      let batch: Item[] = [];
      /** Slots taken and not yet handed to a launched batch (their chunks may still be sealing). */
      let slots = 0;
      const add = (chunk: EncryptedChunk, spare: Buffer, plainBytes: number) => {
        batch.push({ chunk, data: true, spare });
        // Full manifest pages are rare (one per 8192 chunks) and are not counted in the window.
        for (const page of builder.add({ id: chunk.id, key: chunk.key, size: plainBytes })) batch.push({ chunk: page, data: false });
        // A batch also leaves when it holds every slot: the next chunk could never get one.
        if (batch.length >= CLAIM_BATCH_CHUNKS || slots >= o.windowChunks) {
          launch(batch, slots);
          batch = [];
          slots = 0;
        }
      };
      // Chunks seal on the sealing thread, up to `ahead` at once, and are added in order. Fewer
      // than the window: a slot taken for a chunk still sealing must not be the one the next needs.
      const ahead = Math.min(SEAL_AHEAD, o.windowChunks - 1);
      const sealer = ahead > 0 ? new ChunkSealer(this.keys.convergenceSecret, o.chunkSize) : undefined;
      const sealing: Promise<{ chunk: EncryptedChunk; out: Buffer; plainBytes: number }>[] = [];
      // The body's MD5 rides on the seal jobs, which carry its plaintext to the thread anyway.
      // Chunks smaller than that threshold are sealed in line, so such puts leave it to the body.
      const md5 = sealer !== undefined && o.chunkSize >= SEAL_OFFLOAD_MIN_BYTES ? o.plainTap?.begin() : undefined;
      tapped = md5 !== undefined;
      /** Plaintext bytes of the chunks before this one. */
      let offset = 0;
      const addSealed = async () => {
        const s = await sealing.shift()!;
        add(s.chunk, s.out, s.plainBytes);
      };
      try {
        // Without a sealer the plaintext is encrypted before the next chunk is asked for, so one
        // buffer assembles them all; with one, each is assembled in a stage that moves to the thread.
        const chunks = chunkStream(source, o.chunkSize, sealer !== undefined ? { alloc: () => sealer.stage() } : { reuse: true });
        for await (const plain of chunks) {
          if (w.failure !== undefined) {
            sealer?.release(plain);
            break;
          }
          await w.acquire();
          slots++;
          const spare = spares.pop() ?? Buffer.allocUnsafeSlow(cipherBytes);
          // Bytes the body hashed before the take-over are not hashed again.
          const from = md5 !== undefined ? Math.max(0, md5.hashed - offset) : 0;
          const md5Part = md5 !== undefined && from < plain.length ? { body: md5.body, from } : undefined;
          offset += plain.length;
          // In line only with nothing at the thread, so chunks are still added in order.
          if (sealer === undefined || (sealing.length === 0 && plain.length < SEAL_OFFLOAD_MIN_BYTES)) {
            if (md5Part !== undefined) await o.plainTap!.direct(plain.subarray(from));
            add(encryptChunk(plain, this.keys.convergenceSecret, spare), spare, plain.length);
            sealer?.release(plain);
            continue;
          }
          const plainBytes = plain.length;
          const p = sealer.seal(plain, spare, md5Part).then((s) => ({ ...s, plainBytes }));
          p.catch(() => {});
          sealing.push(p);
          if (sealing.length > ahead) await addSealed();
        }
        while (sealing.length > 0 && w.failure === undefined) await addSealed();
      } finally {
        // A put that fails waits for its chunks at the sealing thread, so none outlives it.
        await Promise.allSettled(sealing);
      }
      if (w.failure !== undefined) throw w.failure;
      // Every seal job is answered: the digest is taken, and a Content-MD5 mismatch fails the put before its commit.
      if (tapped) {
        tapped = false;
        await o.plainTap!.end();
      }
      const built = builder.finish();
      for (const page of built.pages) batch.push({ chunk: page, data: false });
      if (batch.length > 0) launch(batch, slots);
      await w.drain();
      // The root names everything below it, so it is stored only once they all are.
      return await this.storeRoot(built.root, built.info, newChunks, w, o);
    } catch (e) {
      if (tapped) o.plainTap!.abort();
      const err = await w.fail(e);
      await this.abort(upload, touched);
      throw err;
    } finally {
      w.close();
    }
  }

  /**
   * Stores a root sealed elsewhere (a composite's: it names other files, not chunks) and commits
   * it as a file of its own, with the same references and abort as any put.
   */
  async writeRoot(root: EncryptedChunk, info: ManifestInfo, o: WriteOptions): Promise<WriteResult> {
    const w = new PutWindow(this.peers.selfId, o.windowChunks, o.signal);
    try {
      return await this.storeRoot(root, info, 0, w, o);
    } catch (e) {
      const err = await w.fail(e);
      await this.abort(w.upload, w.touched);
      throw err;
    } finally {
      w.close();
    }
  }

  /** Stores the root once everything below it is stored, then commits the upload as that file. */
  private async storeRoot(root: EncryptedChunk, info: ManifestInfo, newChunks: number, w: PutWindow, o: WriteOptions): Promise<WriteResult> {
    await this.storeBatch([{ chunk: root, data: false }], w.upload, o, w.touched, w.signal);
    const hex = root.id.toString('hex');
    await this.commit(w.upload, hex, info.createdAt, o.w, w.touched);
    return { fileId: formatFileId(root.id, root.key), root: hex, upload: w.upload, info, newChunks, touched: w.touched };
  }

  /** Tells every node that got references of this upload to drop them (best effort, bounded in time). */
  async abort(upload: string, touched: Iterable<string>): Promise<void> {
    const targets = new Set<string>([...touched, ...this.peers.live().map((n) => n.nodeId)]);
    const proof = this.signer.prove({ kind: 'abort', upload });
    await Promise.all(
      [...targets].map((n) =>
        this.peers.call(n, FILE_METHODS.fileAbort, { upload, proof }, undefined, { timeoutMs: CONTROL_CALL_TIMEOUT_MS }).catch((err: unknown) => {
          this.log.debug({ node: n, upload, err: errorMessage(err) }, 'abort not delivered; the upload expires there instead');
        }),
      ),
    );
  }

  private checkLive(w: number): WeightedNode[] {
    const live = this.peers.live();
    const usable = live.filter((n) => n.nodeId === this.peers.selfId || !this.peers.isHeldDown(n.nodeId));
    // Placement keeps its precomputed state per node array: with none held down, the live list
    // itself is passed on, so a put does not rebuild that state (the nodes' seeds) for every batch.
    const nodes = usable.length === live.length ? live : usable;
    if (nodes.length < w) {
      throw unavailable(`only ${nodes.length} live node(s) can take data; a put with write quorum ${w} needs at least ${w} (start more nodes or lower the quorum)`);
    }
    return nodes;
  }

  /**
   * Stores a batch; resolves with how many of its data chunks no holder had before, and whether
   * every call succeeded (no failed transfer can still be reading a chunk's bytes).
   */
  private async storeBatch(items: Item[], upload: string, o: WriteOptions, touched: Set<string>, signal: AbortSignal): Promise<{ fresh: number; clean: boolean }> {
    let clean = true;
    const nodes = this.checkLive(o.w);
    const ranks = items.map((it) => this.peers.rank(it.chunk.id, nodes));
    const pins = items.map((it) => this.pin(upload, it.chunk.id));
    // One claim per node for all the batch's chunks placed on it: holders that already have a chunk take a reference instead of the bytes.
    const byNode = new Map<string, number[]>();
    ranks.forEach((rank, i) => {
      for (const n of rank.slice(0, o.r)) {
        const list = byNode.get(n) ?? [];
        list.push(i);
        byNode.set(n, list);
      }
    });
    const claimed = new Map<string, boolean[] | Error>();
    await Promise.all(
      [...byNode].map(async ([n, idx]) => {
        touched.add(n);
        try {
          claimed.set(n, await this.claim(n, upload, idx.map((i) => items[i]!.chunk.id), idx.map((i) => pins[i]!), signal, o.r));
        } catch (e) {
          clean = false;
          claimed.set(n, e as Error);
        }
      }),
    );
    signal.throwIfAborted();
    const fresh = await Promise.all(
      items.map(async (it, i) => {
        const rank = ranks[i]!;
        const initial = rank.slice(0, o.r).map((n) => {
          const c = claimed.get(n);
          if (c instanceof Error) return { node: n, state: 'failed' as const, err: c };
          const pos = byNode.get(n)!.indexOf(i);
          return { node: n, state: c?.[pos] ? ('have' as const) : ('need' as const) };
        });
        const had = initial.filter((x) => x.state === 'have').length;
        const outcome = await reachQuorum({
          ranked: rank,
          want: o.r,
          quorum: Math.min(o.w, o.r),
          usable: (n) => n === this.peers.selfId || !this.peers.isHeldDown(n),
          signal,
          attempt: async (node, slot, standIn) => {
            touched.add(node);
            if (!standIn) {
              const first = initial[slot]!;
              if (first.state === 'have') return;
              if (first.state === 'failed') throw first.err;
            } else if ((await this.claim(node, upload, [it.chunk.id], [pins[i]!], signal, o.r))[0]) return;
            // Every chunk here was hashed by encryptChunk in this process: this node's own store need not hash it again.
            await this.peers.call(node, FILE_METHODS.chunkPut, { upload, id: it.chunk.id, pin: pins[i]!, heal: { r: o.r } }, it.chunk.data, { timeoutMs: CHUNK_CALL_TIMEOUT_MS, signal, verified: true });
          },
          shortfall: ({ done, failed }) =>
            unavailable(
              `chunk ${it.chunk.id.toString('hex').slice(0, 16)} reached only ${done.length} of the ${o.w} nodes the write quorum needs (${rank.length} live): ${describeFailures(failed, errorMessage) || 'no holder answered'}`,
            ),
        }).catch((e: unknown) => {
          clean = false;
          throw e;
        });
        if (outcome.failed.length > 0) clean = false;
        return it.data && had === 0 ? 1 : 0;
      }),
    );
    return { fresh: fresh.reduce<number>((a, b) => a + b, 0), clean };
  }

  private async claim(node: string, upload: string, ids: Buffer[], pins: Buffer[], signal: AbortSignal, copies?: number): Promise<boolean[]> {
    const r = await this.peers.call(node, FILE_METHODS.chunkClaim, { upload, ids, pins, ...(copies !== undefined ? { r: copies } : {}) }, undefined, { timeoutMs: CONTROL_CALL_TIMEOUT_MS, signal });
    const have = parseReply(replies.has, r.body, node).have;
    if (have.length !== ids.length) throw new TesseraError('PROTOCOL', `node ${node.slice(0, 12)} answered ${have.length} of ${ids.length} claims`);
    return have;
  }

  private async commit(upload: string, root: string, at: number, w: number, touched: Set<string>): Promise<void> {
    const body = this.commitBody(upload, root, at);
    // Nodes that missed the commit learn it from the others before their pending references expire.
    await reachQuorum({
      ranked: [...touched],
      quorum: Math.min(w, touched.size),
      attempt: (n) => this.peers.call(n, FILE_METHODS.fileCommit, body, undefined, { timeoutMs: CONTROL_CALL_TIMEOUT_MS }),
      shortfall: ({ done, failed }) =>
        unavailable(`the file's commit reached only ${done.length} node(s), fewer than the write quorum ${w}: ${failed.map((f) => errorMessage(f.error)).join('; ')}`),
    });
  }
}
