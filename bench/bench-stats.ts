/** Summaries the benchmarks share: the machine is noisy, so they report medians over rounds. */

export function mean(xs: readonly number[]): number {
  if (xs.length === 0) throw new Error('mean of no values');
  return xs.reduce((a, b) => a + b, 0) / xs.length;
}

/** The middle value; for an even count, the mean of the two middle ones. */
export function median(xs: readonly number[]): number {
  if (xs.length === 0) throw new Error('median of no values');
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

/**
 * The baseline each run is judged against on a machine whose speed drifts: the mean of the
 * baselines measured right before and right after it. `base` has one more entry than there are
 * runs, and run i sits between base[i] and base[i + 1].
 */
export function bracketingBaselines(base: readonly number[], runs: number): number[] {
  if (base.length !== runs + 1) throw new Error(`${runs} runs need ${runs + 1} bracketing baselines, got ${base.length}`);
  return Array.from({ length: runs }, (_, i) => mean([base[i] as number, base[i + 1] as number]));
}
