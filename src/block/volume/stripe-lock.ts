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
    return this.releaser(stripe);
  }

  /** Hands the stripe to the next waiter, or frees it; only the first call counts. */
  private releaser(stripe: number): () => void {
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

  with<T>(stripe: number, fn: () => Promise<T>): Promise<T> {
    // A free stripe (nearly always, outside parity stripes being filled) is taken in this turn and
    // fn starts at once: no promise and turn of the microtask queue just to learn that.
    if (!this.queues.has(stripe)) {
      this.queues.set(stripe, []);
      const release = this.releaser(stripe);
      let running: Promise<T>;
      try {
        running = fn();
      } catch (e) {
        release();
        return Promise.reject(e);
      }
      return running.finally(release);
    }
    return this.withQueued(stripe, fn);
  }

  private async withQueued<T>(stripe: number, fn: () => Promise<T>): Promise<T> {
    const release = await this.acquire(stripe);
    try {
      return await fn();
    } finally {
      release();
    }
  }
}
