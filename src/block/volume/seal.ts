/**
 * Sector sealing for block volumes: XChaCha20-Poly1305 over every 4 KiB sector a member stores,
 * with the sector's nonce and tag kept right behind its ciphertext. Pure functions and geometry;
 * the member wrapper that applies them is sealed-member.ts, the per-sector versions that catch a
 * replayed older record are seal-versions.ts.
 *
 * On a member, each 4 KiB plaintext sector becomes one 4160-byte record:
 *   ciphertext (4096) ‖ nonce (24) ‖ tag (16) ‖ format (1) ‖ zero (23)
 * and the nonce is   version (8, big-endian) ‖ the sealer's random 16 bytes.
 * The version is the master's write counter for the volume (seal-versions.ts): every sealed sector
 * takes a fresh one, so within one master's lineage no nonce repeats by construction, and the
 * random half keeps nonces apart should two lineages ever count over the same versions. Being part
 * of the nonce, the version is authenticated with the record: a member cannot relabel an old
 * record as new. Records of a stripe unit follow one another, and the unit is padded to a multiple
 * of 512 bytes (extent files need that). A contiguous range of sectors is therefore one contiguous
 * range of records: a piece of a unit stays one member read or write, and data and tag land in the
 * same pwrite. The associated data binds a record to its volume and sector position, so a member
 * cannot move a record to another sector or another volume without the tag failing.
 *
 * The native sealer (sector-aead.ts) seals or opens a whole run in one call where it is built;
 * else one libsodium call per sector, in place: the same records. Neither makes a cipher object
 * or a buffer per sector: Node's createCipheriv paid a fixed cost per call (a context, the AES
 * key schedule, an output buffer) that 4 KiB sectors paid 256 times per MiB.
 */
import { hkdfSync, randomBytes } from 'node:crypto';
import sodium from 'sodium-native';
import { badInput, corrupt } from '../../errors.js';
import { checkSectorAeadWith, sectorAead, type SectorAead } from './sector-aead.js';

export const SECTOR_BYTES = 4096;
export const SEAL_NONCE_BYTES = 24;
export const SEAL_TAG_BYTES = 16;
/** nonce, tag, format byte and zeroes: a record stays 64-byte aligned. */
export const SEAL_TRAILER_BYTES = 64;
export const SEALED_SECTOR_BYTES = SECTOR_BYTES + SEAL_TRAILER_BYTES;
/** The record format byte: 1 was AES-256-GCM with 32-byte trailers (volume format 2). */
export const SEAL_FORMAT = 2;
export const VOLUME_KEY_BYTES = 32;
/** Versions are whole numbers a double holds exactly, written as 8 big-endian bytes. */
export const MAX_SEAL_VERSION = Number.MAX_SAFE_INTEGER;
/** Extent units are multiples of 512 bytes. */
const UNIT_ALIGN = 512;
/** Sectors whose positions a corrupt error lists; the rest are only counted. */
export const MAX_REPORTED_SECTORS = 16;

const VOLUME_KEY_SALT = Buffer.from('tessera/v1/hkdf-salt', 'utf8');
const AAD_BYTES = 16;
const VERSION_BYTES = 8;
const NONCE_RANDOM_BYTES = SEAL_NONCE_BYTES - VERSION_BYTES;
const TAG_AT = SECTOR_BYTES + SEAL_NONCE_BYTES;
const FORMAT_AT = TAG_AT + SEAL_TAG_BYTES;

/**
 * Sealed-record buffers kept for reuse, all sealers together: the write path seals each unit
 * piece into a buffer of its own, and handing every one to the garbage collector (128 MiB of
 * fresh buffers per 128 MiB written) tripled the master's collection time.
 */
export const MAX_POOLED_RECORD_BYTES = 8 << 20;
const spareRecords = new Map<number, Buffer[]>();
let spareRecordBytes = 0;

function takeRecordBuffer(bytes: number): Buffer {
  const b = spareRecords.get(bytes)?.pop();
  if (b === undefined) return Buffer.allocUnsafeSlow(bytes);
  spareRecordBytes -= bytes;
  return b;
}

function giveRecordBuffer(b: Buffer): void {
  if (spareRecordBytes + b.length > MAX_POOLED_RECORD_BYTES) return;
  let list = spareRecords.get(b.length);
  if (list === undefined) { list = []; spareRecords.set(b.length, list); }
  list.push(b);
  spareRecordBytes += b.length;
}

