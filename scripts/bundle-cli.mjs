#!/usr/bin/env node
// Rewrites dist/src/cli/main.js (as tsc emitted it) into one file holding the command
// declarations and commander. Loading the two dozen small modules one by one cost more than
// everything else `tessera --version` does after Node itself has started (resolving, reading and
// linking each); as one file they cost a few milliseconds.
//
// Only the CLI's own statically imported modules and commander go into the file. Modules outside
// src/cli/ (errors.js with the TesseraError class the error reporting checks, version.js which
// finds package.json from its own path, constants) and every dynamic import (each command's code,
// loaded when the command runs) stay separate files, imported from main.js by a relative path, so
// each exists once in a process.
import { build } from 'esbuild';
import { chmodSync } from 'node:fs';
import { dirname, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const entry = fileURLToPath(new URL('../dist/src/cli/main.js', import.meta.url));
const cliDir = dirname(entry);
const srcDir = dirname(cliDir);

/** The path main.js imports `abs` by, once it sits where main.js is. */
function fromMain(abs) {
  const rel = relative(cliDir, abs).split(sep).join('/');
  return rel.startsWith('.') ? rel : `./${rel}`;
}

await build({
  entryPoints: [entry],
  outfile: entry,
  allowOverwrite: true,
  bundle: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  sourcemap: true,
  logLevel: 'warning',
  // commander is CommonJS; its require() calls of Node's modules need a require in an ES module.
  banner: { js: "import { createRequire as createRequireForBundle } from 'node:module';\nconst require = createRequireForBundle(import.meta.url);" },
  plugins: [
    {
      // commander loads child_process (and with it net, dgram and more) only to run subcommands
      // kept in separate executables, which tessera has none of: it is loaded on first use.
      name: 'child-process-on-first-use',
      setup(b) {
        b.onResolve({ filter: /^(node:)?child_process$/ }, (args) =>
          args.importer.includes(`${sep}node_modules${sep}commander${sep}`) ? { path: 'child_process', namespace: 'on-first-use' } : undefined,
        );
        b.onLoad({ filter: /.*/, namespace: 'on-first-use' }, () => ({
          contents: "module.exports = new Proxy({}, { get: (_, key) => require('node:child_process')[key] });",
          loader: 'js',
        }));
      },
    },
    {
      name: 'keep-shared-modules-apart',
      setup(b) {
        b.onResolve({ filter: /^\./ }, (args) => {
          const abs = resolve(args.resolveDir, args.path);
          const shared = abs.startsWith(srcDir + sep) && !abs.startsWith(cliDir + sep);
          if (args.kind === 'dynamic-import' || shared) return { path: fromMain(abs), external: true };
          // The CLI's own modules and commander's files (relative imports inside node_modules).
          return undefined;
        });
      },
    },
  ],
});
// Run directly (`./dist/src/cli/main.js`), the file's #! line applies the runtime tuning.
chmodSync(entry, 0o755);
