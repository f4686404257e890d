/**
 * Admission of requests on one connection, bounded by count and by payload bytes. A request
 * larger than the byte budget is still admitted when nothing else is in flight, so the largest
 * legal request always makes progress.
 */
export class InFlightLimiter {
  private count = 0;
  private bytes = 0;
  private waiters: Array<{ bytes: number; resolve: () => void }> = [];
  private idleWaiters: Array<() => void> = [];

  constructor(
    private readonly maxCount: number,
    private readonly maxBytes: number,
  ) {}

  get inFlight(): number {
    return this.count;
  }

  get inFlightBytes(): number {
    return this.bytes;
  }

  acquire(bytes: number): Promise<void> {
    if (this.waiters.length === 0 && this.fits(bytes)) {
      this.take(bytes);
      return Promise.resolve();
    }
    return new Promise((resolve) => this.waiters.push({ bytes, resolve }));
  }

  release(bytes: number): void {
    this.count--;
    this.bytes -= bytes;
    // FIFO: a large request at the head is not starved by small ones behind it.
    while (this.waiters.length > 0 && this.fits(this.waiters[0]!.bytes)) {
      const w = this.waiters.shift()!;
      this.take(w.bytes);
      w.resolve();
    }
    if (this.count === 0) {
      const idle = this.idleWaiters;
      this.idleWaiters = [];
      for (const r of idle) r();
    }
  }

  idle(): Promise<void> {
    if (this.count === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private fits(bytes: number): boolean {
    return this.count < this.maxCount && (this.count === 0 || this.bytes + bytes <= this.maxBytes);
  }

  private take(bytes: number): void {
    this.count++;
    this.bytes += bytes;
  }
}
