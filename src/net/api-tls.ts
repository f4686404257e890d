/**
 * The API's TLS certificate. `init` makes a self-signed one in the data directory (ECDSA P-256, so
 * browsers accept it too); the CLI pins it by fingerprint from the same directory, so no CA and
 * no host name are involved. An operator may serve certificate files of their own instead.
 */
import { X509Certificate, generateKeyPair } from 'node:crypto';
import { open, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { TesseraError } from '../errors.js';
import { createSelfSignedEcdsaP256 } from './selfsigned.js';

export const API_CERT_FILE = 'api-cert.pem';
export const API_KEY_FILE = 'api-key.pem';
const API_CERT_VALIDITY_DAYS = 3650;
/** A certificate chain or key file is a few KiB; anything far bigger is not one. */
export const MAX_PEM_FILE_BYTES = 256 << 10;

export interface ApiTlsFiles {
  cert: string;
  key: string;
}

export interface ApiTls extends ApiTlsFiles {
  /** SHA-256 fingerprint of the leaf certificate, as Node prints it (AA:BB:...). */
  fingerprint256: string;
  /** Made by tessera at init, so clients must pin it; false for an operator's certificate. */
  selfSigned: boolean;
  certFile: string;
}

const generateKeyPairAsync = promisify(generateKeyPair);

/** Writes DATA/api-cert.pem and DATA/api-key.pem unless they exist; the key is 0600. */
export async function ensureSelfSignedApiCert(dataDir: string): Promise<void> {
  const certPath = join(dataDir, API_CERT_FILE);
  const keyPath = join(dataDir, API_KEY_FILE);
  try {
    await Promise.all([readFile(certPath), readFile(keyPath)]);
    return;
  } catch {
    /* make them */
  }
  const { publicKey, privateKey } = await generateKeyPairAsync('ec', { namedCurve: 'prime256v1' });
  const now = Date.now();
  const cert = createSelfSignedEcdsaP256({
    publicKey,
    privateKey,
    commonName: 'tessera-api',
    notBefore: new Date(now - 24 * 3600 * 1000),
    notAfter: new Date(now + API_CERT_VALIDITY_DAYS * 24 * 3600 * 1000),
  });
  await writeNew(keyPath, privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), 0o600);
  await writeNew(certPath, cert, 0o644);
}

async function writeNew(path: string, content: string, mode: number): Promise<void> {
  const fh = await open(path, 'w', mode);
  try {
    await fh.writeFile(content);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

async function readPem(path: string, what: string): Promise<string> {
  let text: Buffer;
  try {
    text = await readFile(path);
  } catch (e) {
    throw new TesseraError('NOT_FOUND', `cannot read the API ${what} ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  if (text.length > MAX_PEM_FILE_BYTES) throw new TesseraError('BAD_INPUT', `API ${what} ${path} is ${text.length} bytes, larger than any PEM ${what}`);
  return text.toString('utf8');
}

/** Loads the certificate the API serves: the operator's files, or the self-signed pair in the data dir. */
export async function loadApiTls(dataDir: string, files?: { certFile: string; keyFile: string }): Promise<ApiTls> {
  const selfSigned = files === undefined;
  if (selfSigned) await ensureSelfSignedApiCert(dataDir);
  const certFile = files?.certFile ?? join(dataDir, API_CERT_FILE);
  const keyFile = files?.keyFile ?? join(dataDir, API_KEY_FILE);
  const [cert, key] = await Promise.all([readPem(certFile, 'certificate'), readPem(keyFile, 'key')]);
  let fingerprint256: string;
  try {
    fingerprint256 = new X509Certificate(cert).fingerprint256;
  } catch (e) {
    throw new TesseraError('BAD_INPUT', `API certificate ${certFile} is not a PEM certificate: ${(e as Error).message}`);
  }
  return { cert, key, fingerprint256, selfSigned, certFile };
}

export interface ApiSecurityOptions {
  /** Serve HTTPS also on loopback (beyond loopback it is the default). */
  tls?: boolean;
  /** The operator's certificate and key files instead of the self-signed pair. */
  certFile?: string;
  keyFile?: string;
  /** Serve plain HTTP beyond loopback anyway (behind a TLS-terminating proxy, say). */
  plainHttp?: boolean;
  /** Let reads through without the token on loopback. */
  openReads?: boolean;
  idleTimeoutMs?: number;
  maxTransfers?: number;
}

/**
 * Whether the API speaks TLS, from where it listens and what the operator asked for. Pure, so
 * every combination is tested; refusals name the flag that fixes them.
 */
export function apiUsesTls(loopback: boolean, o: ApiSecurityOptions): boolean {
  if ((o.certFile === undefined) !== (o.keyFile === undefined)) {
    throw new TesseraError('BAD_INPUT', '--api-cert and --api-key go together: give both files, or neither for the self-signed certificate');
  }
  const wantsTls = o.tls === true || o.certFile !== undefined;
  if (wantsTls && o.plainHttp === true) throw new TesseraError('BAD_INPUT', '--api-plain-http contradicts --api-tls/--api-cert; choose one');
  if (o.openReads === true && !loopback) {
    throw new TesseraError('BAD_INPUT', '--api-open-reads is only allowed when the API listens on loopback; remote readers need the token');
  }
  if (wantsTls) return true;
  return !loopback && o.plainHttp !== true;
}
