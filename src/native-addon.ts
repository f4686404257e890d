/**
 * Where the optional native addon (native/sector-aead, built by `npm install` where a C compiler
 * and the node headers are at hand: scripts/build-native.mjs) lies, and the switch that turns its
 * use off. Block volumes seal sectors with it (block/volume/sector-aead.ts), content chunks run
 * AES-256-GCM through it (content/native-gcm.ts); each checks it against its portable path before
 * using it.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { badInput } from './errors.js';

/** `off` keeps all crypto on the portable paths (a comparison, or a machine where the addon misbehaves). */
export const NATIVE_SEAL_ENV = 'TESSERA_NATIVE_SEAL';
/** Where the built addon lies, from the repository's root. */
export const SECTOR_AEAD_PATH = join('native', 'sector-aead', 'build', 'Release', 'sector_aead.node');
/** Directories walked up from a module to the root: src/…, or dist/src/…, at most this deep. */
const MAX_LEVELS_UP = 5;

/** True when the switch says `off`; a value other than on or off is refused. */
export function nativeSwitchedOff(): boolean {
  const setting = process.env[NATIVE_SEAL_ENV];
  if (setting !== undefined && setting !== 'on' && setting !== 'off') throw badInput(`${NATIVE_SEAL_ENV} must be 'on' or 'off', got '${setting}'`);
  return setting === 'off';
}

/** The addon file above the module at `moduleUrl`, if built. */
export function findNativeAddon(moduleUrl: string): string | undefined {
  let dir = dirname(fileURLToPath(moduleUrl));
  for (let i = 0; i <= MAX_LEVELS_UP; i++) {
    const p = join(dir, SECTOR_AEAD_PATH);
    if (existsSync(p)) return p;
    dir = dirname(dir);
  }
  return undefined;
}
