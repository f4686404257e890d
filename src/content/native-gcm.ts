/**
 * AES-256-GCM of whole content chunks through the native addon (native/sector-aead), straight
 * between the caller's buffers.
 *
 * Why: Node's cipher.update returns a fresh buffer per call. A chunk fed through it whole lands in
 * a fresh mmap'd buffer (page faults on every MiB); fed in slices, it costs an allocation and a
 * copy per slice, and the scavenges that garbage brings: on a 1 GiB get, garbage collection was a
 * tenth of the reading node's main thread. The addon encrypts into and decrypts into the buffers
 * the caller already holds, about half the CPU of the sliced path per MiB.
 *
 * Where the addon is not built, lacks these functions (an older build), fails its check against
 * Node's cipher at load, or TESSERA_NATIVE_SEAL=off is set, crypto.ts keeps Node's cipher. Either
 * way the bytes are the same: AES-256-GCM, 12-byte nonce, 16-byte tag after the ciphertext.
 */
import { createCipheriv, randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import { findNativeAddon, nativeSwitchedOff } from '../native-addon.js';

/** What native/sector-aead/sector_aead.c exports for chunks; its argument checks are its own (it throws TypeError). */
export interface NativeGcm {
  /** Writes the ciphertext of `plain` into `out`, followed by its 16-byte tag. */
  gcmSeal(key: Uint8Array, iv: Uint8Array, plain: Uint8Array, out: Uint8Array): void;
  /** `data` is ciphertext ‖ tag; writes the plaintext into `out`. False, with `out` zeroed, when the tag does not verify. */
  gcmOpen(key: Uint8Array, iv: Uint8Array, data: Uint8Array, out: Uint8Array): boolean;
}

/** Bytes of the check run at load: odd-sized, so a partial block is covered too. */
const CHECK_BYTES = 1000;

/** Why `g` must not be used, or undefined: it must match Node's cipher byte for byte and refuse a flipped bit. */
export function gcmDisagreement(g: NativeGcm): string | undefined {
  const key = randomBytes(32);
  const iv = randomBytes(12);
  const plain = randomBytes(CHECK_BYTES);
  const c = createCipheriv('aes-256-gcm', key, iv);
  const want = Buffer.concat([c.update(plain), c.final(), c.getAuthTag()]);
  const got = Buffer.alloc(want.length);
  g.gcmSeal(key, iv, plain, got);
  if (!got.equals(want)) return 'its AES-256-GCM differs from Node\'s';
  const back = Buffer.alloc(CHECK_BYTES);
  if (!g.gcmOpen(key, iv, got, back) || !back.equals(plain)) return 'it does not open what it sealed';
  got[0]! ^= 1;
  if (g.gcmOpen(key, iv, got, back)) return 'it opens altered bytes';
  return undefined;
}

function load(): NativeGcm | undefined {
  if (nativeSwitchedOff()) return undefined;
  const path = findNativeAddon(import.meta.url);
  if (path === undefined) return undefined;
  try {
    const g = createRequire(import.meta.url)(path) as Partial<NativeGcm>;
    if (typeof g.gcmSeal !== 'function' || typeof g.gcmOpen !== 'function') return undefined;
    return gcmDisagreement(g as NativeGcm) === undefined ? (g as NativeGcm) : undefined;
  } catch {
    return undefined;
  }
}

let loaded: { gcm: NativeGcm | undefined } | undefined;

/** The native chunk cipher, or undefined (then Node's cipher is used); loaded once per thread. */
export function nativeGcm(): NativeGcm | undefined {
  loaded ??= { gcm: load() };
  return loaded.gcm;
}
