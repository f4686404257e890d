/**
 * The layer rule (.dependency-cruiser.cjs) holds on src/, and bites: fixtures with an upward import
 * and with an import past a layer's index.ts fail it, naming the rule and the offending import.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';

/** The repository root, whether this runs from test/ (tsx) or from dist/test/ (npm test). */
function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, '.dependency-cruiser.cjs'))) {
    const up = dirname(dir);
    assert.notEqual(up, dir, 'no .dependency-cruiser.cjs above the test');
    dir = up;
  }
  return dir;
}
const ROOT = repoRoot();
const CRUISE_TIMEOUT_MS = 120_000;

interface Violation {
  rule: { name: string };
  from: string;
  to: string;
}

function cruise(dir: string): { violations: Violation[] } {
  const r = spawnSync(process.execPath, [join(ROOT, 'node_modules/dependency-cruiser/bin/dependency-cruise.mjs'), dir, '--config', '.dependency-cruiser.cjs', '--output-type', 'json'], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: CRUISE_TIMEOUT_MS,
    maxBuffer: 64 << 20,
  });
  assert.ok(r.stdout, `dependency-cruiser printed nothing: ${r.stderr}`);
  const out = JSON.parse(r.stdout) as { summary: { violations: Violation[] } };
  return { violations: out.summary.violations };
}

test('src/ keeps to the layer rule', () => {
  const r = cruise('src');
  assert.deepEqual(r.violations.map((v) => `${v.rule.name}: ${v.from} → ${v.to}`), []);
});

test('a fixture that keeps to the rule passes it', () => {
  const r = cruise('test/fixtures/layers/clean');
  assert.deepEqual(r.violations, []);
});

test('an upward import fails the rule', () => {
  const r = cruise('test/fixtures/layers/upward');
  assert.deepEqual(
    r.violations.map((v) => [v.rule.name, v.from, v.to]),
    [['layer-store', 'test/fixtures/layers/upward/store/disk.ts', 'test/fixtures/layers/upward/files/index.ts']],
  );
});

test('an import past a layer\'s index.ts fails the rule', () => {
  const r = cruise('test/fixtures/layers/bypass');
  assert.deepEqual(
    r.violations.map((v) => [v.rule.name, v.from, v.to]),
    [['through-index', 'test/fixtures/layers/bypass/files/put.ts', 'test/fixtures/layers/bypass/store/disk.ts']],
  );
});
