/**
 * Which members hold the data key. Only they may hold or read table partitions, since entries
 * name files and objects. A full node proves it with a MAC over its own node id (and, when asked,
 * a fresh nonce) under a key derived from the data key; the transport has already authenticated
 * that node id, so a proof cannot be borrowed by another member. Pure functions, no I/O.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

const PROOF_LABEL = Buffer.from('tessera/v1/full-node\0', 'utf8');
const CALLER_LABEL = Buffer.from('tessera/v1/table-caller\0', 'utf8');
export const PROOF_BYTES = 32;
export const PROOF_NONCE_BYTES = 16;

/** Answer to a challenge: binds the answering node's id to the verifier's nonce. */
export function fullNodeProof(macKey: Uint8Array, nodeId: string, nonce: Uint8Array): Buffer {
  return createHmac('sha256', macKey).update(PROOF_LABEL).update(nodeId, 'utf8').update('\0').update(nonce).digest();
}

/** Carried on every table request: says the (transport-authenticated) caller holds the data key. */
export function callerProof(macKey: Uint8Array, nodeId: string): Buffer {
  return createHmac('sha256', macKey).update(CALLER_LABEL).update(nodeId, 'utf8').digest();
}

export function proofMatches(expected: Buffer, got: Uint8Array): boolean {
  return got.length === expected.length && timingSafeEqual(expected, got);
}
