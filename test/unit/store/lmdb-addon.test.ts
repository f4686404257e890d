import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
// Before anything that imports lmdb.
import { LMDB_BOUNDED_DIR, LMDB_BOUNDED_ENV, lmdbAddonChoice, lmdbAddonStatus, loadedLmdbAddon } from '../../../src/store/lmdb-addon.js';
import { makeEntry } from '../../../src/tables/entry.js';
import { EntryStore } from '../../../src/tables/entry-store.js';

/** The repository's root, above this test whether it runs from test/ or from dist/test/. */
function repoRoot(): string {
  let root = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(root, 'package.json')) && dirname(root) !== root) root = dirname(root);
  return root;
}
const ROOT = repoRoot();
const BUILT = existsSync(join(ROOT, LMDB_BOUNDED_DIR, 'build', 'Release', 'lmdb.node'));
/** The compiled module the child processes import: dist/ always holds it after a build. */
const ADDON_MODULE = join(ROOT, 'dist', 'src', 'store', 'lmdb-addon.js');
const MAC = randomBytes(32);
const DISK = randomBytes(32);
const N = 3000;
const e = (i: number) => makeEntry(MAC, { table: 'object', pk: 'b', sk: `k/${String(i).padStart(5, '0')}` }, { wall: 1, logical: 0, node: 'n1' }, Buffer.alloc(150, i & 0xff));

/** Runs `code` in a child Node (in the repository, where it resolves lmdb) with `env` added; returns its stdout and stderr. */
function child(code: string, env: Record<string, string>): { out: string; err: string } {
  const base = { ...process.env };
  delete base.LMDB_PREBUILD;
  delete base[LMDB_BOUNDED_ENV];
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', code], { encoding: 'utf8', env: { ...base, ...env }, cwd: ROOT, timeout: 60_000 });
  assert.equal(r.status, 0, `child failed: ${r.stderr}`);
  return { out: r.stdout, err: r.stderr };
}

test('the bounded lmdb build is the addon loaded, and an encrypted store works on it (write, scan, reopen)', { skip: !BUILT && `${LMDB_BOUNDED_DIR} is not built (npm install builds it where gcc, g++, make and python3 are installed)` }, async () => {
  assert.equal(lmdbAddonChoice().bounded, true, lmdbAddonChoice().detail);
  const dir = mkdtempSync(join(tmpdir(), 'tessera-lmdb-addon-'));
  try {
    let s = await EntryStore.open(dir, DISK);
    const loaded = loadedLmdbAddon();
    assert.ok(loaded !== null && loaded.startsWith(join(ROOT, LMDB_BOUNDED_DIR)), `loaded ${loaded}`);
    assert.equal(lmdbAddonStatus().bounded, true, lmdbAddonStatus().detail);
    for (let i = 0; i < N; i += 200) await s.write(Array.from({ length: 200 }, (_, j) => e(i + j)));
    const scanAll = (st: EntryStore) => {
      const seen: string[] = [];
      let after: string | undefined;
      for (;;) {
        const r = st.scan('object', 'b', { limit: 1000, ...(after !== undefined ? { after } : {}) });
        for (const x of r.entries) {
          assert.equal(x.value?.[0], Number(x.sk.slice(2)) & 0xff);
          seen.push(x.sk);
        }
        if (!r.more) return seen;
        after = r.entries.at(-1)!.sk;
      }
    };
    assert.deepEqual(scanAll(s), Array.from({ length: N }, (_, i) => e(i).sk));
    await s.close();
    s = await EntryStore.open(dir, DISK);
    try {
      assert.equal(scanAll(s).length, N, 'everything is there after reopening');
    } finally {
      await s.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test(`${LMDB_BOUNDED_ENV}=off keeps lmdb's prebuilt addon, and says so`, () => {
  const { out } = child(
    `const m = await import(${JSON.stringify(ADDON_MODULE)}); await import('lmdb'); console.log(JSON.stringify({ s: m.lmdbAddonStatus(), loaded: m.loadedLmdbAddon(), env: process.env.LMDB_PREBUILD ?? null }));`,
    { [LMDB_BOUNDED_ENV]: 'off', ...(BUILT ? { LMDB_PREBUILD: join(ROOT, LMDB_BOUNDED_DIR) } : {}) },
  );
  const r = JSON.parse(out) as { s: { bounded: boolean; detail: string }; loaded: string | null; env: string | null };
  assert.equal(r.s.bounded, false);
  assert.match(r.s.detail, new RegExp(`${LMDB_BOUNDED_ENV}=off`));
  assert.equal(r.env, null, 'a bounded build handed down by a parent is dropped');
  assert.ok(r.loaded !== null && !r.loaded.includes(LMDB_BOUNDED_DIR), `loaded ${r.loaded}`);
});

test('a bounded build made from another lmdb version is not used, in one stderr line', () => {
  // A copy of the module in a tree of its own, whose native/lmdb-bounded claims another lmdb.
  const tree = mkdtempSync(join(tmpdir(), 'tessera-lmdb-stale-'));
  try {
    mkdirSync(join(tree, 'dist', 'src', 'store'), { recursive: true });
    cpSync(ADDON_MODULE, join(tree, 'dist', 'src', 'store', 'lmdb-addon.js'));
    writeFileSync(join(tree, 'package.json'), '{"type":"module"}\n');
    symlinkSync(join(ROOT, 'node_modules'), join(tree, 'node_modules'));
    const build = join(tree, LMDB_BOUNDED_DIR);
    mkdirSync(join(build, 'build', 'Release'), { recursive: true });
    writeFileSync(join(build, 'build', 'Release', 'lmdb.node'), 'not an addon');
    writeFileSync(join(build, 'build-info.json'), JSON.stringify({ lmdb: '0.0.1', modules: process.versions.modules, envChunkSlots: 1024 }));
    const { out, err } = child(
      `const m = await import(${JSON.stringify(join(tree, 'dist', 'src', 'store', 'lmdb-addon.js'))}); await import(${JSON.stringify(join(tree, 'node_modules', 'lmdb', 'node-index.js'))}); console.log(JSON.stringify({ s: m.lmdbAddonStatus(), env: process.env.LMDB_PREBUILD ?? null }));`,
      {},
    );
    const r = JSON.parse(out) as { s: { bounded: boolean; detail: string }; env: string | null };
    assert.equal(r.s.bounded, false);
    assert.match(r.s.detail, /built from lmdb 0\.0\.1, lmdb \d+\.\d+\.\d+ is installed/);
    assert.equal(r.env, null, 'lmdb is not pointed at it');
    const lines = err.trim().split('\n').filter((l) => l.startsWith('tessera:'));
    assert.equal(lines.length, 1, err);
    assert.match(lines[0]!, /bounded page cache .* is not used: built from lmdb 0\.0\.1/);
  } finally {
    rmSync(tree, { recursive: true, force: true });
  }
});

test('npm install goes on without the bounded lmdb build, saying why in one line', () => {
  const out = execFileSync(process.execPath, [join(ROOT, 'scripts', 'build-native.mjs')], { encoding: 'utf8', env: { ...process.env, TESSERA_NATIVE_SEAL: 'off', [LMDB_BOUNDED_ENV]: 'off' }, timeout: 60_000 });
  assert.equal(out.split('\n')[1], `lmdb with a bounded page cache not built (${LMDB_BOUNDED_ENV}=off); table stores use lmdb's prebuilt addon and may hold ~1 GiB each past a few hundred thousand entries`);
});
