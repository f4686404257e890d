/**
 * A small pool of worker threads that seal and open large runs of sectors (seal.ts) for the
 * master, so its event loop keeps moving other requests' bytes while a worker encrypts. Buffers
 * travel by transfer: a run's records are moved to a worker and back, never copied by the message
 * channel. Small runs (a 4 KiB random write) stay in line: SectorSealer decides, by
 * SEAL_OFFLOAD_MIN_BYTES and hasRoom().
 *
 * What the pool guarantees:
 * - Versions and nonces are exactly those of sealing in line: the caller takes a run's versions
 *   before it hands the run over, and the worker's sealer is a copy of the volume's (same key,
 *   same random nonce half, see SectorSealer.spec()).
 * - A job's answer is matched to it by id, whatever order the workers finish in. Each worker runs
 *   its jobs in the order given; jobs on different workers may finish in any order, which is
 *   safe because the volume never has two writes of one sector in flight (stripe locks).
 * - Bounded: at most `maxJobs` jobs and `maxBytes` bytes are handed over at once; past that,
 *   hasRoom() is false and the caller seals in line (no unbounded queue).
 * - A worker that dies fails its jobs with SealingFailed, never with wrong bytes: an open fails
 *   the read (EIO to the NBD client; nothing was written), a seal is redone in line by the
 *   sealer (seal.ts) from the plaintext the write still holds. The worker is replaced, up to
 *   MAX_WORKER_RESTARTS times, after which the pool stops taking jobs and all sealing is in line.
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { badInput, TesseraError } from '../../errors.js';
import { silentLogger, type Logger } from '../../log.js';
import { workerModule } from '../../worker-module.js';
import type { OpenedRun, SealerSpec, SealLane, SectorSealer } from './seal.js';

/**
 * Workers a master starts by default: two fewer than the cores, at most 4. The master's own
 * thread, the NBD client and the member nodes' work already take two cores; on a 2-core machine
 * one worker showed no gain beyond the noise (sequential writes up, reads down, README "What
 * sealing costs"), so there the pool is off.
 */
export const DEFAULT_SEAL_WORKERS = Math.max(0, Math.min(4, availableParallelism() - 2));
export const MAX_SEAL_WORKERS = 16;
/** Jobs handed over at once, all workers together; more are sealed in line. */
export const DEFAULT_SEAL_POOL_JOBS = 64;
/** Bytes handed over at once: 64 jobs of 256 KiB runs. */
export const DEFAULT_SEAL_POOL_BYTES = 16 << 20;
/** Replacements of dead workers over the pool's life before it gives up and everything runs in line. */
export const MAX_WORKER_RESTARTS = 8;

/** A sealing worker died with this job: the request fails (EIO), nothing wrong is returned. */
export class SealingFailed extends TesseraError {
  constructor(why: string) {
    super('IO', `sealing worker failed: ${why}; the request was not carried out, retry it`);
  }
}

/** Master → worker messages. */
export type PoolRequest =
  | { kind: 'add'; sealer: number; spec: SealerSpec }
  | { kind: 'forget'; sealer: number }
  | { kind: 'seal'; job: number; sealer: number; buf: ArrayBuffer; firstSector: number; firstVersion: number; n: number }
  | { kind: 'open'; job: number; sealer: number; buf: ArrayBuffer; firstSector: number; n: number };

/** Worker → master: the job's buffer back, and for opens the version per record. */
export type PoolReply =
  | { job: number; buf: ArrayBuffer; versions?: Float64Array }
  | { job: number; error: string };

interface Job {
  bytes: number;
  worker: Slot;
  resolve: (r: { buf: ArrayBuffer; versions?: Float64Array }) => void;
  reject: (e: unknown) => void;
}

interface Slot {
  worker: Worker;
  jobs: Set<number>;
}

export interface SealPoolOptions {
  workers?: number;
  maxJobs?: number;
  maxBytes?: number;
  logger?: Logger;
}

export class SealPool {
  private readonly slots: Slot[] = [];
  private readonly jobs = new Map<number, Job>();
  private readonly sealers = new Map<number, SealerSpec>();
  private readonly maxJobs: number;
  private readonly maxBytes: number;
  private readonly log: Logger;
  private nextJob = 1;
  private nextSealer = 1;
  private bytes = 0;
  private robin = 0;
  private restarts = 0;
  private closed = false;

  constructor(opts: SealPoolOptions = {}) {
    const workers = opts.workers ?? DEFAULT_SEAL_WORKERS;
    if (!Number.isInteger(workers) || workers < 1 || workers > MAX_SEAL_WORKERS) throw badInput(`sealing workers must be 1..${MAX_SEAL_WORKERS}, got ${workers}`);
    this.maxJobs = opts.maxJobs ?? DEFAULT_SEAL_POOL_JOBS;
    this.maxBytes = opts.maxBytes ?? DEFAULT_SEAL_POOL_BYTES;
    if (!Number.isInteger(this.maxJobs) || this.maxJobs < 1) throw badInput(`sealing pool job bound must be a positive integer, got ${this.maxJobs}`);
    if (!Number.isSafeInteger(this.maxBytes) || this.maxBytes < 1) throw badInput(`sealing pool byte bound must be a positive integer, got ${this.maxBytes}`);
    this.log = opts.logger ?? silentLogger;
    for (let i = 0; i < workers; i++) this.slots.push(this.spawn());
  }

