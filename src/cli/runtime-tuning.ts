/**
 * How tessera processes run Node: glibc malloc settings and V8 heap flags, both measured on the
 * put and get paths (DESIGN §9, docs/development.md "Runtime tuning").
 *
 * malloc: with glibc's defaults each large buffer that crypto, hashing or socket reads allocate
 * per chunk is served from fresh pages and handed back to the kernel when the garbage collector
 * frees it, so every megabyte is page-faulted and zeroed again: AES-GCM and SHA-256 alternating
 * chunk by chunk ran 3–5× slower than with these settings. They stop glibc from returning freed
 * heap to the kernel and from mapping large blocks one by one; peak memory is unchanged.
 *
 * V8: a node's JavaScript heap is small (≈ 13 MB) while it moves hundreds of MB of short-lived
 * buffers, and V8 sizes its first old-generation limit from the heap, so it ran a full
 * mark-compact every few tens of MB moved (25–30 per 256 MiB put on each node, 15–18 % of the
 * machine's CPU). A larger initial old space lets the young-generation collections, which free
 * those buffers cheaply, do the work: 2–14 full collections per 512 MiB, and peak memory stays
 * within the files-large test's bound.
 *
 * V8's memory reducer: once a node has been idle for a few seconds after a full collection, V8
 * runs collections that shrink the heap back (measured: 53 MB committed down to 20 MB), and the
 * next large get grows it again: after 30 s idle a 512 MiB get cost the reading node 15–26 % more
 * CPU than the same get right after another (GC itself only 27–68 against 21–24 ms of it; the
 * rest was spread over the native crypto and socket calls, so not pinned to one cause). Without the reducer the heap a node grew while working
 * stays committed (peak memory within the files-large test's bound). In alternated files
 * benchmarks the get went from 0.53–0.75× of its baseline to 0.74–0.96×, the put unchanged
 * (docs/development.md "Runtime tuning").
 *
 * V8's heap headroom: with the flags above alone, a node under a steady metadata load (the 1M-entry
 * tables test: record writes in batches of 200, then listing) committed 110–139 MB of JavaScript
 * heap while only about 20 MB of it was live after each full collection: 32 MB of young generation
 * (two 16 MB semi-spaces) and an old generation let grow to four times the live heap before the
 * next full collection. That headroom put the nodes at 275–309 MiB peak RSS in a 150,000-entry run
 * of that test, and at 299–320 MiB in the full one. Semi-spaces of 4 MB and an old generation that
 * grows to 1.5 times the live heap (never below the 64 MB above: V8 takes a configured initial
 * size as its floor, so the files path keeps its few full collections) cut the committed heap to
 * 60–73 MB and the 150,000-entry run to 229–232 MiB (docs/development.md "Runtime tuning").
 *
 * All of these only take effect when given at process start, so the `tessera` command carries them in
 * its `#!` line and every process tessera spawns gets them here. A value the user set is kept.
 */
export const MALLOC_ENV: Readonly<Record<string, string>> = {
  MALLOC_MMAP_THRESHOLD_: String(128 << 20),
  MALLOC_TRIM_THRESHOLD_: String(1 << 30),
};

/** V8 flags for node processes (sizes in MB). */
export const NODE_FLAGS: readonly string[] = ['--initial-old-space-size=64', '--no-memory-reducer', '--max-semi-space-size=4', '--heap-growing-percent=50'];

/** `base` with the malloc settings added where it does not set them itself. */
export function withMallocEnv(base: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  return { ...MALLOC_ENV, ...base };
}

/** The settings this process started without: malloc variables and V8 flags, by name. */
export function missingTuning(env: NodeJS.ProcessEnv = process.env, execArgv: readonly string[] = process.execArgv): string[] {
  // `--memory-reducer` set by the user answers `--no-memory-reducer`: the same setting, their value.
  const flagName = (f: string) => (f.split('=')[0] as string).replace(/^--(no-)?/, '').replaceAll('_', '-');
  return [
    ...Object.keys(MALLOC_ENV).filter((k) => env[k] === undefined),
    ...NODE_FLAGS.filter((f) => !execArgv.some((a) => flagName(a) === flagName(f))),
  ];
}

/** Node arguments for a tessera process: the tuning flags, then `extra` (which may override them). */
export function nodeRuntimeArgs(extra: readonly string[] = []): string[] {
  return [...NODE_FLAGS, ...extra];
}