/** What open() returns for a record that fails authentication. */
export const BAD_RECORD = -1;
/**
 * Runs at least this large (plaintext bytes) are sealed and opened by the sealing workers when
 * the volume has them (seal-pool.ts): the master's event loop keeps moving other requests' bytes
 * meanwhile. Smaller ones, a 4 KiB random write's few sectors, stay in line, where the hand-off
 * would cost more than the sealing.
 */
export const SEAL_OFFLOAD_MIN_BYTES = 64 << 10;

/** A sealed run: its records (or their sealing under way) and the version of its first sector. */
export interface SealedRun {
  rec: Buffer | Promise<Buffer>;
  firstVersion: number;
  /** Writers holding `rec` (raid1 mirrors share one run); see SectorSealer.written(). */
  users: number;
  /** `rec` came from the record buffer pool and goes back to it once every writer is done. */
  pooled: boolean;
}

/** An opened run: plaintext at the start of `plain`, and what open() returned per record. */
export interface OpenedRun {
  plain: Buffer;
  versions: Float64Array;
}

/** The fields that rebuild a sealer in a sealing worker. */
export interface SealerSpec {
  key: Uint8Array;
  volumeId: string;
  nonceRandom: Uint8Array;
}

/** A sealer's way to the sealing workers (seal-pool.ts). */
export interface SealLane {
  /** Whether the pool's bounded queue takes another job of `bytes` now; if not, the caller works in line. */
  hasRoom(bytes: number): boolean;
  /** Seals the sectors placed in `rec`'s record slots; `rec` must own its whole ArrayBuffer (it is moved). */
  seal(rec: Buffer, firstSector: number, firstVersion: number, n: number): Promise<Buffer>;
  open(rec: Buffer, firstSector: number, n: number): Promise<OpenedRun>;
}

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

/** The version a sealed record carries in its nonce (0 for a sector never written). */
export function recordVersion(rec: Buffer, at: number): number {
  const n = at + SECTOR_BYTES;
  return rec.readUInt32BE(n) * 2 ** 32 + rec.readUInt32BE(n + 4);
}

export class SectorSealer {
  private readonly aad = Buffer.alloc(AAD_BYTES);
  /** Drawn once per sealer (per open of the volume): the half of each nonce that is not the version. */
  private readonly nonceRandom: Buffer;
  /** Runs sealed in this turn of the event loop, by the plaintext buffer and first sector. */
  private readonly recent = new Map<Buffer, Map<number, SealedRun>>();
  /** Whether runs are kept in `recent` for mirrors to share (see sealRun and mirrored()). */
  private sharing = true;
  /** Where runs of SEAL_OFFLOAD_MIN_BYTES and more are sealed and opened (seal-pool.ts); none: in line. */
  private lane: SealLane | undefined;
  /**
   * The trailer seal() builds for each record (nonce, tag, format byte, zeroes) and copies behind
   * the ciphertext in one call: the nonce and tag views are made once, not per sector.
   */
  private readonly trailer = Buffer.alloc(SEAL_TRAILER_BYTES);
  private readonly trailerNonce: Uint8Array;
  private readonly trailerTag: Uint8Array;
  /** The volume id's 8 bytes, the first half of every sector's associated data. */
  private readonly volumeTag: Buffer;

  /**
   * `volumeId` is the record's 16 hex digits; it goes into every sector's associated data.
   * `nonceRandom` is given only to a copy of a sealer in a sealing worker (see spec()).
   * `aead` seals and opens whole runs natively (sector-aead.ts), giving the records libsodium
   * gives; null keeps every run on libsodium, sector by sector.
   */
  constructor(private readonly key: Buffer, private readonly volumeId: string, nonceRandom?: Uint8Array, private readonly aead: SectorAead | null = sectorAead() ?? null) {
    if (key.length !== VOLUME_KEY_BYTES) throw badInput(`volume key must be ${VOLUME_KEY_BYTES} bytes, got ${key.length}`);
    const tag = Buffer.from(volumeId, 'hex');
    if (tag.length !== 8) throw badInput(`volume id must be 16 hex digits, got '${volumeId}'`);
    tag.copy(this.aad, 0);
    this.volumeTag = tag;
    if (nonceRandom !== undefined && nonceRandom.length !== NONCE_RANDOM_BYTES) throw badInput(`a nonce's random half is ${NONCE_RANDOM_BYTES} bytes, got ${nonceRandom.length}`);
    this.nonceRandom = nonceRandom !== undefined ? Buffer.from(nonceRandom) : randomBytes(NONCE_RANDOM_BYTES);
    this.nonceRandom.copy(this.trailer, VERSION_BYTES);
    this.trailer[FORMAT_AT - SECTOR_BYTES] = SEAL_FORMAT;
    this.trailerNonce = view(this.trailer, 0, SEAL_NONCE_BYTES);
    this.trailerTag = view(this.trailer, TAG_AT - SECTOR_BYTES, SEAL_TAG_BYTES);
  }

