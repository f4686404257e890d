/**
 * The files service of one node: put, get, rm, ls and stat for clients; its peer side
 * (peer-service.ts) serves the files protocol. composeFiles (files-node.ts) builds both from the
 * same parts; the service knows nothing of HTTP.
 */
import type { PlainTap } from './md5-offload.js';
import { TesseraError, badInput, notFound } from '../errors.js';
import type { Logger } from '../log.js';
import { DEFAULT_CHUNK_BYTES } from '../limits.js';
import type { ChunkStore, Metadata } from '../store/index.js';
import { reachQuorum } from '../cluster/index.js';
import { type AuthoritySigner, checkChunkSize, type ClusterKeys, parseFileId, openFileManifest, sealComposite, formatFileId, type FileManifest, type CompositePart, MAX_COMPOSITE_PARTS, type RedundancyPolicy, formatPolicy, resolvePutPolicy } from '../content/index.js';
import type { FileStatView, PutResultView } from './views.js';
import type { ChunkHost } from './chunk-host.js';
import { auth, errorMessage } from './errors.js';
import { CONTROL_CALL_TIMEOUT_MS, MAX_STAT_CHUNKS, SPREAD_QUORUM } from './limits.js';
import type { Peers, FilesNet } from './peers.js';
import { nodeReadBuffers } from './read-buffers.js';
import { readRange, type ChunkFetcher, type CipherSource, type ReadRangeOptions } from './reader.js';
import type { RefStore } from './refs.js';
import { FILE_METHODS, parseReply, replies } from './rpc.js';
import type { FileWriter } from './writer.js';
import type { EcWriter } from './erasure-writer.js';
import { decodeStripe, readStriped } from './erasure-stripe.js';
import { FileHealth, type ChunkRef } from './file-health.js';
import { drainStateReply, type DrainState, type RepairLoop, type RepairStats } from './repair.js';
import type { Scrubber, ScrubReport, ScrubStats } from './scrub.js';

/** The files service's knobs: node flags and the config file set them, tests shorten the periods. */
export interface FilesTuning {
  gcGraceMs?: number;
  pendingUploadTtlMs?: number;
  antiEntropyIntervalMs?: number;
  cacheBytes?: number;
  windowChunks?: number;
  /** Redundancy of a put that names none (replicas 3 unless the node was started otherwise). */
  defaultPolicy?: RedundancyPolicy;
  repairGraceMs?: number;
  repairRateBytes?: number;
  repairIntervalMs?: number;
  scrubRateBytes?: number;
  scrubIntervalMs?: number;
  /** A multipart upload left open this long is aborted and its parts removed (files/multipart.ts). */
  multipartAbandonMs?: number;
}

/** What composeFiles (files-node.ts) builds a node's files layer from. */
export interface FileServiceOptions extends FilesTuning {
  net: FilesNet;
  store: ChunkStore;
  meta: Metadata;
  /** Absent on a storage-only node: it stores and serves chunks but never sees plaintext. */
  dataKey?: Buffer;
  /**
   * The public half of the cluster's authority key, for a storage-only node (a full node derives
   * it from the data key). Without either, every destructive message is refused.
   */
  authorityKey?: Buffer;
  log: Logger;
}

/** The collaborators the client side uses, composed once per node by composeFiles (files-node.ts). */
export interface FileServiceParts {
  net: FilesNet;
  peers: Peers;
  store: ChunkStore;
  refs: RefStore;
  host: ChunkHost;
  fetcher: ChunkFetcher;
  /** Absent, with `ec`, `signer` and `keys`, on a storage-only node. */
  writer: FileWriter | undefined;
  ec: EcWriter | undefined;
  signer: AuthoritySigner | undefined;
  keys: ClusterKeys | undefined;
  repairLoop: RepairLoop;
  scrubber: Scrubber;
  /** Checked already (checkPolicy). */
  defaultPolicy: RedundancyPolicy;
  windowChunks: number;
  log: Logger;
}

export interface PutOptions {
  replicas?: number;
  quorum?: number;
  chunkSize?: number;
  /** Erasure coding instead of replicas: k data and m parity shards per chunk. */
  ec?: { k: number; m: number };
  signal?: AbortSignal;
  /** Give the file an id of its own even if the same bytes were stored in the same millisecond (multipart parts). */
  unique?: boolean;
  /** The body's MD5, for the writer to feed from its seal jobs (replicated puts; others leave it to the body). */
  plainTap?: PlainTap;
}

