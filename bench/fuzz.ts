/**
 * `npm run bench -- fuzz [--inputs N] [--seed S]`: 10^6 generated inputs by default through the
 * frame decoder, the control-section decoder, membership and the admission handshake (see
 * fuzz-targets.ts). Prints inputs, time and the slowest single input per target; any crash, or
 * any input over the per-input bound, fails with the counterexample fast-check shrank it to.
 */
import { flag } from './cli-args.js';
import { MAX_INPUT_MS, fuzzAll } from './fuzz-targets.js';

export const DEFAULT_FUZZ_INPUTS = 1_000_000;

export async function main(args: string[]): Promise<void> {
  const total = Number(flag(args, '--inputs') ?? DEFAULT_FUZZ_INPUTS);
  const seed = Number(flag(args, '--seed') ?? Date.now() % 2 ** 31);
  if (!Number.isSafeInteger(total) || total < 4) throw new Error('--inputs must be an integer of at least 4');
  if (!Number.isSafeInteger(seed)) throw new Error('--seed must be an integer');
  process.stdout.write(`fuzz: ${total} inputs, seed ${seed}, per-input bound ${MAX_INPUT_MS} ms\n`);
  let sum = 0;
  const reports = await fuzzAll(total, seed, (r) => {
    sum += r.inputs;
    process.stdout.write(
      `  ${r.target.padEnd(11)} ${String(r.inputs).padStart(8)} inputs  ${r.seconds.toFixed(1).padStart(6)} s  ` +
        `${Math.round(r.inputs / r.seconds).toString().padStart(7)} /s  slowest input ${r.maxInputMs.toFixed(2)} ms  crashes 0\n`,
    );
  });
  process.stdout.write(`  total       ${String(sum).padStart(8)} inputs in ${reports.length} targets, 0 crashes\n`);
}
