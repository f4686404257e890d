/**
 * TLS for the NBD face, as nbdkit and qemu-nbd offer it: NBD_OPT_STARTTLS during option haggling,
 * then the rest of the session inside TLS, authenticated by a pre-shared key (the `username:hexkey`
 * file psktool writes and nbdkit --tls-psk and qemu's tls-creds-psk read) or by X.509 certificates.
 */
import { isIP } from 'node:net';
import tls from 'node:tls';
import type { Socket } from 'node:net';
import { badInput, TesseraError, tooLarge } from '../../errors.js';

export type NbdTlsMode = 'off' | 'on' | 'require';
export const NBD_TLS_MODES: readonly NbdTlsMode[] = ['off', 'on', 'require'];

/** A PSK file is a short list of identities; anything longer is not one. */
export const MAX_PSK_FILE_BYTES = 256 << 10;
export const MAX_PSK_ENTRIES = 1024;
/** RFC 4279 bounds identities at 2^16 bytes; psktool names are short, and GnuTLS caps them far lower. */
export const MAX_PSK_IDENTITY_BYTES = 255;
/** 128 bits is the least a key may carry; psktool makes 256-bit keys by default. */
export const MIN_PSK_KEY_BYTES = 16;
export const MAX_PSK_KEY_BYTES = 64;

/** TLS 1.3 PSK in OpenSSL uses the SHA-256 suite; TLS 1.2 clients get the AEAD PSK suites. */
const PSK_CIPHERS = 'TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:ECDHE-PSK-CHACHA20-POLY1305:DHE-PSK-AES256-GCM-SHA384:DHE-PSK-AES128-GCM-SHA256:PSK-AES256-GCM-SHA384:PSK-AES128-GCM-SHA256';

export interface NbdTlsCredentials {
  /** identity → key, from a psktool file. */
  psk?: Map<string, Buffer>;
  /** PEM certificate chain and key; with `ca`, clients must present a certificate it signed. */
  cert?: { cert: Buffer; key: Buffer; ca?: Buffer };
}

export interface NbdTls {
  mode: NbdTlsMode;
  credentials?: NbdTlsCredentials;
}

/** Parses a psktool file: one `identity:hexkey` per line; blank lines and `#` comments ignored. */
export function parsePskFile(text: string, where = 'PSK file'): Map<string, Buffer> {
  if (Buffer.byteLength(text) > MAX_PSK_FILE_BYTES) throw tooLarge(`${where} is over ${MAX_PSK_FILE_BYTES} bytes; it should hold a few 'username:hexkey' lines`);
  const out = new Map<string, Buffer>();
  const lines = text.split(/\r?\n/);
  for (const [i, raw] of lines.entries()) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const at = line.lastIndexOf(':');
    const id = line.slice(0, at);
    const hex = line.slice(at + 1);
    const bad = (why: string) => badInput(`${where} line ${i + 1}: ${why}; each line is 'username:hexkey' as psktool writes it (psktool -u alice -p ${where})`);
    if (at <= 0) throw bad('no identity before the colon');
    if (Buffer.byteLength(id) > MAX_PSK_IDENTITY_BYTES) throw bad(`identity is over ${MAX_PSK_IDENTITY_BYTES} bytes`);
    if (!/^[0-9a-fA-F]+$/.test(hex) || hex.length % 2 !== 0) throw bad('the key is not an even number of hex digits');
    const key = Buffer.from(hex, 'hex');
    if (key.length < MIN_PSK_KEY_BYTES || key.length > MAX_PSK_KEY_BYTES) throw bad(`the key is ${key.length} bytes; use ${MIN_PSK_KEY_BYTES} to ${MAX_PSK_KEY_BYTES}`);
    if (out.has(id)) throw bad(`identity '${id}' appears twice`);
    if (out.size >= MAX_PSK_ENTRIES) throw tooLarge(`${where} has more than ${MAX_PSK_ENTRIES} identities`);
    out.set(id, key);
  }
  if (out.size === 0) throw badInput(`${where} holds no 'username:hexkey' line`);
  return out;
}

/** Whether a TCP bind address only accepts connections from this machine. */
export function isLoopbackHost(host: string): boolean {
  if (host === 'localhost') return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  if (isIP(host) === 6) return host === '::1' || host.toLowerCase().startsWith('::ffff:127.');
  return false;
}

/** Checks a TLS setting is complete and may serve `bind` (TCP host, or null for a unix socket). */
export function checkTlsPolicy(t: NbdTls, bindHost: string | null, allowPlaintext: boolean): void {
  const hasCreds = t.credentials?.psk !== undefined || t.credentials?.cert !== undefined;
  if (t.mode !== 'off' && !hasCreds) throw badInput(`--tls ${t.mode} needs credentials: --tls-psk FILE (psktool format) or --tls-cert FILE with --tls-key FILE`);
  if (t.mode === 'off' && hasCreds) throw badInput('TLS credentials were given with --tls off; drop them or use --tls require');
  if (bindHost !== null && !isLoopbackHost(bindHost) && t.mode !== 'require' && !allowPlaintext) {
    throw badInput(
      `NBD on ${bindHost} would be reachable from other machines ${t.mode === 'off' ? 'without TLS' : 'with TLS optional'}: anyone who can connect could read and overwrite every volume. `
      + 'Use --tls require with --tls-psk FILE (or certificates), listen on 127.0.0.1 or a --socket, or pass --allow-plaintext if the network is trusted',
    );
  }
}

/** Server options for one TLS session; built once per server. */
export function tlsServerOptions(c: NbdTlsCredentials): tls.TlsOptions {
  const opts: tls.TlsOptions = { minVersion: 'TLSv1.2' };
  if (c.cert !== undefined) {
    Object.assign(opts, { cert: c.cert.cert, key: c.cert.key });
    if (c.cert.ca !== undefined) Object.assign(opts, { ca: c.cert.ca, requestCert: true, rejectUnauthorized: true });
  }
  if (c.psk !== undefined) {
    const psk = c.psk;
    opts.pskCallback = (_socket, identity) => psk.get(identity) ?? null;
    opts.ciphers = c.cert !== undefined ? `${PSK_CIPHERS}:${tls.DEFAULT_CIPHERS}` : PSK_CIPHERS;
  }
  return opts;
}

/** Runs the server side of a TLS handshake over `socket`; resolves with the secure socket. */
export function startTls(socket: Socket, options: tls.TlsOptions, context: tls.SecureContext): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const secure = new tls.TLSSocket(socket, { ...options, isServer: true, secureContext: context });
    const fail = (err: Error) => {
      secure.destroy();
      reject(new TesseraError('AUTH', `NBD TLS handshake failed: ${err.message}`, undefined, { cause: err }));
    };
    secure.once('error', fail);
    secure.once('close', () => fail(new Error('connection closed during the TLS handshake')));
    secure.once('secure', () => {
      secure.off('error', fail);
      secure.removeAllListeners('close');
      resolve(secure);
    });
  });
}
