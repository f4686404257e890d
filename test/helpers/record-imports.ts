/**
 * Preloaded with `--import` (through NODE_OPTIONS) into a process under test: records which
 * modules it loads, to the file named by TESSERA_RECORD_IMPORTS. ES modules are recorded as they
 * load, by loader hooks; CommonJS files a package loads with require() (which those hooks do not
 * see in Node 20) are added from require's cache when the process exits.
 */
import { appendFileSync } from 'node:fs';
import { createRequire, register } from 'node:module';
import { pathToFileURL } from 'node:url';

const out = process.env.TESSERA_RECORD_IMPORTS;
if (out) {
  register(new URL('./record-imports-hooks.js', import.meta.url));
  const require = createRequire(import.meta.url);
  process.on('exit', () => {
    const required = Object.keys(require.cache).map((p) => pathToFileURL(p).href);
    if (required.length > 0) appendFileSync(out, required.join('\n') + '\n');
  });
}
