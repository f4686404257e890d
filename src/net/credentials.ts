/**
 * Node identity: an Ed25519 key pair and a self-signed X.509 certificate carrying its public
 * key, so TLS can present it. The node id is derived from the raw public key, never trusted from
 * a field a peer controls. No file I/O here: callers persist the plain object.
 */
import { X509Certificate, createHash, createPublicKey, generateKeyPair, type KeyObject } from 'node:crypto';
import { promisify } from 'node:util';
import { z } from 'zod';
import { TesseraError } from '../errors.js';
import { createSelfSignedEd25519 } from './selfsigned.js';

export interface NodeCredentials {
  nodeId: string;
  privateKeyPem: string;
  certificatePem: string;
  /** Raw 32-byte Ed25519 public key. */
  publicKey: Buffer;
}

export const NODE_ID_HEX_CHARS = 40;
const NODE_ID_BYTES = NODE_ID_HEX_CHARS / 2;
const ED25519_PUBLIC_KEY_BYTES = 32;
/** Self-signed identities are pinned by id, not by expiry; a long validity avoids clock trouble. */
const CERT_VALIDITY_YEARS = 100;
/** PEM files are small; anything larger is not a credential. */
const MAX_PEM_CHARS = 16 * 1024;

export function nodeIdFromPublicKey(raw32: Buffer): string {
  if (raw32.length !== ED25519_PUBLIC_KEY_BYTES) {
    throw new TesseraError('BAD_INPUT', `an Ed25519 public key is ${ED25519_PUBLIC_KEY_BYTES} bytes, got ${raw32.length}`);
  }
  return createHash('sha256').update(raw32).digest().subarray(0, NODE_ID_BYTES).toString('hex');
}

/** The raw key of an Ed25519 KeyObject; AUTH if the key is of another type. */
export function rawEd25519PublicKey(key: KeyObject): Buffer {
  if (key.asymmetricKeyType !== 'ed25519') {
    throw new TesseraError('AUTH', `certificate key is ${key.asymmetricKeyType ?? 'unknown'}, expected ed25519`);
  }
  const jwk = key.export({ format: 'jwk' });
  const raw = Buffer.from(jwk.x ?? '', 'base64url');
  if (raw.length !== ED25519_PUBLIC_KEY_BYTES) throw new TesseraError('AUTH', 'certificate carries a malformed ed25519 key');
  return raw;
}

/**
 * Checks that `cert` is an Ed25519 certificate signed by its own key and returns the node id of
 * that key. Throws AUTH naming what is wrong.
 */
export function nodeIdFromCertificate(cert: X509Certificate | string | Buffer): string {
  let c: X509Certificate;
  try {
    c = cert instanceof X509Certificate ? cert : new X509Certificate(cert);
  } catch (e) {
    throw new TesseraError('AUTH', `certificate cannot be parsed: ${(e as Error).message}`, undefined, { cause: e });
  }
  const raw = rawEd25519PublicKey(c.publicKey);
  if (!c.checkIssued(c) || !c.verify(c.publicKey)) {
    throw new TesseraError('AUTH', 'certificate is not self-signed by its own key');
  }
  return nodeIdFromPublicKey(raw);
}

const generateKeyPairAsync = promisify(generateKeyPair);

export async function generateCredentials(): Promise<NodeCredentials> {
  const { publicKey, privateKey } = await generateKeyPairAsync('ed25519');
  const rawPub = rawEd25519PublicKey(publicKey);
  const nodeId = nodeIdFromPublicKey(rawPub);
  const now = Date.now();
  const certificatePem = createSelfSignedEd25519({
    publicKey,
    privateKey,
    commonName: `tessera-${nodeId}`,
    notBefore: new Date(now - 24 * 3600 * 1000),
    notAfter: new Date(now + CERT_VALIDITY_YEARS * 365 * 24 * 3600 * 1000),
  });
  const privateKeyPem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  return { nodeId, privateKeyPem, certificatePem, publicKey: rawPub };
}

const serializedSchema = z.object({
  version: z.literal(1),
  nodeId: z.string(),
  privateKeyPem: z.string().max(MAX_PEM_CHARS),
  certificatePem: z.string().max(MAX_PEM_CHARS),
});
export type SerializedCredentials = z.infer<typeof serializedSchema>;

export function serializeCredentials(c: NodeCredentials): SerializedCredentials {
  return { version: 1, nodeId: c.nodeId, privateKeyPem: c.privateKeyPem, certificatePem: c.certificatePem };
}

/**
 * Rebuilds credentials from a stored object, checking that the key, the certificate and the
 * recorded node id all agree, so a mixed-up identity file fails at load, not at first contact.
 */
export function loadCredentials(obj: unknown): NodeCredentials {
  const parsed = serializedSchema.safeParse(obj);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new TesseraError('BAD_INPUT', `node credentials are malformed at ${issue?.path.join('.') || '(root)'}: ${issue?.message ?? 'invalid'}`);
  }
  const { nodeId, privateKeyPem, certificatePem } = parsed.data;
  let certId: string;
  try {
    certId = nodeIdFromCertificate(certificatePem);
  } catch (e) {
    throw new TesseraError('BAD_INPUT', `node certificate is invalid: ${(e as Error).message}`, undefined, { cause: e });
  }
  let publicKey: Buffer;
  try {
    publicKey = rawEd25519PublicKey(createPublicKey(privateKeyPem));
  } catch (e) {
    throw new TesseraError('BAD_INPUT', `node private key is invalid: ${(e as Error).message}`, undefined, { cause: e });
  }
  const keyId = nodeIdFromPublicKey(publicKey);
  if (keyId !== certId) throw new TesseraError('BAD_INPUT', `node private key (id ${keyId}) does not match its certificate (id ${certId})`);
  if (nodeId !== keyId) throw new TesseraError('BAD_INPUT', `recorded node id ${nodeId} does not match the key's id ${keyId}`);
  return { nodeId, privateKeyPem, certificatePem, publicKey };
}
