#!/usr/bin/env node
// Sums the self time of one or more V8 .cpuprofile files by function and by file, so a profile
// can be read without a browser: node scripts/cpuprofile-summary.mjs DIR_OR_FILES... [--top N] [--per N]
// --per N divides every figure by N (e.g. records written) to give ms per item.
// --window FILE counts only the samples taken while FILE's profile ran (V8 profiles of processes on
// one machine share its monotonic clock), e.g. the bench client's profile of one phase.
// Also prints inclusive time (self and callees) by function, which says what a whole path costs.
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

const args = process.argv.slice(2);
const opt = (name, d) => { const i = args.indexOf(name); if (i < 0) return d; const v = Number(args[i + 1]); args.splice(i, 2); return v; };
const top = opt('--top', 40);
const per = opt('--per', 0);
const wi = args.indexOf('--window');
let window = null;
if (wi >= 0) {
  const w = JSON.parse(readFileSync(args[wi + 1], 'utf8'));
  window = [w.startTime, w.endTime];
  args.splice(wi, 2);
}
const files = args.flatMap((a) => (statSync(a).isDirectory() ? readdirSync(a).filter((f) => f.endsWith('.cpuprofile')).map((f) => join(a, f)) : [a]));
const byFn = new Map();
const byFile = new Map();
const byFnIncl = new Map();
let total = 0;
for (const f of files) {
  const p = JSON.parse(readFileSync(f, 'utf8'));
  const nodes = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const self = new Map();
  let at = p.startTime;
  for (let i = 0; i < p.samples.length; i++) {
    at += p.timeDeltas[i] ?? 0;
    if (window !== null && (at < window[0] || at > window[1])) continue;
    const dt = (p.timeDeltas[i + 1] ?? p.timeDeltas[i] ?? 0) / 1000;
    self.set(p.samples[i], (self.get(p.samples[i]) ?? 0) + dt);
  }
  const label = (cf) => `${cf.functionName || '(anon)'} ${(cf.url || '(native)').replace(/^file:\/\/.*?\/(dist|node_modules)\//, '$1/')}:${cf.lineNumber + 1}`;
  for (const [id, ms] of self) {
    if (nodes.get(id).callFrame.functionName === '(idle)') continue;
    const seen = new Set();
    for (let x = id; x !== undefined; x = parent.get(x)) {
      const fn = label(nodes.get(x).callFrame);
      if (seen.has(fn)) continue;
      seen.add(fn);
      byFnIncl.set(fn, (byFnIncl.get(fn) ?? 0) + ms);
    }
  }
  for (const [id, ms] of self) {
    const cf = nodes.get(id).callFrame;
    const file = (cf.url || '(native)').replace(/^file:\/\/.*?\/(dist|node_modules)\//, '$1/');
    const fn = `${cf.functionName || '(anon)'} ${file}:${cf.lineNumber + 1}`;
    byFn.set(fn, (byFn.get(fn) ?? 0) + ms);
    byFile.set(file, (byFile.get(file) ?? 0) + ms);
    if (cf.functionName !== '(idle)') total += ms;
  }
}
const show = (title, m) => {
  console.log(`\n${title}`);
  for (const [k, ms] of [...m].sort((a, b) => b[1] - a[1]).slice(0, top)) {
    console.log(`${ms.toFixed(0).padStart(8)} ms ${((100 * ms) / total).toFixed(1).padStart(5)}%${per ? (ms / per).toFixed(4).padStart(9) + ' ms/item' : ''}  ${k}`);
  }
};
console.log(`${files.length} profiles, ${total.toFixed(0)} ms busy (not idle)${per ? `, ${(total / per).toFixed(3)} ms per item` : ''}`);
show('self time by file', byFile);
show('self time by function', byFn);
show('inclusive time by function', byFnIncl);
