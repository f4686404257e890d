/**
 * Sector sealing for block volumes: AES-256-GCM over every 4 KiB sector a member stores, with the
 * sector's nonce and tag kept right behind its ciphertext. Pure functions and geometry; the member
 * wrapper that applies them is sealed-member.ts.
 *
 * On a member, each 4 KiB plaintext sector becomes one 4128-byte record:
 *   ciphertext (4096) ‖ nonce (12) ‖ tag (16) ‖ version (1) ‖ zero (3)
 * Records of a stripe unit follow one another, and the unit is padded to a multiple of 512 bytes
 * (extent files need that). A contiguous range of sectors is therefore one contiguous range of
 * records: a piece of a unit stays one member read or write, and data and tag land in the same
 * pwrite. The associated data binds a record to its volume and sector position, so a member cannot
 * move a record to another sector or another volume without the tag failing.
 */
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import { badInput, corrupt } from '../../errors.js';

export const SECTOR_BYTES = 4096;
export const SEAL_NONCE_BYTES = 12;
export const SEAL_TAG_BYTES = 16;
/** nonce, tag, version byte and three reserved zero bytes: a record stays 32-byte aligned. */
export const SEAL_TRAILER_BYTES = 32;
export const SEALED_SECTOR_BYTES = SECTOR_BYTES + SEAL_TRAILER_BYTES;
export const SEAL_VERSION = 1;
export const VOLUME_KEY_BYTES = 32;
/** Extent units are multiples of 512 bytes. */
const UNIT_ALIGN = 512;
/** The 32-bit counter half of a nonce: a new random prefix is drawn before it wraps. */
const MAX_NONCES_PER_PREFIX = 0x1_0000_0000;
/** Sectors whose positions a corrupt error lists; the rest are only counted. */
export const MAX_REPORTED_SECTORS = 16;

const VOLUME_KEY_SALT = Buffer.from('tessera/v1/hkdf-salt', 'utf8');
const AAD_BYTES = 16;

/** Bytes a member stores for a stripe unit of `unitSize` plaintext bytes. */
export function sealedUnitBytes(unitSize: number): number {
  if (!Number.isSafeInteger(unitSize) || unitSize <= 0 || unitSize % SECTOR_BYTES !== 0) {
    throw badInput(`a sealed stripe unit must be a positive multiple of ${SECTOR_BYTES} bytes, got ${unitSize}`);
  }
  const raw = (unitSize / SECTOR_BYTES) * SEALED_SECTOR_BYTES;
  return Math.ceil(raw / UNIT_ALIGN) * UNIT_ALIGN;
}

/**
 * The volume's key: HKDF-SHA256 of the cluster's data key, labelled with the volume's random id.
 * A volume removed and created again under the same name gets a new id, so a new key.
 */
export function deriveVolumeKey(dataKey: Uint8Array, volumeId: string): Buffer {
  if (!/^[0-9a-f]{16}$/.test(volumeId)) throw badInput(`volume id must be 16 hex digits, got '${volumeId}'`);
  return Buffer.from(hkdfSync('sha256', dataKey, VOLUME_KEY_SALT, `tessera/v1/volume/${volumeId}`, VOLUME_KEY_BYTES));
}

/**
 * Nonces for one key: a random 64-bit prefix and a 32-bit counter. Within one source no nonce
 * repeats; two sources (two opens of the volume, or one source past 2^32 seals) collide only if
 * they draw the same 64-bit prefix, so the chance over S sources is about S² / 2^65, however many
 * sectors each seals.
 */
export class NonceSource {
  private prefix = randomBytes(8);
  private count = 0;

  next(out: Buffer, at: number): void {
    if (this.count >= MAX_NONCES_PER_PREFIX) {
      this.prefix = randomBytes(8);
      this.count = 0;
    }
    this.prefix.copy(out, at);
    out.writeUInt32BE(this.count++, at + 8);
  }
}

export class SectorSealer {
  private readonly aad = Buffer.alloc(AAD_BYTES);
  private readonly nonces = new NonceSource();
  private readonly volumeTag: Buffer;
  /** Runs sealed in this turn of the event loop, by the plaintext buffer and first sector. */
  private readonly recent = new Map<Buffer, Map<number, Buffer>>();

  /** `volumeId` is the record's 16 hex digits; it goes into every sector's associated data. */
  constructor(private readonly key: Buffer, volumeId: string) {
    if (key.length !== VOLUME_KEY_BYTES) throw badInput(`volume key must be ${VOLUME_KEY_BYTES} bytes, got ${key.length}`);
    this.volumeTag = Buffer.from(volumeId, 'hex');
    if (this.volumeTag.length !== 8) throw badInput(`volume id must be 16 hex digits, got '${volumeId}'`);
  }

