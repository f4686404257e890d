/**
 * Chunk engine in RAM, for `--memory` nodes and tests. Same contract as the disk engine: reads
 * verify, the quota holds, and the store owns its copies (callers reuse their buffers).
 */
import { freemem } from 'node:os';
import { TesseraError, notFound } from '../errors.js';
import {
  type ChunkStore,
  type ChunkStoreUsage,
  type GetOptions,
  type PutOptions,
  checkChunkId,
  checkPut,
  corruptChunk,
  matchesId,
  noSpace,
  normalizeQuota,
} from './chunk-store.js';

export interface MemoryChunkStoreOptions {
  /** Bytes; Infinity or undefined for none. */
  quota?: number;
}

export class MemoryChunkStore implements ChunkStore {
  readonly #chunks = new Map<string, Buffer>();
  readonly #quarantined = new Map<string, Buffer>();
  readonly #quota: number;
  #used = 0;
  #closed = false;

  constructor(opts: MemoryChunkStoreOptions = {}) {
    this.#quota = normalizeQuota(opts.quota);
  }

  async put(id: Buffer, data: Buffer, opts?: PutOptions): Promise<boolean> {
    this.#open();
    checkPut(id, data, opts);
    const key = id.toString('hex');
    if (this.#chunks.has(key)) return false;
    if (this.#used + data.length > this.#quota) {
      throw noSpace(`chunk store quota of ${this.#quota} bytes would be exceeded (${this.#used} used, chunk is ${data.length}); raise the quota or free space`, {
        used: this.#used,
        quota: this.#quota,
        size: data.length,
      });
    }
    this.#chunks.set(key, Buffer.from(data));
    this.#used += data.length;
    return true;
  }

  async get(id: Buffer, opts?: GetOptions): Promise<Buffer> {
    this.#open();
    checkChunkId(id);
    const key = id.toString('hex');
    const data = this.#chunks.get(key);
    if (data === undefined) throw notFound(`chunk ${key} is not stored here`, { id: key });
    if (opts?.unverified !== true && !matchesId(id, data)) {
      this.#moveAside(key, data);
      throw corruptChunk(key);
    }
    return Buffer.from(data);
  }

  async has(id: Buffer): Promise<boolean> {
    this.#open();
    checkChunkId(id);
    return this.#chunks.has(id.toString('hex'));
  }

  async delete(id: Buffer): Promise<boolean> {
    this.#open();
    checkChunkId(id);
    const key = id.toString('hex');
    const data = this.#chunks.get(key);
    if (data === undefined) return false;
    this.#chunks.delete(key);
    this.#used -= data.length;
    return true;
  }

  async *list(): AsyncIterable<Buffer> {
    this.#open();
    for (const key of [...this.#chunks.keys()]) yield Buffer.from(key, 'hex');
  }

  async quarantine(id: Buffer): Promise<boolean> {
    this.#open();
    checkChunkId(id);
    const key = id.toString('hex');
    const data = this.#chunks.get(key);
    if (data === undefined) return false;
    this.#moveAside(key, data);
    return true;
  }

  async *listQuarantined(): AsyncIterable<Buffer> {
    this.#open();
    for (const key of [...this.#quarantined.keys()]) yield Buffer.from(key, 'hex');
  }

  async purgeQuarantined(id: Buffer): Promise<boolean> {
    this.#open();
    checkChunkId(id);
    return this.#quarantined.delete(id.toString('hex'));
  }

  usage(): ChunkStoreUsage {
    return {
      used: this.#used,
      count: this.#chunks.size,
      quota: this.#quota,
      capacity: Math.min(this.#quota, freemem() + this.#used),
    };
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#chunks.clear();
    this.#quarantined.clear();
    this.#used = 0;
  }

  /** Test hook: flips one byte of a stored copy in place, as bit rot would. */
  corruptForTest(id: Buffer, offset = 0): void {
    const data = this.#chunks.get(id.toString('hex'));
    if (data === undefined || data.length === 0) return;
    const i = offset % data.length;
    data[i] = (data[i] ?? 0) ^ 0xff;
  }

  #moveAside(key: string, data: Buffer): void {
    this.#chunks.delete(key);
    this.#used -= data.length;
    this.#quarantined.set(key, data);
  }

  #open(): void {
    if (this.#closed) throw new TesseraError('UNAVAILABLE', 'chunk store is closed');
  }
}
