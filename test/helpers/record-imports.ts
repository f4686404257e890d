/**
 * Preloaded with `--import` (through NODE_OPTIONS) into a process under test: records which
 * modules it loads, to the file named by TESSERA_RECORD_IMPORTS. ES modules are recorded as they
 * load, by loader hooks; CommonJS files a package loads with require() (which those hooks do not
 * see in Node 20) are added from require's cache when the process exits, and Node's own modules
 * from the list of those it has loaded.
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
    // Node's own public modules, however they were loaded (import, or require, which the hooks
    // do not see): as node:NAME, the way an import names them.
    const builtins = ((process as unknown as { moduleLoadList?: string[] }).moduleLoadList ?? [])
      .filter((m) => m.startsWith('NativeModule ') && !m.startsWith('NativeModule internal/'))
      .map((m) => `node:${m.slice('NativeModule '.length)}`);
    const all = [...required, ...builtins];
    if (all.length > 0) appendFileSync(out, all.join('\n') + '\n');
  });
}