  private aadFor(sector: number): Buffer {
    this.volumeTag.copy(this.aad, 0);
    this.aad.writeUIntBE(Math.floor(sector / 2 ** 32), 8, 4);
    this.aad.writeUInt32BE(sector >>> 0, 12);
    return this.aad;
  }

  /** Seals plaintext sector `plain` (SECTOR_BYTES) of member sector index `sector` into `out` at `at`. */
  seal(plain: Buffer, sector: number, out: Buffer, at: number): void {
    const nonceAt = at + SECTOR_BYTES;
    this.nonces.next(out, nonceAt);
    const c = createCipheriv('aes-256-gcm', this.key, out.subarray(nonceAt, nonceAt + SEAL_NONCE_BYTES));
    c.setAAD(this.aadFor(sector));
    c.update(plain).copy(out, at);
    c.final();
    c.getAuthTag().copy(out, nonceAt + SEAL_NONCE_BYTES);
    out[nonceAt + SEAL_NONCE_BYTES + SEAL_TAG_BYTES] = SEAL_VERSION;
    out.fill(0, nonceAt + SEAL_NONCE_BYTES + SEAL_TAG_BYTES + 1, at + SEALED_SECTOR_BYTES);
  }

  /**
   * Seals whole sectors `plain` starting at member sector `firstSector` into a new buffer of
   * records. raid1 writes the same buffer at the same offset to every mirror: records are bound
   * to their position, not to a member, so the mirrors get the records sealed once (identical
   * ciphertext of identical plaintext; no nonce meets two plaintexts). Only within one turn of the
   * event loop, while the caller cannot have changed the buffer.
   */
  sealRun(plain: Buffer, firstSector: number): Buffer {
    const n = plain.length / SECTOR_BYTES;
    if (!Number.isInteger(n)) throw badInput(`a sealed run is whole ${SECTOR_BYTES}-byte sectors, got ${plain.length} bytes`);
    const hit = this.recent.get(plain)?.get(firstSector);
    if (hit !== undefined) return hit;
    const rec = Buffer.allocUnsafe(n * SEALED_SECTOR_BYTES);
    for (let i = 0; i < n; i++) this.seal(plain.subarray(i * SECTOR_BYTES, (i + 1) * SECTOR_BYTES), firstSector + i, rec, i * SEALED_SECTOR_BYTES);
    let bySector = this.recent.get(plain);
    if (bySector === undefined) {
      if (this.recent.size === 0) setImmediate(() => this.recent.clear());
      bySector = new Map();
      this.recent.set(plain, bySector);
    }
    bySector.set(firstSector, rec);
    return rec;
  }

  /**
   * Opens the record at `rec[at..]` into `out` at `outAt`. Returns false when the record fails
   * authentication. A record of all zeroes is a sector never written and opens as zeroes.
   */
  open(rec: Buffer, at: number, sector: number, out: Buffer, outAt: number): boolean {
    const trailer = at + SECTOR_BYTES;
    if (rec[trailer + SEAL_NONCE_BYTES + SEAL_TAG_BYTES] !== SEAL_VERSION) {
      if (!isZero(rec, at, at + SEALED_SECTOR_BYTES)) return false;
      out.fill(0, outAt, outAt + SECTOR_BYTES);
      return true;
    }
    try {
      const d = createDecipheriv('aes-256-gcm', this.key, rec.subarray(trailer, trailer + SEAL_NONCE_BYTES));
      d.setAAD(this.aadFor(sector));
      d.setAuthTag(rec.subarray(trailer + SEAL_NONCE_BYTES, trailer + SEAL_NONCE_BYTES + SEAL_TAG_BYTES));
      d.update(rec.subarray(at, at + SECTOR_BYTES)).copy(out, outAt);
      d.final();
      return true;
    } catch {
      return false;
    }
  }
}

function isZero(b: Buffer, from: number, to: number): boolean {
  for (let i = from; i < to; i++) if (b[i] !== 0) return false;
  return true;
}

/** The error a member read gets when records fail authentication: altered, torn or rotten bytes. */
export function sectorsCorrupt(member: string, sectors: number[], count: number) {
  return corrupt(
    `member ${member}: ${count} sector(s) failed authentication (first at member sector ${sectors[0]}); the bytes were altered, torn or rotted on the member or the network`,
    { member, sectors: sectors.slice(0, MAX_REPORTED_SECTORS), count },
  );
}
