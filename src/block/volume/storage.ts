/**
 * Small state blobs the master must find again after a restart (intent log, member health and
 * dirty units). Injectable so tests keep them in memory and simulate a crash by reopening.
 */
import { open, rename } from 'node:fs/promises';
import { dirname } from 'node:path';
import { TesseraError, tooLarge } from '../../errors.js';

/** Volume state blobs stay small by construction (bounded dirty sets); anything bigger is damage. */
export const MAX_STATE_BLOB_BYTES = 64 << 20;

export interface BlobStorage {
  /** The last saved blob, or null if none was ever saved. */
  load(): Promise<Buffer | null>;
  /** Replaces the blob atomically and durably: after a crash, load() returns the old or the new one whole. */
  save(data: Buffer): Promise<void>;
}

export class MemoryBlobStorage implements BlobStorage {
  private data: Buffer | null = null;
  saves = 0;
  async load(): Promise<Buffer | null> { return this.data === null ? null : Buffer.from(this.data); }
  async save(data: Buffer): Promise<void> {
    if (data.length > MAX_STATE_BLOB_BYTES) throw tooLarge(`state blob of ${data.length} bytes exceeds ${MAX_STATE_BLOB_BYTES}`);
    this.data = Buffer.from(data);
    this.saves++;
  }
}

/** Write to a temporary file, fsync, rename over the old one, fsync the directory. */
export class FileBlobStorage implements BlobStorage {
  saves = 0;
  constructor(readonly path: string) {}

  async load(): Promise<Buffer | null> {
    let fh;
    try {
      fh = await open(this.path, 'r');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw new TesseraError('IO', `cannot open volume state ${this.path}: ${(e as Error).message}`, undefined, { cause: e });
    }
    try {
      const { size } = await fh.stat();
      if (size > MAX_STATE_BLOB_BYTES) throw tooLarge(`volume state ${this.path} is ${size} bytes, over ${MAX_STATE_BLOB_BYTES}`);
      const buf = Buffer.alloc(size);
      const { bytesRead } = await fh.read(buf, 0, size, 0);
      return buf.subarray(0, bytesRead);
    } finally {
      await fh.close();
    }
  }

  async save(data: Buffer): Promise<void> {
    if (data.length > MAX_STATE_BLOB_BYTES) throw tooLarge(`state blob of ${data.length} bytes exceeds ${MAX_STATE_BLOB_BYTES}`);
    const tmp = `${this.path}.tmp`;
    try {
      const fh = await open(tmp, 'w');
      try {
        await fh.writeFile(data);
        await fh.datasync();
      } finally {
        await fh.close();
      }
      await rename(tmp, this.path);
      const dir = await open(dirname(this.path), 'r');
      try { await dir.sync(); } finally { await dir.close(); }
      this.saves++;
    } catch (e) {
      if (e instanceof TesseraError) throw e;
      throw new TesseraError('IO', `cannot save volume state ${this.path}: ${(e as Error).message}`, undefined, { cause: e });
    }
  }
}

/**
 * Serialises saves and merges concurrent requests: whoever asks while a save runs shares the next
 * one, so N writers dirtying N stripes at once cost two fsyncs, not N.
 */
export class CoalescingSaver {
  private current: Promise<void> | null = null;
  private next: Promise<void> | null = null;

  constructor(private readonly storage: BlobStorage, private readonly snapshot: () => { bytes: Buffer; done: () => void }) {}

  /** Resolves once a save that started after this call has completed. */
  save(): Promise<void> {
    if (this.next !== null) return this.next;
    const prev = this.current;
    const run = (async () => {
      // Always yield first: `this.next = run` below must happen before this line clears it.
      await (prev === null ? undefined : prev.catch(() => {}));
      this.next = null;
      const snap = this.snapshot();
      const p = this.storage.save(snap.bytes);
      this.current = p;
      try {
        await p;
        snap.done();
      } finally {
        if (this.current === p) this.current = null;
      }
    })();
    this.next = run;
    return run;
  }

  /** Waits for the saves under way. */
  async idle(): Promise<void> {
    for (let i = 0; i < 2 && (this.next !== null || this.current !== null); i++) {
      await (this.next ?? this.current)?.catch(() => {});
    }
  }
}

/** 6-byte unsigned integers cover every stripe number (< 2^38) with room to spare. */
export const U48_BYTES = 6;
export const MAX_U48 = 2 ** 48 - 1;
