/**
 * One worker thread per process that takes CPU work of puts off the event loop: sealing chunks
 * (chunk-sealer.ts) and the MD5 of object bodies (md5-offload.ts). A put's loop is its critical
 * path (every chunk is assembled, sent and stored from it) on a machine whose other core is
 * shared with the receivers; one thread, not one per kind of work, keeps the memory of a second
 * V8 isolate out of a node's peak. Started on first use, it keeps the process alive only while
 * jobs are out. If it dies, every job out fails with INTERNAL (their puts fail, nothing is
 * committed) and the next job starts a new thread.
 */
import { Worker } from 'node:worker_threads';
import { TesseraError } from '../errors.js';
import { workerModule } from '../worker-module.js';

export type PutThreadRequest =
  /** `md5`: the plaintext from byte `from` on also goes into that body's MD5 (md5-offload.ts `takeOver`). */
  | { op: 'seal'; job: number; plain: ArrayBuffer; len: number; out: ArrayBuffer; secret: ArrayBuffer; md5?: { body: number; from: number } }
  | { op: 'md5'; job: number; body: number; buf: ArrayBuffer; len: number }
  | { op: 'md5-digest'; job: number; body: number }
  | { op: 'md5-drop'; body: number };

export type PutThreadReply =
  | ({ op: 'sealed'; job: number; plain: ArrayBuffer; out: ArrayBuffer } & ({ id: string; key: string; size: number } | { error: string }))
  | { op: 'hashed'; job: number; buf: ArrayBuffer }
  | { op: 'digest'; job: number; digest: string };

type Job = { resolve: (r: PutThreadReply) => void; reject: (e: TesseraError) => void };
type WithoutJob<T> = T extends unknown ? Omit<T, 'job'> : never;

class PutThread {
  #worker: Worker | undefined;
  #next = 1;
  readonly #jobs = new Map<number, Job>();

  /** A number naming one body's MD5 at the thread. */
  newBody(): number {
    return this.#next++;
  }

  /** Sends a job and resolves with its answer; `transfer` moves those buffers to the thread. */
  run(req: WithoutJob<Exclude<PutThreadRequest, { op: 'md5-drop' }>>, transfer: ArrayBuffer[]): Promise<PutThreadReply> {
    const w = this.#started();
    const job = this.#next++;
    const p = new Promise<PutThreadReply>((resolve, reject) => this.#jobs.set(job, { resolve, reject }));
    if (this.#jobs.size === 1) w.ref();
    w.postMessage({ ...req, job }, transfer);
    return p;
  }

  /** Tells the thread without waiting for an answer. */
  tell(req: Extract<PutThreadRequest, { op: 'md5-drop' }>): void {
    this.#worker?.postMessage(req);
  }

  #started(): Worker {
    if (this.#worker !== undefined) return this.#worker;
    const w = new Worker(workerModule(import.meta.url, 'put-worker'), { execArgv: [] });
    w.on('message', (m: PutThreadReply) => {
      const j = this.#jobs.get(m.job);
      this.#jobs.delete(m.job);
      if (this.#jobs.size === 0) w.unref();
      j?.resolve(m);
    });
    const lost = (why: string) => {
      if (this.#worker !== w) return;
      this.#worker = undefined;
      const e = new TesseraError('INTERNAL', `the put thread ${why}; the put was not stored, send it again`);
      const jobs = [...this.#jobs.values()];
      this.#jobs.clear();
      for (const j of jobs) j.reject(e);
    };
    w.on('error', (e) => lost(`failed: ${e.message}`));
    w.on('exit', (code) => lost(`exited with ${code}`));
    // Listening refs the worker; only jobs out should keep the process alive.
    w.unref();
    this.#worker = w;
    return w;
  }
}

export const putThread = new PutThread();
