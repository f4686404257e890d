/**
 * `npm run bench -- NAME [ARGS]`: runs bench/NAME.ts. Every benchmark prints its figures as
 * ratios against a baseline measured in the same run, since the machine is shared and noisy.
 * Benchmarks run with the runtime tuning of the `tessera` command (src/cli/runtime-tuning.ts),
 * as the client side of a transfer would; without it this process starts itself again with it.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { missingTuning, nodeRuntimeArgs, withMallocEnv } from '../src/cli/runtime-tuning.js';

if (missingTuning().length > 0) {
  const r = spawnSync(process.execPath, [...nodeRuntimeArgs(process.execArgv), fileURLToPath(import.meta.url), ...process.argv.slice(2)], { stdio: 'inherit', env: withMallocEnv() });
  process.exit(r.status ?? 1);
}

const here = fileURLToPath(new URL('.', import.meta.url));
const available = readdirSync(here)
  .filter((f) => f.endsWith('.js') && f !== 'main.js' && !f.includes('-'))
  .map((f) => f.slice(0, -3))
  .sort();

const [name, ...rest] = process.argv.slice(2);
if (!name || !available.includes(name)) {
  process.stderr.write(`usage: npm run bench -- NAME [ARGS]\nbenchmarks: ${available.join(', ')}\n`);
  process.exit(name ? 2 : 0);
}
const mod = (await import(`./${name}.js`)) as { main(args: string[]): Promise<void> };
await mod.main(rest);