  /** What a sealing worker needs to build the same sealer: same key, volume and nonce half. */
  spec(): SealerSpec {
    return { key: new Uint8Array(this.key), volumeId: this.volumeId, nonceRandom: new Uint8Array(this.nonceRandom) };
  }

  /** Seals and opens runs of SEAL_OFFLOAD_MIN_BYTES and more on `lane` from now on. */
  offload(lane: SealLane | undefined): void { this.lane = lane; }

  /**
   * Whether the volume has mirrors that write the same buffer at the same place (raid1, the
   * default). Without them no run is ever shared, and keeping each one for the rest of the turn
   * cost every write two maps and a timer for nothing; every run is then sealed afresh.
   */
  mirrored(on: boolean): void {
    this.sharing = on;
    if (!on) this.recent.clear();
  }

  private aadFor(sector: number): Buffer {
    putU64BE(this.aad, 8, sector);
    return this.aad;
  }

  /**
   * Seals plaintext sector `plain` (SECTOR_BYTES) of member sector index `sector` into `out` at
   * `at`, under `version`, which the caller never hands out twice (seal-versions.ts).
   */
  seal(plain: Uint8Array, sector: number, version: number, out: Buffer, at: number): void {
    if (!Number.isSafeInteger(version) || version <= 0) throw badInput(`seal version must be a positive safe integer, got ${version}`);
    const t = this.trailer;
    putU64BE(t, 0, version);
    sodium.crypto_aead_xchacha20poly1305_ietf_encrypt_detached(
      view(out, at, SECTOR_BYTES), this.trailerTag, plain, this.aadFor(sector), null, this.trailerNonce, this.key,
    );
    out.set(t, at + SECTOR_BYTES);
  }

  /**
   * Seals whole sectors `plain` starting at member sector `firstSector` into one new buffer of
   * records, sector i under version `firstVersion + i`. raid1 writes the same buffer at the same
   * offset to every mirror: records are bound to their position, not to a member, so the mirrors
   * get the records sealed once (identical ciphertext of identical plaintext; no nonce meets two
   * plaintexts) and the versions of that sealing, which the returned firstVersion tells. Only
   * within one turn of the event loop, while the caller cannot have changed the buffer. A run
   * handed to a sealing worker may be sealed again from `plain` should the worker die, so the
   * caller leaves `plain` as it is until `rec` settles (a write in flight does).
   */
  sealRun(plain: Buffer, firstSector: number, firstVersion: () => number): SealedRun {
    const n = plain.length / SECTOR_BYTES;
    if (!Number.isInteger(n)) throw badInput(`a sealed run is whole ${SECTOR_BYTES}-byte sectors, got ${plain.length} bytes`);
    const hit = this.sharing ? this.recent.get(plain)?.get(firstSector) : undefined;
    if (hit !== undefined) {
      hit.users++;
      return hit;
    }
    const v = firstVersion();
    let rec: Buffer | Promise<Buffer>;
    let pooled = false;
    if (plain.length >= SEAL_OFFLOAD_MIN_BYTES && this.lane?.hasRoom(n * SEALED_SECTOR_BYTES) === true) {
      // The worker seals in place: each sector is placed in its record's slot (one copy, into
      // a buffer of its own that is moved to the worker and back, not copied again). The
      // caller's buffer is not lent out, so it may change once this returns.
      const own = spread(plain, Buffer.allocUnsafeSlow(n * SEALED_SECTOR_BYTES));
      // A worker that dies takes `own` with it: the run is sealed again here, under the same
      // versions (the same nonces over the same plaintext give the same records, and the lost
      // ones never reached a member). A write is never left half done across a parity stripe.
      rec = this.lane.seal(own, firstSector, v, n).catch(() => this.sealCopy(plain, firstSector, v, n, Buffer.allocUnsafe(n * SEALED_SECTOR_BYTES)));
    } else {
      rec = this.sealCopy(plain, firstSector, v, n, takeRecordBuffer(n * SEALED_SECTOR_BYTES));
      pooled = true;
    }
    const run: SealedRun = { rec, firstVersion: v, users: 1, pooled };
    if (!this.sharing) return run;
    let bySector = this.recent.get(plain);
    if (bySector === undefined) {
      if (this.recent.size === 0) setImmediate(() => this.recent.clear());
      bySector = new Map();
      this.recent.set(plain, bySector);
    }
    bySector.set(firstSector, run);
    return run;
  }

