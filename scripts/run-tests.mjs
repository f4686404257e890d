#!/usr/bin/env node
// Runs the compiled test files (dist/test/**/*.test.js) with Node's test runner. Node 20 given a
// directory would also run helper modules, so the files are listed explicitly. An optional
// argument filters by path substring: `npm test -- nbd`.
import { readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { spawnSync } from 'node:child_process';

const root = new URL('../dist/test/', import.meta.url).pathname;
const filters = process.argv.slice(2);
const files = [];
(function walk(dir) {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) walk(p);
    else if (e.name.endsWith('.test.js')) files.push(p);
  }
})(root);
const chosen = files.sort().filter((f) => filters.length === 0 || filters.some((s) => relative(root, f).includes(s)));
if (chosen.length === 0) {
  console.error(`no test files match ${filters.join(' ')}`);
  process.exit(1);
}
const r = spawnSync(process.execPath, ['--test', ...chosen], { stdio: 'inherit' });
process.exit(r.status ?? 1);
