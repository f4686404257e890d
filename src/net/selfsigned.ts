/**
 * Minimal DER writer for one shape of certificate: X.509 v3, Ed25519 or ECDSA P-256, self-signed,
 * subject = issuer = CN only, no extensions. Peers pin identities by node id (derived from the
 * key) and API clients pin the certificate's fingerprint, so nothing else in it is relied on.
 * The API's certificate is ECDSA P-256 because browsers do not accept Ed25519 server keys.
 *
 * Written here rather than through @peculiar/x509 because that library pulls in tsyringe, which
 * refuses to load without a global `reflect-metadata` polyfill the project does not carry.
 */
import { randomBytes, sign, type KeyObject } from 'node:crypto';

function derLength(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

function tlv(tag: number, ...content: Buffer[]): Buffer {
  const body = Buffer.concat(content);
  return Buffer.concat([Buffer.from([tag]), derLength(body.length), body]);
}

const seq = (...c: Buffer[]) => tlv(0x30, ...c);
const OID_ED25519 = Buffer.from([0x06, 0x03, 0x2b, 0x65, 0x70]); // 1.3.101.112
const OID_ECDSA_SHA256 = Buffer.from([0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02]); // 1.2.840.10045.4.3.2
const OID_COMMON_NAME = Buffer.from([0x06, 0x03, 0x55, 0x04, 0x03]); // 2.5.4.3

function derTime(d: Date): Buffer {
  const iso = d.toISOString(); // YYYY-MM-DDTHH:MM:SS.sssZ
  const digits = iso.slice(0, 19).replace(/[-T:]/g, '') + 'Z';
  const year = d.getUTCFullYear();
  // RFC 5280: UTCTime through 2049, GeneralizedTime from 2050.
  return year < 2050 ? tlv(0x17, Buffer.from(digits.slice(2), 'ascii')) : tlv(0x18, Buffer.from(digits, 'ascii'));
}

export interface SelfSignedOptions {
  publicKey: KeyObject;
  privateKey: KeyObject;
  commonName: string;
  notBefore: Date;
  notAfter: Date;
}

export function createSelfSignedEd25519(opts: SelfSignedOptions): string {
  return createSelfSigned(opts, 'ed25519');
}

/** For a P-256 key pair (generateKeyPair('ec', { namedCurve: 'prime256v1' })). */
export function createSelfSignedEcdsaP256(opts: SelfSignedOptions): string {
  return createSelfSigned(opts, 'ecdsa-p256');
}

function createSelfSigned(opts: SelfSignedOptions, kind: 'ed25519' | 'ecdsa-p256'): string {
  const serial = randomBytes(16);
  serial[0] = (serial[0]! & 0x7f) | 0x01; // positive and without a leading zero byte
  const algorithm = seq(kind === 'ed25519' ? OID_ED25519 : OID_ECDSA_SHA256);
  const name = seq(tlv(0x31, seq(OID_COMMON_NAME, tlv(0x0c, Buffer.from(opts.commonName, 'utf8')))));
  const spki = opts.publicKey.export({ type: 'spki', format: 'der' });
  const tbs = seq(
    tlv(0xa0, tlv(0x02, Buffer.from([2]))), // version v3
    tlv(0x02, serial),
    algorithm,
    name,
    seq(derTime(opts.notBefore), derTime(opts.notAfter)),
    name,
    spki,
  );
  // ECDSA signs a SHA-256 digest and yields the DER Ecdsa-Sig-Value X.509 expects.
  const signature = sign(kind === 'ed25519' ? null : 'sha256', tbs, opts.privateKey);
  const cert = seq(tbs, algorithm, tlv(0x03, Buffer.from([0]), signature));
  const b64 = cert.toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '');
  return `-----BEGIN CERTIFICATE-----\n${b64}\n-----END CERTIFICATE-----\n`;
}
