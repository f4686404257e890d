/**
 * The put pipeline for erasure-coded files: chunk → encrypt → Reed–Solomon k+m → each shard to
 * its own node of the stripe's placement, with the stripe descriptor beside every shard. The
 * manifest lists descriptors; its pages are replicated m+1 times, so they survive as many
 * failures as the data does. A window of chunks is in flight, so memory stays bounded by
 * window × chunk size × (k+m)/k whatever the file's size. Every shard must land on a distinct
 * live node (the next node in placement order takes over from one that fails) before the put
 * succeeds; any failure aborts the upload everywhere it went.
 */
import { randomBytes } from 'node:crypto';
import { unavailable } from '../errors.js';
import type { Logger } from '../log.js';
import { MANIFEST_NONCE_BYTES, chunkStream, chunkIdOf, encryptChunk, type ClusterKeys, type EncryptedChunk, encodeShards, checkErasureParams, formatFileId, ManifestBuilder, majorityQuorum } from '../content/index.js';
import { describeFailures, reachQuorum } from '../cluster/index.js';
import { CHUNK_CALL_TIMEOUT_MS, CONTROL_CALL_TIMEOUT_MS, SPREAD_QUORUM } from './limits.js';
import { errorMessage } from './errors.js';
import { encodeStripe } from './erasure-stripe.js';
import { PutWindow } from './put-window.js';
import type { Peers } from './peers.js';
import { FILE_METHODS } from './rpc.js';
import type { FileWriter, WriteResult } from './writer.js';

export interface EcWriteOptions {
  chunkSize: number;
  k: number;
  m: number;
  windowChunks: number;
  signal?: AbortSignal;
  /** See WriteOptions.unique. */
  unique?: boolean;
}

/** One stripe on its way out: its descriptor (id `d`) and the k+m shards with their ids. */
interface StripeWrite {
  d: Buffer;
  descriptor: Buffer;
  shards: Buffer[];
  ids: Buffer[];
}

export class EcWriter {
  constructor(
    private readonly peers: Peers,
    private readonly keys: ClusterKeys,
    private readonly log: Logger,
    private readonly replicated: FileWriter,
  ) {}

