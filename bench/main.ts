/**
 * `npm run bench -- NAME [ARGS]`: runs bench/NAME.ts. Every benchmark prints its figures as
 * ratios against a baseline measured in the same run, since the machine is shared and noisy.
 */
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

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