  private spawn(): Slot {
    // Workers take no Node flags of the master's (a --cpu-prof there would write one per worker).
    const worker = new Worker(workerModule(import.meta.url, 'seal-worker'), { execArgv: [] });
    worker.unref();
    const slot: Slot = { worker, jobs: new Set() };
    worker.on('message', (m: PoolReply) => this.answer(slot, m));
    worker.on('error', (e) => this.lost(slot, e.message));
    worker.on('exit', (code) => this.lost(slot, `exited with code ${code}`));
    for (const [sealer, spec] of this.sealers) worker.postMessage({ kind: 'add', sealer, spec } satisfies PoolRequest);
    return slot;
  }

  private answer(slot: Slot, m: PoolReply): void {
    const job = this.jobs.get(m.job);
    if (job === undefined || job.worker !== slot) return;
    this.settle(m.job, job);
    if ('error' in m) job.reject(new SealingFailed(m.error));
    else job.resolve(m.versions !== undefined ? { buf: m.buf, versions: m.versions } : { buf: m.buf });
  }

  private settle(id: number, job: Job): void {
    this.jobs.delete(id);
    job.worker.jobs.delete(id);
    this.bytes -= job.bytes;
  }

  /** A worker died: its jobs fail, and another takes its place while restarts remain. */
  private lost(slot: Slot, why: string): void {
    const i = this.slots.indexOf(slot);
    if (i < 0) return;
    this.slots.splice(i, 1);
    for (const id of [...slot.jobs]) {
      const job = this.jobs.get(id);
      if (job === undefined) continue;
      this.settle(id, job);
      job.reject(new SealingFailed(why));
    }
    if (this.closed) return;
    void slot.worker.terminate();
    if (this.restarts < MAX_WORKER_RESTARTS) {
      this.restarts++;
      this.log.warn({ why, restarts: this.restarts }, 'sealing worker died; its requests failed with EIO; starting another');
      this.slots.push(this.spawn());
    } else if (this.slots.length === 0) {
      this.log.error({ why }, `sealing workers died ${MAX_WORKER_RESTARTS} times; sealing continues on the master's own thread`);
    }
  }

  /** Whether one more job of up to `bytes` bytes may be handed over now. */
  hasRoom(bytes = 0): boolean {
    return !this.closed && this.slots.length > 0 && this.jobs.size < this.maxJobs && this.bytes + bytes <= this.maxBytes;
  }

  /** Jobs and bytes handed over and not yet answered. */
  load(): { jobs: number; bytes: number; workers: number } {
    return { jobs: this.jobs.size, bytes: this.bytes, workers: this.slots.length };
  }

  private submit(req: PoolRequest & { job: number; buf: ArrayBuffer }): Promise<{ buf: ArrayBuffer; versions?: Float64Array }> {
    if (!this.hasRoom(req.buf.byteLength)) return Promise.reject(new SealingFailed('the pool has no room (the caller checks hasRoom() first)'));
    const slot = this.slots[this.robin++ % this.slots.length] as Slot;
    return new Promise((resolve, reject) => {
      const bytes = req.buf.byteLength;
      this.jobs.set(req.job, { bytes, worker: slot, resolve, reject });
      slot.jobs.add(req.job);
      this.bytes += bytes;
      slot.worker.postMessage(req, [req.buf]);
    });
  }

  /** A lane for one sealer: registers a copy of it in every worker until the lane is closed. */
  lane(sealer: SectorSealer): SealLane & { close(): void } {
    const id = this.nextSealer++;
    const spec = sealer.spec();
    this.sealers.set(id, spec);
    for (const s of this.slots) s.worker.postMessage({ kind: 'add', sealer: id, spec } satisfies PoolRequest);
    return {
      hasRoom: (bytes) => this.hasRoom(bytes),
      seal: async (rec, firstSector, firstVersion, n) => {
        const r = await this.submit({ kind: 'seal', job: this.nextJob++, sealer: id, buf: owned(rec), firstSector, firstVersion, n });
        return Buffer.from(r.buf);
      },
      open: async (rec, firstSector, n): Promise<OpenedRun> => {
        const r = await this.submit({ kind: 'open', job: this.nextJob++, sealer: id, buf: owned(rec), firstSector, n });
        if (r.versions === undefined || r.versions.length !== n) throw new SealingFailed('an open answered without its versions');
        return { plain: Buffer.from(r.buf), versions: r.versions };
      },
      close: () => {
        if (!this.sealers.delete(id)) return;
        for (const s of this.slots) s.worker.postMessage({ kind: 'forget', sealer: id } satisfies PoolRequest);
      },
    };
  }

  /** Stops the workers; jobs still out fail. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const slots = this.slots.splice(0);
    for (const slot of slots) {
      for (const id of [...slot.jobs]) {
        const job = this.jobs.get(id);
        if (job === undefined) continue;
        this.settle(id, job);
        job.reject(new SealingFailed('the pool was closed'));
      }
    }
    await Promise.all(slots.map((s) => s.worker.terminate()));
  }

  /** Stops worker `i` as a crash would (tests of what its jobs get). */
  killWorker(i: number): Promise<number> {
    const s = this.slots[i];
    if (s === undefined) throw badInput(`the pool has no worker ${i}`);
    return s.worker.terminate();
  }
}

/**
 * The run's bytes in an ArrayBuffer of their own, which can be moved to a worker: the buffer
 * itself when it spans its whole ArrayBuffer, else a copy (a slice of a larger read would take
 * the rest of that read with it).
 */
function owned(b: Buffer): ArrayBuffer {
  if (b.byteOffset === 0 && b.byteLength === b.buffer.byteLength && b.buffer instanceof ArrayBuffer) return b.buffer;
  const ab = new ArrayBuffer(b.length);
  new Uint8Array(ab).set(b);
  return ab;
}
