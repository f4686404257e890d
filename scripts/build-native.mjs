#!/usr/bin/env node
// Builds the optional native addons at `npm install`, each saying what it did in one line:
// - the sector sealer (native/sector-aead): without it block volumes seal with libsodium, the same
//   records at about three times the CPU;
// - lmdb-js's addon with a bounded page cache (native/lmdb-bounded, generated here from the
//   sources node_modules/lmdb ships): the stock build keeps up to ~8,191 64 KiB chunks of an
//   encrypted environment mapped, each with a decrypted copy, before it frees any, so a table store
//   of a million entries holds about 1 GiB; this build frees them past ~511 (docs/tables.md,
//   "Memory with very large tables"). Without it tessera uses lmdb's prebuilt addon and says so.
// Neither ever fails the install. Nothing is downloaded: node-gyp gets the node headers of the
// Node that runs it (--nodedir), and where they are not installed a build is left out.
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const BUILD_TIMEOUT_MS = 180_000;
/** lmdb-js is larger; two compile jobs on a small machine take about 20 s, one about 35 s. */
const LMDB_BUILD_TIMEOUT_MS = 600_000;

/**
 * Slots in liblmdb's environment-wide list of mapped chunks (MDB_ERPAGE_SIZE; 16,384 as shipped).
 * Unreferenced chunks are freed once the list holds about half this many, so 1024 keeps at most
 * ~511 chunks (32 MiB mapped plus 32 MiB decrypted) besides those open transactions still hold.
 * 2048 peaked 52 MiB higher in a 200,000-entry store. The per-transaction list (MDB_TRPAGE_SIZE,
 * 4096) stays as shipped: at 256 the store came back corrupt (docs/tables.md).
 */
const LMDB_ENV_CHUNK_SLOTS = 1024;
const SHIPPED_ENV_CHUNK_SLOTS = 16384;
/** What the build leaves beside build/Release/lmdb.node; src/store/lmdb-addon.ts reads it. */
const LMDB_BUILD_INFO = 'build-info.json';

const say = (line) => process.stdout.write(`${line}\n`);

/** node-gyp: the one npm runs scripts with, else the one bundled with the npm beside this node. */
function nodeGyp() {
  const candidates = [
    process.env.npm_config_node_gyp,
    join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
  ];
  return candidates.find((p) => p !== undefined && p !== '' && existsSync(p));
}

/** The prefix whose include/node holds this node's headers (node_api.h). */
function nodeDir() {
  const candidates = [process.env.npm_config_nodedir, join(dirname(process.execPath), '..')];
  return candidates.find((d) => d !== undefined && d !== '' && existsSync(join(d, 'include', 'node', 'node_api.h')));
}

/** Why node-gyp cannot run here, or undefined. */
function toolsMissing() {
  if (nodeGyp() === undefined) return 'node-gyp not found';
  if (nodeDir() === undefined) return `no node headers (include/node/node_api.h) beside ${process.execPath}`;
  return undefined;
}

/** Runs `node-gyp rebuild` in `dir`; undefined when it worked, else the last error lines. */
function gypRebuild(dir, timeout, extra = []) {
  const nodedir = nodeDir();
  const r = spawnSync(process.execPath, [nodeGyp(), 'rebuild', `--nodedir=${nodedir}`, ...extra, '--directory', dir], {
    encoding: 'utf8', timeout, maxBuffer: 64 << 20, env: { ...process.env, npm_config_nodedir: nodedir },
  });
  if (r.status === 0) return undefined;
  const last = `${r.stderr ?? ''}${r.error?.message ?? ''}`.trim().split('\n').filter((l) => /error|not found|No such/i.test(l)).slice(-3).join('; ');
  return `the build failed${last !== '' ? `: ${last}` : ''}; gcc, g++, make and python3 are needed`;
}

function sectorSealer() {
  const no = (why) => `native sector sealer not built (${why}); block volumes seal with libsodium`;
  if (process.env.TESSERA_NATIVE_SEAL === 'off') return no('TESSERA_NATIVE_SEAL=off');
  const missing = toolsMissing();
  if (missing !== undefined) return no(missing);
  const failed = gypRebuild(join(root, 'native', 'sector-aead'), BUILD_TIMEOUT_MS);
  if (failed !== undefined) return no(failed);
  return `native sector sealer built: ${join('native', 'sector-aead', 'build', 'Release', 'sector_aead.node')}`;
}

/**
 * Copies what lmdb's binding.gyp compiles (its src/, liblmdb, lz4 and the v8 headers) into `to`,
 * with the environment chunk list shortened and node-addon-api's headers named by absolute path
 * (binding.gyp asks `node -p require(...)` in its own directory, which is no longer under
 * node_modules).
 */
