#!/usr/bin/env node
// Rewrites dist/src/cli/main.js (as tsc emitted it) into one file holding the command
// declarations and commander. Loading the two dozen small modules one by one cost more than
// everything else `tessera --version` does after Node itself has started (resolving, reading and
// linking each); as one file they cost a few milliseconds.
//
// Only the CLI's own statically imported modules, commander, the package's version (as a literal)
// and modules outside src/cli/ that hold nothing but constants go into the file. Other modules
// outside src/cli/ (errors.js with the TesseraError class the error reporting checks) and every
// dynamic import (each command's code, loaded when the command runs) stay separate files,
// imported from main.js by a relative path, so each exists once in a process.
import { build } from 'esbuild';
import { chmodSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const entry = fileURLToPath(new URL('../dist/src/cli/main.js', import.meta.url));
const cliDir = dirname(entry);
const srcDir = dirname(cliDir);

/** Command modules main.js imports when a client command runs (see above). */
const CLIENT_COMMANDS = ['get.js', 'put.js', 'file-info.js'];

const version = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')).version;

/**
 * Whether a compiled module holds nothing but constants (`export const NAME = literal or
 * arithmetic;`, comments): such a module may have a copy in the file, since two copies of a
 * number or a name are the same, and each module file the command opens costs a resolve, a read
 * through the thread pool and a link at every start. Anything else (a class, a function, state,
 * an import) stays one shared file.
 */
function constantsOnly(abs) {
  const code = readFileSync(abs, 'utf8')
    .replace(/\/\*[\s\S]*?\*\//g, '')
    .replace(/^\s*\/\/.*$/gm, '')
    .trim();
  return code.split(';').every((stmt) => stmt.trim() === '' || /^export const [A-Z][A-Z0-9_]* = [-\w\s.<>*+'"()]+$/.test(stmt.trim()));
}

/** The path a file in `dir` imports `abs` by. */
function importPath(dir, abs) {
  const rel = relative(dir, abs).split(sep).join('/');
  return rel.startsWith('.') ? rel : `./${rel}`;
}

/**
 * Keeps each module outside src/cli/ that holds more than constants (errors.js with the
 * TesseraError class the error reporting checks, the client) and every dynamic import a file of
 * its own, imported by a relative path from `dir`, so each exists once in a process.
 */
function keepSharedModulesApart(dir) {
  return {
    name: 'keep-shared-modules-apart',
    setup(b) {
      b.onResolve({ filter: /^\./ }, (args) => {
        const abs = resolve(args.resolveDir, args.path);
        const shared = abs.startsWith(srcDir + sep) && !abs.startsWith(cliDir + sep);
        if (args.kind === 'dynamic-import') return { path: importPath(dir, abs), external: true };
        // version.js reads package.json through require() at its start; the file takes the value.
        if (abs === join(srcDir, 'version.js')) return { path: abs, namespace: 'version-literal' };
        if (shared && !constantsOnly(abs)) return { path: importPath(dir, abs), external: true };
        // The CLI's own modules and commander's files (relative imports inside node_modules).
        return undefined;
      });
      b.onLoad({ filter: /.*/, namespace: 'version-literal' }, () => ({ contents: `export const VERSION = ${JSON.stringify(version)};`, loader: 'js' }));
    },
  };
}

/** Rewrites one compiled file in place into a file holding its src/cli/ imports. */
function bundleInPlace(file, options) {
  return build({
    entryPoints: [file],
    outfile: file,
    allowOverwrite: true,
    bundle: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    sourcemap: true,
    logLevel: 'warning',
    ...options,
    plugins: [...(options.plugins ?? []), keepSharedModulesApart(dirname(file))],
  });
}

await bundleInPlace(entry, {
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
  ],
});

// The client commands' code, loaded by main.js when one runs, likewise: each one file with the
// CLI modules it uses (context, progress, transfer, sinks, formatting) rather than a chain of
// small files opened, read and linked one after another before the request can go out. Packages
// stay where they are, loaded from node_modules.
for (const command of CLIENT_COMMANDS) await bundleInPlace(join(cliDir, 'commands', command), { packages: 'external' });

// Run directly (`./dist/src/cli/main.js`), the file's #! line applies the runtime tuning.
chmodSync(entry, 0o755);
