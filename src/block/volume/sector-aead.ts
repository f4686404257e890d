/**
 * The optional native sealer of runs of sector records (native/sector-aead): the same
 * XChaCha20-Poly1305 records libsodium gives (seal.ts), byte for byte, with OpenSSL's
 * ChaCha20-Poly1305 doing the bulk work and a whole run sealed or opened in one call. It is built
 * by `npm install` where a C compiler and the node headers are at hand (scripts/build-native.mjs);
 * where it is not, or `TESSERA_NATIVE_SEAL=off` is set, sealing stays with libsodium.
 */
import { createRequire } from 'node:module';
import { findNativeAddon, NATIVE_SEAL_ENV, nativeSwitchedOff, SECTOR_AEAD_PATH } from '../../native-addon.js';

export { NATIVE_SEAL_ENV, SECTOR_AEAD_PATH };

/** What native/sector-aead/sector_aead.c exports; its argument checks are its own (it throws TypeError). */
export interface SectorAead {
  /**
   * Seals `n` sectors into records at `out[i * 4160]`, sector i read from `src` at `i * srcStride`
   * (4096: packed plaintext; 4160: in its record slot of `out`, sealed in place), with member
   * sector `firstSector + i`, version `firstVersion + i` and the nonce half `nonceRandom`.
   */
  seal(key: Uint8Array, nonceRandom: Uint8Array, volumeTag: Uint8Array, src: Uint8Array, srcStride: number, out: Uint8Array, firstSector: number, firstVersion: number, n: number): void;
  /**
   * Opens `n` records at `rec[0..]` in place, each sector's plaintext moved to `rec[i * 4096]`;
   * `versions[i]` gets the record's version, 0 for an all-zero record, -1 (BAD_RECORD) for one
   * that fails authentication, whose plaintext slot is zeroed.
   */
  open(key: Uint8Array, volumeTag: Uint8Array, rec: Uint8Array, firstSector: number, n: number, versions: Float64Array): void;
}

let loaded: { aead: SectorAead | undefined; why: string } | undefined;
/** Why a loaded addon must not be used (seal.ts compares it with libsodium), or undefined. */
let check: ((aead: SectorAead) => string | undefined) | undefined;

/** Sets the test a loaded addon must pass before it is used; call before the first sectorAead(). */
export function checkSectorAeadWith(fn: (aead: SectorAead) => string | undefined): void {
  check = fn;
}

function load(): { aead: SectorAead | undefined; why: string } {
  if (nativeSwitchedOff()) return { aead: undefined, why: `${NATIVE_SEAL_ENV}=off` };
  const path = findNativeAddon(import.meta.url);
  if (path === undefined) return { aead: undefined, why: `not built (${SECTOR_AEAD_PATH}; npm install builds it where a C compiler and the node headers are installed)` };
  let aead: SectorAead;
  try {
    aead = createRequire(import.meta.url)(path) as SectorAead;
  } catch (e) {
    return { aead: undefined, why: `${path} did not load: ${e instanceof Error ? e.message : String(e)}` };
  }
  const wrong = check?.(aead);
  if (wrong !== undefined) return { aead: undefined, why: `${path} is not used: ${wrong}` };
  return { aead, why: path };
}

/** The native sealer, or undefined (then libsodium seals); loaded once per thread. */
export function sectorAead(): SectorAead | undefined {
  loaded ??= load();
  return loaded.aead;
}

/** Which sealer this process uses, and why: for the log line a master writes when it starts serving. */
export function sectorAeadStatus(): { native: boolean; detail: string } {
  loaded ??= load();
  return { native: loaded.aead !== undefined, detail: loaded.why };
}
