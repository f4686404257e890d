/**
 * Chooses lmdb's native addon before lmdb is first imported: the build with a bounded page cache
 * (native/lmdb-bounded, made by `npm install`, scripts/build-native.mjs) where it is present and
 * was built from the installed lmdb for this Node, else lmdb's own prebuilt one. The stock build
 * keeps up to ~8,191 64 KiB chunks of an encrypted environment mapped, each with a decrypted copy,
 * before freeing any: about 1 GiB per table store of a million entries (docs/tables.md, "Memory
 * with very large tables").
 *
 * lmdb's loader (node-gyp-build-optional-packages) looks under $LMDB_PREBUILD/build/Release first,
 * and reads it when lmdb is imported, so every module that imports lmdb imports this one before
 * it; ES modules run their imports in order.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** `off` keeps lmdb's prebuilt addon (a comparison, or a machine where the build misbehaves). */
export const LMDB_BOUNDED_ENV = 'TESSERA_LMDB_BOUNDED';
/** The variable lmdb's loader honours: a directory holding build/Release/*.node. */
export const LMDB_PREBUILD_ENV = 'LMDB_PREBUILD';
/** Where the bounded build lies, from the repository's root. */
export const LMDB_BOUNDED_DIR = join('native', 'lmdb-bounded');
const ADDON = join('build', 'Release', 'lmdb.node');
const BUILD_INFO = 'build-info.json';
/** Directories walked up from this module to the root: src/store, or dist/src/store. */
const MAX_LEVELS_UP = 4;

export interface LmdbAddonChoice {
  /** The bounded build is the one lmdb is told to load. */
  readonly bounded: boolean;
  /** Its path, or why lmdb's prebuilt addon is used instead. */
  readonly detail: string;
}

interface BuildInfo {
  lmdb?: unknown;
  modules?: unknown;
  envChunkSlots?: unknown;
}

function findBuild(from: string): string | undefined {
  let dir = from;
  for (let i = 0; i <= MAX_LEVELS_UP; i++) {
    const p = join(dir, LMDB_BOUNDED_DIR);
    if (existsSync(join(p, ADDON))) return p;
    dir = dirname(dir);
  }
  return undefined;
}

/** The installed lmdb package's version (its package.json is not exported, so found from its entry file). */
function installedLmdbVersion(): string {
  let dir = dirname(createRequire(import.meta.url).resolve('lmdb'));
  for (let i = 0; i <= MAX_LEVELS_UP; i++) {
    const p = join(dir, 'package.json');
    if (existsSync(p)) {
      const pkg = JSON.parse(readFileSync(p, 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'lmdb' && typeof pkg.version === 'string') return pkg.version;
    }
    dir = dirname(dir);
  }
  return 'unknown';
}

function choose(): LmdbAddonChoice {
  const setting = process.env[LMDB_BOUNDED_ENV];
  const found = findBuild(dirname(fileURLToPath(import.meta.url)));
  const given = process.env[LMDB_PREBUILD_ENV];
  if (setting === 'off') {
    // A parent process may have pointed its children here; off means off for this one too.
    if (given !== undefined && given === found) delete process.env[LMDB_PREBUILD_ENV];
    return { bounded: false, detail: `${LMDB_BOUNDED_ENV}=off` };
  }
  if (setting !== undefined && setting !== 'on') return { bounded: false, detail: `${LMDB_BOUNDED_ENV} must be 'on' or 'off', got '${setting}'; using lmdb's prebuilt addon` };
  if (given !== undefined && given !== '' && given !== found) return { bounded: false, detail: `${LMDB_PREBUILD_ENV} is set to ${given} outside tessera; lmdb loads what it finds there` };
  if (found === undefined) return { bounded: false, detail: `not built (${LMDB_BOUNDED_DIR}; npm install builds it where a C compiler and the node headers are installed)` };
  let info: BuildInfo;
  try {
    info = JSON.parse(readFileSync(join(found, BUILD_INFO), 'utf8')) as BuildInfo;
  } catch (e) {
    return { bounded: false, detail: `${found} is not used: ${BUILD_INFO} unreadable (${e instanceof Error ? e.message : String(e)})` };
  }
  const installed = installedLmdbVersion();
  const wrong =
    info.lmdb !== installed ? `built from lmdb ${String(info.lmdb)}, lmdb ${installed} is installed`
      : info.modules !== process.versions.modules ? `built for Node ABI ${String(info.modules)}, this Node is ${process.versions.modules}`
        : undefined;
  if (wrong !== undefined) {
    delete process.env[LMDB_PREBUILD_ENV];
    const detail = `${found} is not used: ${wrong}; npm install rebuilds it`;
    process.stderr.write(`tessera: lmdb with a bounded page cache ${detail}\n`);
    return { bounded: false, detail };
  }
  process.env[LMDB_PREBUILD_ENV] = found;
  return { bounded: true, detail: `${join(found, ADDON)} (${String(info.envChunkSlots)} environment chunk slots)` };
}

const choice = choose();

/** Which lmdb addon this process was set up to load, and why. */
export function lmdbAddonChoice(): LmdbAddonChoice {
  return choice;
}

let loadedPath: string | null | undefined;

/**
 * The lmdb addon file this process has actually loaded (from the shared objects it has mapped),
 * or null before lmdb is imported. Read once it is known: an addon is never unloaded.
 */
export function loadedLmdbAddon(): string | null {
  if (typeof loadedPath === 'string') return loadedPath;
  const report = process.report?.getReport() as { sharedObjects?: string[] } | undefined;
  const hit = report?.sharedObjects?.find((p) => /[\\/](lmdb\.node|@lmdb[\\/]lmdb-[^\\/]+[\\/][^\\/]+\.node)$/.test(p));
  loadedPath = hit ?? null;
  return loadedPath;
}

/** For the start log and `status`: whether the bounded build is in use, and what was loaded or why not. */
export function lmdbAddonStatus(): LmdbAddonChoice {
  const loaded = loadedLmdbAddon();
  if (loaded === null) return choice;
  if (choice.bounded && loaded.startsWith(process.env[LMDB_PREBUILD_ENV] ?? '\0')) return choice;
  if (choice.bounded) return { bounded: false, detail: `lmdb loaded ${loaded} although ${choice.detail} was chosen (lmdb was imported before ${LMDB_BOUNDED_DIR} was chosen)` };
  return { bounded: false, detail: `${choice.detail}; loaded ${loaded}` };
}
