/**
 * Block devices held in memory: sparse pages allocated on first write, so a large device costs
 * nothing until used. The NBD protocol tests serve them in place of a cluster's volumes.
 */
import type { BlockDevice, VolumeProvider } from '../../src/block/device.js';
import { TesseraError, badInput, notFound } from '../../src/errors.js';

/** Allocation unit: big enough that the page map stays small, small enough that random 4 KiB
 *  writes to a fresh device do not allocate much more than they store. */
export const MEMORY_PAGE_BYTES = 64 << 10;
/** Largest memory device (1 TiB): sizes stay exact in a JS number and page indexes stay small. */
export const MAX_MEMORY_DEVICE_BYTES = 2 ** 40;

export interface MemoryDeviceOptions {
  size: number;
  minBlockSize?: number;
  preferredBlockSize?: number;
  /** Most bytes of pages the device may hold; writes beyond it fail with NO_SPACE. */
  capacityBytes?: number;
}

/** The shared store of one memory volume. Every `open()` of it gets its own handle. */
export class MemoryStore {
  readonly size: number;
  readonly minBlockSize: number;
  readonly preferredBlockSize: number;
  readonly capacityBytes: number;
  private readonly pages = new Map<number, Buffer>();

  constructor(opts: MemoryDeviceOptions) {
    const { size } = opts;
    const min = opts.minBlockSize ?? 512;
    const pref = opts.preferredBlockSize ?? 4096;
    if (!Number.isSafeInteger(size) || size <= 0 || size > MAX_MEMORY_DEVICE_BYTES) {
      throw badInput(`memory device size ${size} must be an integer in 1..${MAX_MEMORY_DEVICE_BYTES}`);
    }
    if (!isPowerOfTwo(min) || min < 512 || min > MEMORY_PAGE_BYTES) {
      throw badInput(`memory device minBlockSize ${min} must be a power of two in 512..${MEMORY_PAGE_BYTES}`);
    }
    if (!Number.isSafeInteger(pref) || pref < min) throw badInput(`memory device preferredBlockSize ${pref} must be ≥ minBlockSize ${min}`);
    this.size = size;
    this.minBlockSize = min;
    this.preferredBlockSize = pref;
    this.capacityBytes = opts.capacityBytes ?? Number.MAX_SAFE_INTEGER;
  }

  /** Bytes of pages currently allocated. */
  get allocatedBytes(): number {
    return this.pages.size * MEMORY_PAGE_BYTES;
  }

  read(offset: number, length: number): Buffer {
    this.check(offset, length);
    const out = Buffer.allocUnsafe(length);
    this.forEachPage(offset, length, (page, inPage, at, n) => {
      const p = this.pages.get(page);
      if (p) p.copy(out, at, inPage, inPage + n);
      else out.fill(0, at, at + n);
    });
    return out;
  }

  write(offset: number, data: Buffer): void {
    this.check(offset, data.length);
    // Check capacity before touching anything, so a failed write leaves no partial data.
    let fresh = 0;
    this.forEachPage(offset, data.length, (page) => {
      if (!this.pages.has(page)) fresh++;
    });
    if (fresh > 0 && this.allocatedBytes + fresh * MEMORY_PAGE_BYTES > this.capacityBytes) {
      throw new TesseraError('NO_SPACE', `memory device is full: ${this.capacityBytes} bytes of pages allocated`);
    }
    this.forEachPage(offset, data.length, (page, inPage, at, n) => {
      let p = this.pages.get(page);
      if (!p) {
        p = Buffer.alloc(MEMORY_PAGE_BYTES);
        this.pages.set(page, p);
      }
      data.copy(p, inPage, at, at + n);
    });
  }

  /** Whole pages in the range are released; partial pages are zeroed in place. */
  zero(offset: number, length: number): void {
    this.check(offset, length);
    this.forEachPage(offset, length, (page, inPage, _at, n) => {
      if (n === MEMORY_PAGE_BYTES) this.pages.delete(page);
      else this.pages.get(page)?.fill(0, inPage, inPage + n);
    });
  }

  private check(offset: number, length: number): void {
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > this.size) {
      throw badInput(`range ${offset}+${length} is outside the ${this.size}-byte memory device`);
    }
  }

  private forEachPage(offset: number, length: number, fn: (page: number, inPage: number, at: number, n: number) => void): void {
    let at = 0;
    while (at < length) {
      const pos = offset + at;
      const page = Math.floor(pos / MEMORY_PAGE_BYTES);
      const inPage = pos - page * MEMORY_PAGE_BYTES;
      const n = Math.min(MEMORY_PAGE_BYTES - inPage, length - at);
      fn(page, inPage, at, n);
      at += n;
    }
  }
}

/** One open handle on a MemoryStore. Memory is as durable as it gets, so flush and FUA are no-ops. */
export class MemoryBlockDevice implements BlockDevice {
  readonly multiConn = true;
  private closed = false;

  constructor(readonly store: MemoryStore) {}

  get size(): number {
    return this.store.size;
  }
  get minBlockSize(): number {
    return this.store.minBlockSize;
  }
  get preferredBlockSize(): number {
    return this.store.preferredBlockSize;
  }

  async read(offset: number, length: number): Promise<Buffer> {
    this.live();
    return this.store.read(offset, length);
  }
  async write(offset: number, data: Buffer, _opts?: { fua?: boolean }): Promise<void> {
    this.live();
    this.store.write(offset, data);
  }
  async flush(): Promise<void> {
    this.live();
  }
  async trim(offset: number, length: number): Promise<void> {
    this.live();
    this.store.zero(offset, length);
  }
  async writeZeroes(offset: number, length: number, _opts?: { fua?: boolean }): Promise<void> {
    this.live();
    this.store.zero(offset, length);
  }
  /** Closes this handle only; the store and its data stay for other handles. */
  async close(): Promise<void> {
    this.closed = true;
  }

  private live(): void {
    if (this.closed) throw new TesseraError('CONFLICT', 'memory block device handle is closed');
  }
}

export interface MemoryVolumeSpec extends MemoryDeviceOptions {
  name: string;
  description?: string;
}

/** A fixed set of named memory volumes; list() keeps the order they were given in. */
export class MemoryVolumeProvider implements VolumeProvider {
  private readonly volumes = new Map<string, { store: MemoryStore; description: string }>();

  constructor(specs: MemoryVolumeSpec[]) {
    for (const s of specs) this.add(s);
  }

  add(spec: MemoryVolumeSpec): MemoryStore {
    if (spec.name.length === 0 || Buffer.byteLength(spec.name) > 4096 || spec.name.includes('\0')) {
      throw badInput(`volume name "${spec.name}" must be 1..4096 bytes without NUL`);
    }
    if (this.volumes.has(spec.name)) throw new TesseraError('CONFLICT', `volume "${spec.name}" already exists`);
    const store = new MemoryStore(spec);
    this.volumes.set(spec.name, { store, description: spec.description ?? `memory volume, ${spec.size} bytes` });
    return store;
  }

  store(name: string): MemoryStore | undefined {
    return this.volumes.get(name)?.store;
  }

  async list(): Promise<Array<{ name: string; size: number; description: string }>> {
    return [...this.volumes].map(([name, v]) => ({ name, size: v.store.size, description: v.description }));
  }

  async open(name: string): Promise<BlockDevice> {
    const v = this.volumes.get(name);
    if (!v) throw notFound(`no volume named "${name}"`);
    return new MemoryBlockDevice(v.store);
  }
}

function isPowerOfTwo(n: number): boolean {
  return Number.isInteger(n) && n > 0 && (n & (n - 1)) === 0;
}
