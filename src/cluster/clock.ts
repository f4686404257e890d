/**
 * Time and randomness as injected dependencies, so membership runs unchanged on the real event loop
 * and inside the deterministic simulator (src/cluster/sim/).
 */

export interface Clock {
  /** Milliseconds on a monotonic-enough scale; only differences and ordering matter. */
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** A uniform draw in [0, 1), like Math.random. */
export type RandomSource = () => number;

/** The process's event loop. Timers are unref'd: membership alone must not keep a process alive. */
export const realClock: Clock = {
  now: () => performance.timeOrigin + performance.now(),
  setTimeout(fn, ms) {
    const t = setTimeout(fn, Math.max(0, ms));
    t.unref();
    return t;
  },
  clearTimeout(handle) {
    clearTimeout(handle as ReturnType<typeof setTimeout>);
  },
};

export const mathRandom: RandomSource = Math.random;

/** An integer in [0, n) from a random source. */
export function randomInt(random: RandomSource, n: number): number {
  return Math.min(n - 1, Math.floor(random() * n));
}

/** Fisher–Yates shuffle in place, driven by the injected source so simulations replay exactly. */
export function shuffle<T>(random: RandomSource, xs: T[]): T[] {
  for (let i = xs.length - 1; i > 0; i--) {
    const j = randomInt(random, i + 1);
    const t = xs[i]!;
    xs[i] = xs[j]!;
    xs[j] = t;
  }
  return xs;
}

/**
 * `k` distinct entries of `xs` chosen uniformly, without modifying `xs`. For a few of many it draws
 * indices (O(k)) instead of shuffling the whole list.
 */
export function pick<T>(random: RandomSource, xs: readonly T[], k: number): T[] {
  const n = xs.length;
  if (k <= 0 || n === 0) return [];
  if (k * 4 >= n) return shuffle(random, [...xs]).slice(0, k);
  const chosen = new Set<number>();
  const out: T[] = [];
  while (out.length < k) {
    const i = randomInt(random, n);
    if (chosen.has(i)) continue;
    chosen.add(i);
    out.push(xs[i]!);
  }
  return out;
}