function stageLmdb(lmdbDir, to) {
  const req = createRequire(join(lmdbDir, 'package.json'));
  const addonApi = dirname(req.resolve('node-addon-api/package.json'));
  mkdirSync(to, { recursive: true });
  cpSync(join(lmdbDir, 'src'), join(to, 'src'), { recursive: true });
  for (const d of ['lmdb/libraries/liblmdb', 'lz4/lib', 'lz4/LICENSE', 'v8']) cpSync(join(lmdbDir, 'dependencies', d), join(to, 'dependencies', d), { recursive: true });
  cpSync(join(lmdbDir, 'LICENSE'), join(to, 'LICENSE'));
  const gyp = readFileSync(join(lmdbDir, 'binding.gyp'), 'utf8');
  const includeAsk = `"<!(node -p \\"require('node-addon-api').include_dir\\")"`;
  if (!gyp.includes(includeAsk)) throw new Error("lmdb's binding.gyp no longer asks for node-addon-api's include_dir as this script expects");
  writeFileSync(join(to, 'binding.gyp'), gyp.replace(includeAsk, JSON.stringify(addonApi)));
  const mdbPath = join(to, 'dependencies', 'lmdb', 'libraries', 'liblmdb', 'mdb.c');
  const mdb = readFileSync(mdbPath, 'utf8');
  const define = new RegExp(`^#define MDB_ERPAGE_SIZE\\s+${SHIPPED_ENV_CHUNK_SLOTS}\\s*$`, 'm');
  if (!define.test(mdb)) throw new Error(`mdb.c no longer defines MDB_ERPAGE_SIZE as ${SHIPPED_ENV_CHUNK_SLOTS}`);
  writeFileSync(mdbPath, mdb.replace(define, `#define MDB_ERPAGE_SIZE\t${LMDB_ENV_CHUNK_SLOTS}\t/* tessera: bounded page cache */`));
}

/** The installed lmdb package's directory, as tessera resolves it (hoisted or not). */
function lmdbPackageDir() {
  let dir;
  try {
    dir = dirname(createRequire(join(root, 'package.json')).resolve('lmdb'));
  } catch {
    return undefined;
  }
  for (; dirname(dir) !== dir; dir = dirname(dir)) {
    const p = join(dir, 'package.json');
    if (existsSync(p) && JSON.parse(readFileSync(p, 'utf8')).name === 'lmdb') return dir;
  }
  return undefined;
}

function lmdbBounded() {
  const no = (why) => `lmdb with a bounded page cache not built (${why}); table stores use lmdb's prebuilt addon and may hold ~1 GiB each past a few hundred thousand entries`;
  if (process.env.TESSERA_LMDB_BOUNDED === 'off') return no('TESSERA_LMDB_BOUNDED=off');
  const missing = toolsMissing();
  if (missing !== undefined) return no(missing);
  const lmdbDir = lmdbPackageDir();
  if (lmdbDir === undefined) return no('the lmdb package is not installed');
  if (!existsSync(join(lmdbDir, 'binding.gyp'))) return no(`${lmdbDir} has no binding.gyp`);
  const version = JSON.parse(readFileSync(join(lmdbDir, 'package.json'), 'utf8')).version;
  const dest = join(root, 'native', 'lmdb-bounded');
  // Built aside and moved in whole, so a process starting meanwhile finds the old build or the new.
  const staging = `${dest}.building-${process.pid}`;
  rmSync(staging, { recursive: true, force: true });
  const started = Date.now();
  try {
    stageLmdb(lmdbDir, staging);
  } catch (e) {
    rmSync(staging, { recursive: true, force: true });
    return no(e instanceof Error ? e.message : String(e));
  }
  const failed = gypRebuild(staging, LMDB_BUILD_TIMEOUT_MS, ['--jobs=max']);
  if (failed !== undefined) {
    rmSync(staging, { recursive: true, force: true });
    return no(failed);
  }
  writeFileSync(join(staging, LMDB_BUILD_INFO), `${JSON.stringify({ lmdb: version, modules: process.versions.modules, node: process.version, envChunkSlots: LMDB_ENV_CHUNK_SLOTS })}\n`);
  rmSync(dest, { recursive: true, force: true });
  renameSync(staging, dest);
  return `lmdb ${version} built with a bounded page cache in ${((Date.now() - started) / 1000).toFixed(0)} s: ${join('native', 'lmdb-bounded', 'build', 'Release', 'lmdb.node')}`;
}

say(sectorSealer());
say(lmdbBounded());