export interface OpenedFile {
  fileId: string;
  totalSize: number;
  createdAt: number;
  /**
   * Plaintext of bytes [start, end) of the file, verified, in order. With `reuse`, a yielded
   * Buffer is only valid until the next one is asked for (see ReadRangeOptions).
   */
  read(start?: number, end?: number, signal?: AbortSignal, opts?: ReadRangeOptions): AsyncIterable<Buffer>;
}

export interface FilesCounters {
  putsOk: number;
  putsFailed: number;
  getsOk: number;
  getsFailed: number;
  removes: number;
}

/** Part manifests a composite put opens, or part removals a composite rm sends, at once. */
export const COMPOSITE_CONCURRENCY = 8;

/** A file id, lowercased; anything else is BAD_INPUT that says what a file id looks like. */
function checkFileRef(ref: string): string {
  if (typeof ref !== 'string' || ref.length === 0) throw badInput('give a file id');
  parseFileId(ref);
  return ref.toLowerCase();
}

const storageOnly = (what: string) =>
  auth(`this node is storage-only (it joined without the data key) and cannot ${what}; send the request to a node that has the data key`);

export class FileService {
  readonly counters: FilesCounters = { putsOk: 0, putsFailed: 0, getsOk: 0, getsFailed: 0, removes: 0 };
  /** Counters of the chunks this node hosts and fetches, which the files counters route reports beside its own. */
  readonly host: ChunkHost;
  readonly fetcher: ChunkFetcher;
  readonly #peers: Peers;
  readonly #keys: ClusterKeys | undefined;
  readonly #log: Logger;
  readonly #refs: RefStore;
  readonly #writer: FileWriter | undefined;
  readonly #window: number;
  /** Chunk buffers every read of this node takes from and gives back (read-buffers.ts). */
  readonly #readBuffers = nodeReadBuffers();
  readonly #net: FilesNet;
  readonly #store: ChunkStore;
  readonly #ec: EcWriter | undefined;
  readonly #defaultPolicy: RedundancyPolicy;
  readonly #repairLoop: RepairLoop;
  readonly #scrubber: Scrubber;
  readonly #signer: AuthoritySigner | undefined;

  /** Built by composeFiles (files-node.ts), which checks the tuning and shares these parts with the peer side. */
  constructor(p: FileServiceParts) {
    this.#net = p.net;
    this.#peers = p.peers;
    this.#store = p.store;
    this.#refs = p.refs;
    this.host = p.host;
    this.fetcher = p.fetcher;
    this.#writer = p.writer;
    this.#ec = p.ec;
    this.#signer = p.signer;
    this.#keys = p.keys;
    this.#repairLoop = p.repairLoop;
    this.#scrubber = p.scrubber;
    this.#defaultPolicy = p.defaultPolicy;
    this.#window = p.windowChunks;
    this.#log = p.log;
  }