  #usable(): string[] {
    return this.peers.live().map((n) => n.nodeId).filter((n) => n === this.peers.selfId || !this.peers.isHeldDown(n));
  }

  async write(source: AsyncIterable<unknown>, o: EcWriteOptions): Promise<WriteResult> {
    checkErasureParams(o.k, o.m);
    const n = o.k + o.m;
    const pageCopies = o.m + 1;
    const w = new PutWindow(this.peers.selfId, o.windowChunks, o.signal);
    const { upload, touched } = w;
    try {
      const live = this.#usable().length;
      if (live < n) throw unavailable(`erasure coding ${o.k}+${o.m} puts each chunk's ${n} shards on ${n} distinct nodes, but only ${live} live node(s) can take data (start more nodes or use fewer shards)`);
      const builder = new ManifestBuilder({ manifestSecret: this.keys.manifestSecret, chunkSize: o.chunkSize, policy: { kind: 'ec', k: o.k, m: o.m }, ...(o.unique ? { nonce: randomBytes(MANIFEST_NONCE_BYTES) } : {}) });
      const pages: EncryptedChunk[] = [];
      for await (const plain of chunkStream(source, o.chunkSize)) {
        if (w.failure !== undefined) break;
        await w.acquire();
        const chunk = encryptChunk(plain, this.keys.convergenceSecret);
        const { shards } = await encodeShards(chunk.data, o);
        const s = shards.map((b) => chunkIdOf(b));
        const descriptor = encodeStripe({ c: chunk.id, size: chunk.data.length, k: o.k, m: o.m, s });
        const d = chunkIdOf(descriptor);
        pages.push(...builder.add({ id: d, key: chunk.key, size: plain.length }));
        w.launch(() => this.#storeStripe({ d, descriptor, shards, ids: s }, upload, touched, w.signal));
        // Full manifest pages (one per 8192 chunks) are stored as they appear.
        while (pages.length > 0 && w.failure === undefined) {
          const page = pages.shift()!;
          await w.acquire();
          w.launch(() => this.#storeCopies(page, pageCopies, upload, touched, w.signal));
        }
      }
      await w.drain();
      const built = builder.finish();
      for (const page of built.pages) await this.#storeCopies(page, pageCopies, upload, touched, w.signal);
      await this.#storeCopies(built.root, pageCopies, upload, touched, w.signal);
      const root = built.root.id.toString('hex');
      await this.#commit(upload, root, built.info.createdAt, touched);
      return { fileId: formatFileId(built.root.id, built.root.key), root, upload, info: built.info, newChunks: built.info.chunkCount, touched };
    } catch (e) {
      const err = await w.fail(e);
      await this.replicated.abort(upload, touched);
      throw err;
    } finally {
      w.close();
    }
  }

  /** Each shard with the descriptor on its own node: the j-th of the placement, or the next unused one. */
  async #storeStripe(stripe: StripeWrite, upload: string, touched: Set<string>, signal: AbortSignal): Promise<void> {
    const { d, descriptor, shards, ids } = stripe;
    const n = shards.length;
    const dPin = this.replicated.pin(upload, d);
    await reachQuorum({
      ranked: this.peers.rank(d, this.peers.live()),
      want: n,
      quorum: n,
      usable: (node) => node === this.peers.selfId || !this.peers.isHeldDown(node),
      signal,
      attempt: async (node, j) => {
        touched.add(node);
        await Promise.all([
          this.peers.call(node, FILE_METHODS.chunkPut, { upload, id: ids[j]!, pin: this.replicated.pin(upload, ids[j]!), heal: { of: { d, i: j } } }, shards[j]!, { timeoutMs: CHUNK_CALL_TIMEOUT_MS, signal }),
          this.peers.call(node, FILE_METHODS.chunkPut, { upload, id: d, pin: dPin, heal: { r: n, stripe: true } }, descriptor, { timeoutMs: CHUNK_CALL_TIMEOUT_MS, signal }),
        ]);
      },
      shortfall: ({ done, failed }) => {
        const placed = new Set(done.map((x) => x.slot));
        const missing = shards.map((_, j) => j).filter((j) => !placed.has(j));
        return unavailable(`shard ${missing.join(', ')} of chunk ${d.toString('hex').slice(0, 16)} found no node to hold it: ${describeFailures(failed, errorMessage)}`);
      },
    });
  }

  /** A replicated chunk (manifest page): `copies` holders wanted, a majority required. */
  async #storeCopies(chunk: EncryptedChunk, copies: number, upload: string, touched: Set<string>, signal: AbortSignal): Promise<void> {
    const rank = this.peers.rank(chunk.id, this.peers.live());
    await reachQuorum({
      ranked: rank,
      want: Math.min(copies, rank.length),
      quorum: Math.min(majorityQuorum(copies), rank.length),
      usable: (node) => node === this.peers.selfId || !this.peers.isHeldDown(node),
      signal,
      attempt: async (node) => {
        touched.add(node);
        await this.peers.call(node, FILE_METHODS.chunkPut, { upload, id: chunk.id, pin: this.replicated.pin(upload, chunk.id), heal: { r: copies } }, chunk.data, { timeoutMs: CHUNK_CALL_TIMEOUT_MS, signal });
      },
      shortfall: ({ done, failed }) => unavailable(`manifest page reached only ${done.length} of ${copies} nodes: ${describeFailures(failed, errorMessage) || 'no holder answered'}`),
    });
  }

  async #commit(upload: string, root: string, at: number, touched: Set<string>): Promise<void> {
    const body = this.replicated.commitBody(upload, root, at);
    const outcome = await reachQuorum({
      ranked: [...touched],
      quorum: Math.min(SPREAD_QUORUM, touched.size),
      attempt: (node) => this.peers.call(node, FILE_METHODS.fileCommit, body, undefined, { timeoutMs: CONTROL_CALL_TIMEOUT_MS }),
      shortfall: ({ done, failed }) => unavailable(`the file's commit reached only ${done.length} node(s): ${failed.map((f) => errorMessage(f.error)).join('; ')}`),
    });
    this.log.debug({ upload, nodes: outcome.done.length }, 'erasure-coded file committed');
  }
}
