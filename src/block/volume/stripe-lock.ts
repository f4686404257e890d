/**
 * One async mutex per stripe, created on demand and dropped when free, so parity updates of a
 * stripe never interleave while different stripes proceed in parallel.
 */
export class StripeLocks {
  private readonly queues = new Map<number, Array<() => void>>();

  get held(): number { return this.queues.size; }

  async acquire(stripe: number): Promise<() => void> {
    const q = this.queues.get(stripe);
    if (q === undefined) {
      this.queues.set(stripe, []);
    } else {
      await new Promise<void>((resolve) => q.push(resolve));
    }
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const waiters = this.queues.get(stripe);
      const next = waiters?.shift();
      if (next !== undefined) next();
      else this.queues.delete(stripe);
    };
  }

  async with<T>(stripe: number, fn: () => Promise<T>): Promise<T> {
    const release = await this.acquire(stripe);
    try {
      return await fn();
    } finally {
      release();
    }
  }
}