  async put(source: AsyncIterable<unknown>, o: PutOptions = {}): Promise<PutResultView> {
    const writer = this.#needWriter('store files');
    const began = Date.now();
    const policy = resolvePutPolicy(o, this.#defaultPolicy);
    const chunkSize = checkChunkSize(o.chunkSize ?? DEFAULT_CHUNK_BYTES);
    try {
      const res =
        policy.kind === 'ec'
          ? await this.#ec!.write(source, { chunkSize, k: policy.k, m: policy.m, windowChunks: this.#window, ...(o.signal ? { signal: o.signal } : {}), ...(o.unique ? { unique: true } : {}) })
          : await writer.write(source, { chunkSize, r: policy.r, w: policy.w, windowChunks: this.#window, ...(o.signal ? { signal: o.signal } : {}), ...(o.unique ? { unique: true } : {}), ...(o.plainTap ? { plainTap: o.plainTap } : {}) });
      this.counters.putsOk++;
      this.#log.info({ file: res.root.slice(0, 16), size: res.info.fileSize, chunks: res.info.chunkCount, newChunks: res.newChunks }, 'file stored');
      return {
        fileId: res.fileId,
        name: null,
        size: res.info.fileSize,
        chunks: res.info.chunkCount,
        newChunks: res.newChunks,
        policy: formatPolicy(res.info.policy),
        durationMs: Date.now() - began,
      };
    } catch (e) {
      this.counters.putsFailed++;
      this.#log.warn({ err: errorMessage(e) }, 'put failed; nothing was recorded');
      throw e;
    }
  }

  /** Reads a file's manifest root; bytes are read only when `read` is iterated. Names are the objects layer's. */
  async open(ref: string): Promise<OpenedFile> {
    this.#needWriter('read files');
    try {
      const fileId = checkFileRef(ref);
      const reader = await this.#openManifest(fileId);
      const size = reader.info.fileSize;
      const read = (start = 0, end = size, signal?: AbortSignal, opts?: ReadRangeOptions): AsyncIterable<Buffer> => {
        if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || end < start || end > size) {
          throw new TesseraError('BAD_INPUT', `byte range ${start}-${end} does not fit the file's ${size} bytes`, { size });
        }
        const source = reader.info.policy.kind === 'ec' ? this.#stripedSource() : undefined;
        return this.#counted(readRange(reader, this.fetcher, { ...opts, start, end, window: this.#window, signal, source, buffers: this.#readBuffers }));
      };
      return { fileId, totalSize: size, createdAt: reader.info.createdAt, read };
    } catch (e) {
      this.counters.getsFailed++;
      throw e;
    }
  }

  /** Redundancy of a put that names none. */
  get defaultPolicy(): RedundancyPolicy {
    return this.#defaultPolicy;
  }

  /** Ciphertext of erasure-coded chunks: the descriptor (replicated, cached) names the shards to read. */
  #stripedSource(): CipherSource {
    return async (d, signal) => {
      const st = decodeStripe(await this.fetcher.fetch(d, signal));
      return readStriped(this.#repairLoop, d, st, signal);
    };
  }

  /** Ids of the chunks stored here, and whether the listing stopped at `limit`. */
  async listChunks(limit: number): Promise<{ ids: string[]; truncated: boolean }> {
    const ids: string[] = [];
    for await (const id of this.#store.list()) {
      if (ids.length >= limit) return { ids, truncated: true };
      ids.push(id.toString('hex'));
    }
    return { ids, truncated: false };
  }

  repairStats(): RepairStats {
    return this.#repairLoop.stats();
  }

  scrubStats(): ScrubStats {
    return this.#scrubber.stats();
  }

  /** Runs a scrub pass now (or joins the one running) and reports it. */
  scrub(): Promise<ScrubReport> {
    return this.#scrubber.run();
  }

  get draining(): boolean {
    return this.#repairLoop.draining;
  }

  /** Starts or cancels draining a node (this one, or another by id or unique id prefix). */
  async drain(node: string | undefined, on: boolean): Promise<DrainState> {
    const id = this.#memberId(node);
    if (id === this.#peers.selfId) {
      await this.#repairLoop.setDraining(on);
      return this.#repairLoop.drainState();
    }
    // The order is bound to the node it drains and to now, so it cannot be sent to another node or replayed later.
    const signer = this.#needSigner('drain another node');
    const at = Date.now();
    const proof = signer.prove({ kind: 'drain', target: id, on, at });
    const r = await this.#peers.call(id, FILE_METHODS.healDrain, { on, at, proof }, undefined, { timeoutMs: CONTROL_CALL_TIMEOUT_MS });
    return parseReply(drainStateReply, r.body, id);
  }

  async drainState(node: string | undefined): Promise<DrainState> {
    const id = this.#memberId(node);
    if (id === this.#peers.selfId) return this.#repairLoop.drainState();
    const r = await this.#peers.call(id, FILE_METHODS.healState, {}, undefined, { timeoutMs: CONTROL_CALL_TIMEOUT_MS });
    return parseReply(drainStateReply, r.body, id);
  }

  #memberId(node: string | undefined): string {
    if (node === undefined || node === '') return this.#peers.selfId;
    if (!/^[0-9a-zA-Z]{4,128}$/.test(node)) throw badInput(`'${node.slice(0, 40)}' is not a node id or id prefix (see 'tessera peers')`);
    // A draining member advertises no capacity, so it is looked up among all members believed up.
    const up = this.#net.members?.().filter((m) => m.state === 'alive' || m.state === 'suspect') ?? this.#net.live();
    const ids = [this.#peers.selfId, ...up.map((n) => n.nodeId)];
    const hits = [...new Set(ids.filter((x) => x.startsWith(node)))];
    if (hits.length === 0) throw notFound(`no live member has an id starting with '${node}' (see 'tessera peers')`);
    if (hits.length > 1) throw badInput(`'${node}' matches ${hits.length} members; give more of the id`);
    return hits[0]!;
  }

  /**
   * Removes a file by id on the nodes (its chunks are collected after the grace period); whatever
   * names or objects point at it is the caller's business. Returns the file's root id.
   */
  async removeFile(ref: string): Promise<string> {
    this.#needWriter('remove files');
    const fileId = checkFileRef(ref);
    const manifest = await this.#openManifest(fileId);
    const root = parseFileId(fileId).rootId.toString('hex');
    // A composite owns the files it is stitched from: they go with it (each was made for it alone),
    // first, so a removal cut short can be tried again while the composite still names them.
    await this.#tombstoneParts(manifest.parts);
    await this.#tombstone(root);
    this.counters.removes++;
    this.#log.info({ file: root.slice(0, 16), parts: manifest.parts.length }, 'file removed');
    return root;
  }

  /** Records a file's removal on a quorum of live nodes; anti-entropy spreads it to the rest. */
  async #tombstone(root: string): Promise<void> {
    const at = Date.now();
    const proof = this.#needSigner('remove files').prove({ kind: 'fileRm', root, at });
    const nodes = this.#peers.live().map((n) => n.nodeId);
    await reachQuorum({
      ranked: nodes,
      quorum: Math.max(1, Math.min(SPREAD_QUORUM, nodes.length)),
      attempt: (n) => this.#peers.call(n, FILE_METHODS.fileRm, { root, at, proof }, undefined, { timeoutMs: CONTROL_CALL_TIMEOUT_MS }),
      shortfall: ({ done }) => new TesseraError('UNAVAILABLE', `the removal reached only ${done.length} of ${nodes.length} live node(s); try again when more are up`),
    });
  }

  async #tombstoneParts(parts: readonly CompositePart[]): Promise<void> {
    let next = 0;
    const worker = async () => {
      while (next < parts.length) await this.#tombstone(parts[next++]!.rootId.toString('hex'));
    };
    await Promise.all(Array.from({ length: Math.min(COMPOSITE_CONCURRENCY, parts.length) }, worker));
  }

  /** The sizes of the files a composite is stitched from, in order; empty for an ordinary file. */
  async partSizes(ref: string): Promise<number[]> {
    this.#needWriter('read files');
    return (await this.#openManifest(checkFileRef(ref))).parts.map((p) => p.size);
  }

  /**
   * Stores a file stitched from other files, in order: its root lists their manifests and no byte
   * is copied. Every part must be an ordinary file of this cluster with one redundancy policy;
   * removing the composite removes them. Returns the composite's file id.
   */
  async putComposite(partIds: readonly string[], o: { signal?: AbortSignal } = {}): Promise<PutResultView> {
    const writer = this.#needWriter('store files');
    const began = Date.now();
    if (partIds.length === 0 || partIds.length > MAX_COMPOSITE_PARTS) throw badInput(`a composite file needs 1 to ${MAX_COMPOSITE_PARTS} parts; got ${partIds.length}`);
    const parts: CompositePart[] = new Array(partIds.length);
    const manifests: FileManifest[] = new Array(partIds.length);
    let next = 0;
    const worker = async () => {
      while (next < partIds.length) {
        const i = next++;
        o.signal?.throwIfAborted();
        const m = await this.#openManifest(partIds[i]!);
        if (m.parts.length > 0) throw badInput(`part ${i + 1} is itself a composite file; parts must be ordinary files`);
        const { rootId, rootKey } = parseFileId(partIds[i]!);
        parts[i] = { rootId, rootKey, size: m.info.fileSize, chunks: m.info.chunkCount };
        manifests[i] = m;
      }
    };
    await Promise.all(Array.from({ length: Math.min(COMPOSITE_CONCURRENCY, partIds.length) }, worker));
    const policy = manifests[0]!.info.policy;
    const mixed = manifests.findIndex((m) => formatPolicy(m.info.policy) !== formatPolicy(policy));
    if (mixed >= 0) throw badInput(`part ${mixed + 1} is stored as ${formatPolicy(manifests[mixed]!.info.policy)}, part 1 as ${formatPolicy(policy)}; the parts of one file share a policy`);
    const chunkSize = Math.max(...manifests.map((m) => m.info.chunkSize));
    const { root, manifest } = sealComposite({ parts, policy, chunkSize }, this.#keys!.manifestSecret);
    // The root is a manifest page: replicated, as many copies as the parts' pages have.
    const copies = policy.kind === 'replicas' ? { r: policy.r, w: policy.w } : { r: policy.m + 1, w: Math.min(SPREAD_QUORUM, policy.m + 1) };
    const res = await writer.writeRoot(root, manifest.info, { chunkSize, ...copies, windowChunks: this.#window, ...(o.signal ? { signal: o.signal } : {}) });
    this.counters.putsOk++;
    this.#log.info({ file: res.root.slice(0, 16), size: manifest.info.fileSize, parts: parts.length }, 'composite file stored');
    return { fileId: formatFileId(root.id, root.key), name: null, size: manifest.info.fileSize, chunks: manifest.info.chunkCount, newChunks: 0, policy: formatPolicy(policy), durationMs: Date.now() - began };
  }

  async stat(ref: string): Promise<FileStatView> {
    this.#needWriter('inspect files');
    const fileId = checkFileRef(ref);
    const reader = await this.#openManifest(fileId);
    const info = reader.info;
    const nodes = this.#peers.live();
    const tally = new FileHealth({
      policy: info.policy,
      nodes,
      rank: (id, view) => this.#peers.rank(id, view),
      maxDetail: MAX_STAT_CHUNKS,
      stripe: async (d) => decodeStripe(await this.fetcher.fetch(d)),
      ask: (ids) =>
        Promise.all(
          nodes.map(async (n) => {
            try {
              const res = await this.#peers.call(n.nodeId, FILE_METHODS.chunkHas, { ids }, undefined, { timeoutMs: CONTROL_CALL_TIMEOUT_MS });
              return { node: n.nodeId, have: parseReply(replies.has, res.body, n.nodeId).have };
            } catch {
              return { node: n.nodeId, have: [] as boolean[] };
            }
          }),
        ),
    });
    let batch: ChunkRef[] = [];
    for await (const ref of reader.refs()) {
      batch.push({ index: ref.index, id: Buffer.from(ref.id), size: ref.size });
      if (batch.length >= tally.batchSize) {
        await tally.add(batch);
        batch = [];
      }
    }
    await tally.add(batch);
    const { health, detail } = tally;
    return {
      fileId,
      name: null,
      size: info.fileSize,
      chunkSize: info.chunkSize,
      chunks: info.chunkCount,
      policy: formatPolicy(info.policy),
      createdAt: new Date(info.createdAt).toISOString(),
      health,
      zones: new Set(nodes.map((n) => n.zone ?? '')).size,
      zoneLossesSurvived: tally.zoneLossesSurvived ?? 0,
      chunkHealth: detail,
    };
  }

  #needSigner(what: string): AuthoritySigner {
    if (!this.#signer) throw storageOnly(what);
    return this.#signer;
  }

  #needWriter(what: string): FileWriter {
    if (!this.#writer) throw storageOnly(what);
    return this.#writer;
  }

  async #openManifest(fileId: string): Promise<FileManifest> {
    const root = parseFileId(fileId).rootId.toString('hex');
    const removed = this.#refs.tombstoneOf(root);
    if (removed !== undefined && !this.#refs.liveCommitAfter(root, removed)) throw notFound(`file ${fileId.slice(0, 16)}… was removed`);
    try {
      return await openFileManifest(fileId, (id) => this.fetcher.fetch(id));
    } catch (e) {
      if (e instanceof TesseraError && e.code === 'NOT_FOUND') throw notFound(`file ${fileId.slice(0, 16)}… is not stored in this cluster (no live node has its manifest)`);
      throw e;
    }
  }

  async *#counted(stream: AsyncGenerator<Buffer>): AsyncGenerator<Buffer> {
    try {
      yield* stream;
      this.counters.getsOk++;
    } catch (e) {
      this.counters.getsFailed++;
      throw e;
    }
  }
}
