/**
 * Limits shared across layers. A layer's private limits live beside its code; these are the ones
 * two layers must agree on (a chunk must fit in a frame, for instance).
 */

/** Default size of a file chunk (plaintext). */
export const DEFAULT_CHUNK_BYTES = 1 << 20;
/** Largest chunk a node accepts or a client may configure (ciphertext, including the GCM tag). */
export const MAX_CHUNK_BYTES = 8 << 20;
/** Largest raw payload one frame may carry; a whole chunk always fits. */
export const MAX_FRAME_PAYLOAD_BYTES = MAX_CHUNK_BYTES + (64 << 10);
/** Largest CBOR control section of one frame. */
export const MAX_CONTROL_BYTES = 256 << 10;
/** Wire protocol version spoken in the hello; a peer with another version is refused. */
export const PROTOCOL_VERSION = 1;
/** Length of a chunk id (SHA-256) in bytes. */
export const CHUNK_ID_BYTES = 32;
/** Most copies of a chunk (the files layer enforces it, the CLI names it in its help); beyond this a cluster spends capacity without gaining durability. */
export const MAX_REPLICAS = 16;
