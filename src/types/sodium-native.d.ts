/** The few libsodium calls tessera uses (sodium-native ships no type declarations). */
declare module 'sodium-native' {
  const sodium: {
    /** Throws when `mac` does not authenticate `ciphertext` and `ad` under `npub` and `key`. */
    crypto_aead_xchacha20poly1305_ietf_decrypt_detached(message: Uint8Array, nsec: null, ciphertext: Uint8Array, mac: Uint8Array, ad: Uint8Array | null, npub: Uint8Array, key: Uint8Array): void;
    crypto_aead_xchacha20poly1305_ietf_encrypt_detached(ciphertext: Uint8Array, mac: Uint8Array, message: Uint8Array, ad: Uint8Array | null, nsec: null, npub: Uint8Array, key: Uint8Array): number;
  };
  export default sodium;
}
