/**
 * The MD5 of a body (an object's ETag), computed on a worker thread while the body streams.
 *
 * A named put hashes its plaintext three times: SHA-256 for the convergent key, SHA-256 of the
 * ciphertext for the chunk id, and MD5 for the ETag. MD5 cannot use the CPU's SHA or AES
 * extensions (≈ 650 MB/s here against > 1.5 GB/s for SHA-256), so on the writer's event loop it
 * took about a fifth of the put's time while the loop is what the put waits on. On the worker it
 * runs beside the loop; the loop only copies each piece into a staging buffer (a memcpy, about
 * a twentieth of the hash's cost) and hands the buffer over without copying it again.
 *
 * Bodies that end before one staging buffer fills are hashed on the calling thread: a small
 * object never waits for a thread. Memory per body is at most MAX_STAGED_BUFFERS × STAGE_BYTES.
 */
import { createHash, type Hash } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import { TesseraError } from '../errors.js';

/** Bytes copied together before the worker sees them: one message per MiB. */
export const STAGE_BYTES = 1 << 20;
/** Staging buffers one body may have at the worker at once; the body waits for one beyond that. */
export const MAX_STAGED_BUFFERS = 4;

/** The worker's code: one MD5 per open body, by id; each buffer goes back once hashed. */
const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const open = new Map();
parentPort.on('message', (m) => {
  if (m.op === 'update') {
    let h = open.get(m.id);
    if (h === undefined) open.set(m.id, (h = createHash('md5')));
    h.update(new Uint8Array(m.buf, 0, m.len));
    parentPort.postMessage({ op: 'free', id: m.id, buf: m.buf }, [m.buf]);
  } else if (m.op === 'digest') {
    const h = open.get(m.id) ?? createHash('md5');
    open.delete(m.id);
    const d = h.digest();
    parentPort.postMessage({ op: 'digest', id: m.id, digest: d.buffer.slice(d.byteOffset, d.byteOffset + d.length) });
  } else if (m.op === 'drop') {
    open.delete(m.id);
  }
});
`;

type Reply = { op: 'free'; id: number; buf: ArrayBuffer } | { op: 'digest'; id: number; digest: ArrayBuffer };

interface Listener {
  free(buf: ArrayBuffer): void;
  digest(d: Buffer): void;
  fail(e: TesseraError): void;
}

/** The process's one MD5 worker, started on first use; it keeps the process alive only while a body uses it. */
class Md5Thread {
  #worker: Worker | undefined;
  #nextId = 1;
  readonly #listeners = new Map<number, Listener>();

  open(l: Listener): number {
    const id = this.#nextId++;
    this.#listeners.set(id, l);
    this.#worker?.ref();
    return id;
  }

  close(id: number, drop: boolean): void {
    if (this.#listeners.delete(id) && drop) this.#worker?.postMessage({ op: 'drop', id });
    if (this.#listeners.size === 0) this.#worker?.unref();
  }

  update(id: number, buf: ArrayBuffer, len: number): void {
    this.#started().postMessage({ op: 'update', id, buf, len }, [buf]);
  }

  digest(id: number): void {
    this.#started().postMessage({ op: 'digest', id });
  }

  #started(): Worker {
    if (this.#worker !== undefined) return this.#worker;
    const w = new Worker(WORKER_SOURCE, { eval: true });
    w.on('message', (m: Reply) => {
      const l = this.#listeners.get(m.id);
      if (l === undefined) return;
      if (m.op === 'free') l.free(m.buf);
      else l.digest(Buffer.from(m.digest));
    });
    const lost = (why: string) => {
      if (this.#worker !== w) return;
      this.#worker = undefined;
      const e = new TesseraError('INTERNAL', `the MD5 worker thread ${why}; the upload cannot be hashed, send it again`);
      const ls = [...this.#listeners.values()];
      this.#listeners.clear();
      for (const l of ls) l.fail(e);
    };
    w.on('error', (e) => lost(`failed: ${e.message}`));
    w.on('exit', (code) => lost(`exited with ${code}`));
    // Listening refs the worker; only open bodies should keep the process alive.
    if (this.#listeners.size === 0) w.unref();
    this.#worker = w;
    return w;
  }
}

const thread = new Md5Thread();

/** One body's MD5: `update` with each piece in order, then `digest` once. */
export class OffThreadMd5 {
  /** Bytes of the body not yet handed to the worker, in the current staging buffer. */
  #stage: Buffer | undefined;
  #fill = 0;
  /** Staging buffers back from the worker, and how many are there now. */
  readonly #free: ArrayBuffer[] = [];
  #atWorker = 0;
  #id: number | undefined;
  #waiting: { resolve: () => void; reject: (e: TesseraError) => void } | undefined;
  #digest: { resolve: (d: Buffer) => void; reject: (e: TesseraError) => void } | undefined;
  #failed: TesseraError | undefined;
  #done = false;

  /** Staging buffers this body holds, at the worker or here: bounded by MAX_STAGED_BUFFERS + 1. */
  get buffersHeld(): number {
    return this.#atWorker + this.#free.length + (this.#stage !== undefined ? 1 : 0);
  }

  /** Takes `piece` (copied: the caller may reuse it); resolves when the body may send more. */
  async update(piece: Uint8Array): Promise<void> {
    if (this.#done) throw new TesseraError('INTERNAL', 'MD5 updated after its digest');
    let at = 0;
    while (at < piece.length) {
      if (this.#failed) throw this.#failed;
      this.#stage ??= Buffer.from(this.#free.pop() ?? new ArrayBuffer(STAGE_BYTES));
      const n = Math.min(STAGE_BYTES - this.#fill, piece.length - at);
      this.#stage.set(piece.subarray(at, at + n), this.#fill);
      this.#fill += n;
      at += n;
      if (this.#fill === STAGE_BYTES) await this.#handOver();
    }
  }

  /** The MD5 of everything updated. */
  async digest(): Promise<Buffer> {
    if (this.#done) throw new TesseraError('INTERNAL', 'MD5 digest taken twice');
    this.#done = true;
    if (this.#failed) throw this.#failed;
    if (this.#id === undefined) {
      // Never reached the worker: a body under one staging buffer is hashed here.
      const h: Hash = createHash('md5');
      if (this.#stage !== undefined) h.update(this.#stage.subarray(0, this.#fill));
      this.#stage = undefined;
      return h.digest();
    }
    const id = this.#id;
    if (this.#fill > 0) this.#send(id);
    const d = new Promise<Buffer>((resolve, reject) => (this.#digest = { resolve, reject }));
    thread.digest(id);
    try {
      return await d;
    } finally {
      thread.close(id, false);
    }
  }

  /** Gives up on the body: the worker forgets it. */
  abort(): void {
    this.#done = true;
    if (this.#id !== undefined) thread.close(this.#id, true);
    this.#stage = undefined;
    this.#free.length = 0;
  }

  async #handOver(): Promise<void> {
    this.#id ??= thread.open({
      free: (buf) => {
        this.#atWorker--;
        if (!this.#done) this.#free.push(buf);
        const w = this.#waiting;
        this.#waiting = undefined;
        w?.resolve();
      },
      digest: (d) => this.#digest?.resolve(d),
      fail: (e) => {
        this.#failed = e;
        this.#waiting?.reject(e);
        this.#digest?.reject(e);
      },
    });
    this.#send(this.#id);
    // At most MAX_STAGED_BUFFERS at the worker: the body waits for one to come back.
    if (this.#atWorker >= MAX_STAGED_BUFFERS) await new Promise<void>((resolve, reject) => (this.#waiting = { resolve, reject }));
  }

  #send(id: number): void {
    const stage = this.#stage!;
    this.#stage = undefined;
    const len = this.#fill;
    this.#fill = 0;
    this.#atWorker++;
    thread.update(id, stage.buffer as ArrayBuffer, len);
  }
}