  /**
   * A writer's member write of `run` completed (call it only then: a write that failed or timed
   * out may still be reading the buffer). When the last writer is done, a pooled buffer is reused.
   */
  written(run: SealedRun): void {
    if (--run.users > 0 || !run.pooled || !(run.rec instanceof Buffer)) return;
    run.pooled = false;
    // A writer arriving later in this turn must seal afresh, not find a buffer already reused.
    for (const bySector of this.recent.values()) for (const [s, r] of bySector) if (r === run) bySector.delete(s);
    giveRecordBuffer(run.rec);
  }

  /**
   * Opens `n` records at the start of `rec` in place and moves each plaintext sector down over
   * the trailers, so `rec[0 .. n * SECTOR_BYTES)` ends up the plaintext. `versions[i]` gets what
   * open() returned for record i. Runs of SEAL_OFFLOAD_MIN_BYTES and more go to the sealing
   * workers when they have room; the result is then another buffer holding the same bytes
   * (`rec` was moved to the worker, or copied there when it shares its memory).
   */
  openRun(rec: Buffer, firstSector: number, n: number): OpenedRun | Promise<OpenedRun> {
    if (n * SECTOR_BYTES >= SEAL_OFFLOAD_MIN_BYTES && this.lane?.hasRoom(rec.length) === true) return this.lane.open(rec, firstSector, n);
    const versions = new Float64Array(n);
    this.openInPlace(rec, firstSector, n, versions);
    return { plain: rec, versions };
  }

  /** Seals whole sectors `plain` into `out` as records, in line. */
  private sealCopy(plain: Buffer, firstSector: number, firstVersion: number, n: number, out: Buffer): Buffer {
    checkVersions(firstVersion, n);
    if (this.aead !== null) {
      this.aead.seal(this.key, this.nonceRandom, this.volumeTag, plain, SECTOR_BYTES, out, firstSector, firstVersion, n);
      return out;
    }
    for (let i = 0; i < n; i++) this.seal(view(plain, i * SECTOR_BYTES, SECTOR_BYTES), firstSector + i, firstVersion + i, out, i * SEALED_SECTOR_BYTES);
    return out;
  }

  /** Seals `n` sectors placed in their record slots of `buf` in place, sector i under `firstVersion + i`. */
  sealInPlace(buf: Buffer, firstSector: number, firstVersion: number, n: number): void {
    checkVersions(firstVersion, n);
    if (this.aead !== null) return this.aead.seal(this.key, this.nonceRandom, this.volumeTag, buf, SEALED_SECTOR_BYTES, buf, firstSector, firstVersion, n);
    for (let i = 0; i < n; i++) this.seal(view(buf, i * SEALED_SECTOR_BYTES, SECTOR_BYTES), firstSector + i, firstVersion + i, buf, i * SEALED_SECTOR_BYTES);
  }

  /** The in-line half of openRun(). */
  openInPlace(rec: Buffer, firstSector: number, n: number, versions: Float64Array): void {
    if (this.aead !== null) return this.aead.open(this.key, this.volumeTag, rec, firstSector, n, versions);
    for (let i = 0; i < n; i++) {
      const at = i * SEALED_SECTOR_BYTES;
      const v = this.open(rec, at, firstSector + i, rec, at);
      versions[i] = v;
      if (v !== BAD_RECORD && i > 0) rec.copyWithin(i * SECTOR_BYTES, at, at + SECTOR_BYTES);
    }
  }

  /**
   * Opens the record at `rec[at..]` into `out` at `outAt`, which may be the record itself
   * (`out === rec && outAt === at`; libsodium decrypts in place). Returns the record's version, 0 for a
   * record of all zeroes (a sector never written, which opens as zeroes), or BAD_RECORD when the
   * record fails authentication. Whether the version is the one expected is the caller's check.
   */
  open(rec: Buffer, at: number, sector: number, out: Buffer, outAt: number): number {
    const trailer = at + SECTOR_BYTES;
    if (rec[at + FORMAT_AT] !== SEAL_FORMAT) {
      if (!isZero(rec, at, at + SEALED_SECTOR_BYTES)) return BAD_RECORD;
      out.fill(0, outAt, outAt + SECTOR_BYTES);
      return 0;
    }
    try {
      sodium.crypto_aead_xchacha20poly1305_ietf_decrypt_detached(
        view(out, outAt, SECTOR_BYTES), null, view(rec, at, SECTOR_BYTES), view(rec, at + TAG_AT, SEAL_TAG_BYTES),
        this.aadFor(sector), view(rec, trailer, SEAL_NONCE_BYTES), this.key,
      );
    } catch {
      return BAD_RECORD;
    }
    const version = recordVersion(rec, at);
    return version > 0 ? version : BAD_RECORD;
  }
}

