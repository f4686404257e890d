#!/usr/bin/env node
// Builds the optional native sector sealer (native/sector-aead) at `npm install`. It is optional:
// without it block volumes seal with libsodium, the same records at about three times the CPU.
// So this never fails the install; it says what it did in one line. It never downloads anything:
// node-gyp gets the node headers of the Node that runs it (--nodedir), and where they are not
// installed the build is left out.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const dir = join(root, 'native', 'sector-aead');
const BUILD_TIMEOUT_MS = 180_000;

function skip(why) {
  process.stdout.write(`native sector sealer not built (${why}); block volumes seal with libsodium\n`);
  process.exit(0);
}

if (process.env.TESSERA_NATIVE_SEAL === 'off') skip('TESSERA_NATIVE_SEAL=off');

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

const gyp = nodeGyp();
if (gyp === undefined) skip('node-gyp not found');
const nodedir = nodeDir();
if (nodedir === undefined) skip(`no node headers (include/node/node_api.h) beside ${process.execPath}`);
const r = spawnSync(process.execPath, [gyp, 'rebuild', `--nodedir=${nodedir}`, '--directory', dir], {
  encoding: 'utf8', timeout: BUILD_TIMEOUT_MS, env: { ...process.env, npm_config_nodedir: nodedir },
});
if (r.status !== 0) {
  const last = `${r.stderr ?? ''}${r.error?.message ?? ''}`.trim().split('\n').filter((l) => /error|not found|No such/i.test(l)).slice(-3).join('; ');
  skip(`the build failed${last !== '' ? `: ${last}` : ''}; gcc, g++, make and python3 are needed`);
}
process.stdout.write(`native sector sealer built: ${join('native', 'sector-aead', 'build', 'Release', 'sector_aead.node')}\n`);
