/**
 * Proofs for messages that destroy or redirect data (file removal, name records, draining a
 * node). Only a holder of the data key may send them, and every node must be able to check them,
 * storage-only nodes included, which do not hold that key. So the proof is an Ed25519 signature
 * by a key pair derived from the data key: full nodes derive both halves, a storage-only node is
 * given only the public half (its join token carries it) and can verify but never sign.
 *
 * Each statement starts with its own label and carries every field the operation acts on, so a
 * proof for one operation, file, name or node proves nothing about another. Pure: no I/O.
 */
import { createHash, createPrivateKey, createPublicKey, hkdfSync, sign, verify, type KeyObject } from 'node:crypto';
import { TesseraError, badInput } from '../errors.js';
import { MIN_DATA_KEY_BYTES, MAX_DATA_KEY_BYTES } from './crypto.js';
import { encodeHlc, type Hlc } from './hlc.js';

export const AUTHORITY_PUBLIC_KEY_BYTES = 32;
export const AUTHORITY_PROOF_BYTES = 64;
/**
 * How far a signed time may lie ahead of the receiver's clock. Beyond it a tombstone (or a drain
 * order) is refused, so no one can date a record into the future to win every later merge.
 */
export const MAX_PROOF_FUTURE_MS = 60_000;
/** How old a drain order may be when it arrives: a recorded one cannot be replayed later. */
export const MAX_DRAIN_ORDER_AGE_MS = 120_000;

const HKDF_SALT = Buffer.from('tessera/v1/hkdf-salt', 'utf8');
const SEED_LABEL = 'tessera/v1/member-authority';
// RFC 8410 PKCS#8 wrapping of a raw 32-byte Ed25519 seed.
const PKCS8_ED25519_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
// RFC 8410 SubjectPublicKeyInfo wrapping of a raw 32-byte Ed25519 public key.
const SPKI_ED25519_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

const LABEL = {
  fileRm: 'tessera/v1/proof/file.rm',
  name: 'tessera/v1/proof/name',
  drain: 'tessera/v1/proof/heal.drain',
  volume: 'tessera/v1/proof/volume-record',
  pin: 'tessera/v1/proof/chunk-pin',
  commit: 'tessera/v1/proof/file.commit',
  abort: 'tessera/v1/proof/file.abort',
} as const;

/** A removal of a file (its tombstone): the root it removes and when. */
export interface FileRmStatement {
  kind: 'fileRm';
  root: string;
  at: number;
}
/** A name record: the lookup key, its timestamp and (by hash) its sealed box. */
export interface NameStatement {
  kind: 'name';
  key: Uint8Array;
  hlc: Hlc;
  box: Uint8Array;
}
/** An order to start or stop draining one node, at one time. */
export interface DrainStatement {
  kind: 'drain';
  target: string;
  on: boolean;
  at: number;
}
/** A volume record (layout, members, master, version): its canonical bytes, made by block/. */
export interface VolumeStatement {
  kind: 'volume';
  record: Uint8Array;
}
/**
 * An upload (one put, a random id) holds a reference to one chunk. Made by the writer for every
 * chunk it stores or claims, so a commit cannot be stretched over chunks the put never wrote.
 */
export interface PinStatement {
  kind: 'pin';
  upload: string;
  chunk: Uint8Array;
}
/** An upload became a file: the upload, the file's root and its commit time. */
export interface CommitStatement {
  kind: 'commit';
  upload: string;
  root: string;
  at: number;
}
/** The writer gives up an upload, committed somewhere or not (a commit that missed its quorum). */
export interface AbortStatement {
  kind: 'abort';
  upload: string;
}
export type Statement = FileRmStatement | NameStatement | DrainStatement | VolumeStatement | PinStatement | CommitStatement | AbortStatement;

function field(b: Uint8Array): Buffer {
  const len = Buffer.allocUnsafe(4);
  len.writeUInt32BE(b.length);
  return Buffer.concat([len, b]);
}

function u64(n: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(n));
  return b;
}

