#!/usr/bin/env node
// Bundles the dashboard (src/api/dashboard) into dist/dashboard: one minified ES module with
// Preact inside, the stylesheet and the page. Runs at `npm install` (prepare) and `npm run build`;
// the API serves the output, so a node needs no network and no CDN.
import { build } from 'esbuild';
import { copyFile, mkdir, rm } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

const here = fileURLToPath(new URL('.', import.meta.url));
const out = fileURLToPath(new URL('../../../dist/dashboard/', import.meta.url));

await rm(out, { recursive: true, force: true });
await mkdir(out, { recursive: true });
await build({
  entryPoints: [join(here, 'main.ts')],
  outfile: join(out, 'app.js'),
  bundle: true,
  format: 'esm',
  target: ['es2020'],
  minify: true,
  sourcemap: true,
  legalComments: 'none',
  logLevel: 'warning',
});
for (const f of ['index.html', 'app.css', 'favicon.svg']) await copyFile(join(here, f), join(out, f));
