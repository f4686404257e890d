/**
 * Where a worker thread's module is: the built `.js` beside the caller, or, run from source
 * (tests under tsx), a module that registers tsx in the worker first and then loads the
 * TypeScript one. `base` is the caller's `import.meta.url`, `name` the module's name without
 * extension.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export function workerModule(base: string, name: string): URL {
  const js = new URL(`./${name}.js`, base);
  if (existsSync(fileURLToPath(js))) return js;
  const ts = new URL(`./${name}.ts`, base).href;
  const tsx = import.meta.resolve('tsx/esm/api');
  return new URL(`data:text/javascript,${encodeURIComponent(`import { register } from ${JSON.stringify(tsx)}; register(); await import(${JSON.stringify(ts)});`)}`);
}