/** The exact bytes signed for a statement; every field is length-prefixed so none can bleed into the next. */
export function statementBytes(s: Statement): Buffer {
  switch (s.kind) {
    case 'fileRm':
      return Buffer.concat([field(Buffer.from(LABEL.fileRm)), field(Buffer.from(s.root, 'utf8')), u64(s.at)]);
    case 'name':
      return Buffer.concat([field(Buffer.from(LABEL.name)), field(s.key), field(encodeHlc(s.hlc)), field(createHash('sha256').update(s.box).digest())]);
    case 'drain':
      return Buffer.concat([field(Buffer.from(LABEL.drain)), field(Buffer.from(s.target, 'utf8')), Buffer.from([s.on ? 1 : 0]), u64(s.at)]);
    case 'volume':
      return Buffer.concat([field(Buffer.from(LABEL.volume)), field(s.record)]);
    case 'pin':
      return Buffer.concat([field(Buffer.from(LABEL.pin)), field(Buffer.from(s.upload, 'utf8')), field(s.chunk)]);
    case 'commit':
      return Buffer.concat([field(Buffer.from(LABEL.commit)), field(Buffer.from(s.upload, 'utf8')), field(Buffer.from(s.root, 'utf8')), u64(s.at)]);
    case 'abort':
      return Buffer.concat([field(Buffer.from(LABEL.abort)), field(Buffer.from(s.upload, 'utf8'))]);
  }
}

/** Checks proofs; every node holds one. */
export class AuthorityVerifier {
  readonly publicKey: Buffer;
  readonly #key: KeyObject;

  constructor(publicKey: Uint8Array) {
    if (publicKey.length !== AUTHORITY_PUBLIC_KEY_BYTES) throw badInput(`authority public key must be ${AUTHORITY_PUBLIC_KEY_BYTES} bytes, found ${publicKey.length}`);
    this.publicKey = Buffer.from(publicKey);
    this.#key = createPublicKey({ key: Buffer.concat([SPKI_ED25519_PREFIX, this.publicKey]), format: 'der', type: 'spki' });
  }

  /** True when `proof` is a valid signature of this statement by the cluster's authority key. */
  valid(s: Statement, proof: Uint8Array | undefined): boolean {
    if (proof === undefined || proof.length !== AUTHORITY_PROOF_BYTES) return false;
    return verify(null, statementBytes(s), this.#key, proof);
  }
}

/** Makes proofs; only a node holding the data key can build one. */
export class AuthoritySigner extends AuthorityVerifier {
  readonly #private: KeyObject;

  constructor(dataKey: Uint8Array) {
    if (dataKey.length < MIN_DATA_KEY_BYTES || dataKey.length > MAX_DATA_KEY_BYTES) throw badInput(`data key must be ${MIN_DATA_KEY_BYTES}..${MAX_DATA_KEY_BYTES} bytes`);
    const seed = Buffer.from(hkdfSync('sha256', dataKey, HKDF_SALT, SEED_LABEL, 32));
    const priv = createPrivateKey({ key: Buffer.concat([PKCS8_ED25519_PREFIX, seed]), format: 'der', type: 'pkcs8' });
    const spki = createPublicKey(priv).export({ format: 'der', type: 'spki' });
    super(spki.subarray(spki.length - AUTHORITY_PUBLIC_KEY_BYTES));
    this.#private = priv;
  }

  prove(s: Statement): Buffer {
    return sign(null, statementBytes(s), this.#private);
  }
}

/** The public half of the authority key for a data key: what a storage-only node's token carries. */
export function authorityPublicKey(dataKey: Uint8Array): Buffer {
  return new AuthoritySigner(dataKey).publicKey;
}

/**
 * Why a proven message must be refused, or undefined when it passes: a time problem the caller
 * found first, no key to check with, no proof, or a proof that does not match.
 */
export function proofProblem(verifier: AuthorityVerifier | undefined, s: Statement, proof: Uint8Array | undefined, timeProblem?: string): string | undefined {
  if (timeProblem !== undefined) return timeProblem;
  if (verifier === undefined) return 'this node holds no authority key to check it with (re-join it with a current token)';
  if (proof === undefined) return 'it carries no proof';
  if (!verifier.valid(s, proof)) return 'its proof does not match';
  return undefined;
}

/** AUTH error for a destructive message without a valid proof; names what was refused and why. */
export function unproven(what: string, why: string): TesseraError {
  return new TesseraError('AUTH', `refused ${what}: ${why}; only a node holding the data key may send it (an older peer sends no proof: upgrade it)`);
}