/** A run's versions are positive safe integers, as seal() checks one by one. */
function checkVersions(first: number, n: number): void {
  if (!Number.isSafeInteger(first) || first <= 0 || !Number.isSafeInteger(first + n)) throw badInput(`seal versions must be positive safe integers, got ${first} for ${n} sector(s)`);
}

/** Sectors the native sealer's check seals and opens: two, so a run's second record counts too. */
const CHECK_SECTORS = 2;

/**
 * Why the native sealer must not be used, or undefined: its records must be libsodium's, byte for
 * byte, and it must open its own and refuse one with a byte flipped. An addon built against a
 * broken or foreign OpenSSL is caught once per thread, here, not on a member's disk.
 */
export function nativeDisagreement(aead: SectorAead): string | undefined {
  const id = '0123456789abcdef';
  const key = Buffer.alloc(VOLUME_KEY_BYTES, 0x5a);
  const nonceRandom = Buffer.alloc(NONCE_RANDOM_BYTES, 0xa5);
  const plain = Buffer.alloc(CHECK_SECTORS * SECTOR_BYTES);
  for (let i = 0; i < plain.length; i++) plain[i] = (i * 31 + 7) & 0xff;
  const bySodium = Buffer.alloc(CHECK_SECTORS * SEALED_SECTOR_BYTES);
  const byAddon = Buffer.alloc(CHECK_SECTORS * SEALED_SECTOR_BYTES);
  new SectorSealer(key, id, nonceRandom, null).sealInPlace(spread(plain, bySodium), 9, 3, CHECK_SECTORS);
  new SectorSealer(key, id, nonceRandom, aead).sealInPlace(spread(plain, byAddon), 9, 3, CHECK_SECTORS);
  if (!byAddon.equals(bySodium)) return 'its records differ from libsodium\'s';
  const versions = new Float64Array(CHECK_SECTORS);
  byAddon[SEALED_SECTOR_BYTES + 100] = (byAddon[SEALED_SECTOR_BYTES + 100] ?? 0) ^ 1;
  aead.open(key, Buffer.from(id, 'hex'), byAddon, 9, CHECK_SECTORS, versions);
  if (versions[0] !== 3 || versions[1] !== BAD_RECORD || !byAddon.subarray(0, SECTOR_BYTES).equals(plain.subarray(0, SECTOR_BYTES))) return 'it does not open its own records, or accepts an altered one';
  return undefined;
}
checkSectorAeadWith(nativeDisagreement);

/** Places each sector of `plain` in its record slot of `rec`, as a sealing worker gets them. */
function spread(plain: Buffer, rec: Buffer): Buffer {
  for (let i = 0; i < plain.length / SECTOR_BYTES; i++) plain.copy(rec, i * SEALED_SECTOR_BYTES, i * SECTOR_BYTES, (i + 1) * SECTOR_BYTES);
  return rec;
}

/** Writes `n` (a safe integer) as 8 big-endian bytes; byte stores, no bounds-checked calls, on the per-sector path. */
function putU64BE(b: Uint8Array, at: number, n: number): void {
  const hi = Math.floor(n / 2 ** 32);
  const lo = n >>> 0;
  b[at] = hi >>> 24; b[at + 1] = (hi >>> 16) & 0xff; b[at + 2] = (hi >>> 8) & 0xff; b[at + 3] = hi & 0xff;
  b[at + 4] = lo >>> 24; b[at + 5] = (lo >>> 16) & 0xff; b[at + 6] = (lo >>> 8) & 0xff; b[at + 7] = lo & 0xff;
}

/** A plain view of `len` bytes of `b` at `at`: about half what Buffer.subarray costs, paid four times per sector. */
function view(b: Uint8Array, at: number, len: number): Uint8Array {
  return new Uint8Array(b.buffer, b.byteOffset + at, len);
}

function isZero(b: Buffer, from: number, to: number): boolean {
  for (let i = from; i < to; i++) if (b[i] !== 0) return false;
  return true;
}

/** The error a member read gets when records fail authentication: altered, torn, rotten or replayed bytes. */
export function sectorsCorrupt(member: string, sectors: number[], count: number) {
  return corrupt(
    `member ${member}: ${count} sector(s) failed authentication (first at member sector ${sectors[0]}); the bytes were altered, torn, rotted or replayed from an older write on the member or the network`,
    { member, sectors: sectors.slice(0, MAX_REPORTED_SECTORS), count },
  );
}
