/**
 * Seeded pseudo-random numbers for simulations: sfc32, small, fast and good enough for scheduling
 * decisions; identical seeds replay identical runs.
 */
import type { RandomSource } from '../clock.js';
import { fmix32 } from '../placement.js';

/** Mix a seed and a stream label into a 32-bit state word, so per-node streams are independent. */
export function mixSeed(seed: number, stream: number | string): number {
  let h = (seed ^ 0x9e3779b9) >>> 0;
  const s = String(stream);
  for (let i = 0; i < s.length; i++) {
    h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
  }
  return fmix32(h);
}

export function createPrng(seed: number, stream: number | string = 0): RandomSource {
  let a = mixSeed(seed, `a${stream}`);
  let b = mixSeed(seed, `b${stream}`);
  let c = mixSeed(seed, `c${stream}`);
  let d = 1;
  const next = (): number => {
    const t = (((a + b) | 0) + d) | 0;
    d = (d + 1) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) | 0;
    return (t >>> 0) / 4294967296;
  };
  // Discard the first outputs: sfc32 needs a few rounds to diffuse a weak seed.
  for (let i = 0; i < 12; i++) next();
  return next;
}
