/**
 * The native sector sealer (native/sector-aead) against libsodium: the same records byte for
 * byte, each opening the other's, and both refusing altered, moved and foreign records. Where the
 * addon is not built these tests are skipped, said as such; CI (.ci/run) fails when it is not
 * built there.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  BAD_RECORD, deriveVolumeKey, nativeDisagreement, SectorSealer, SECTOR_BYTES, SEALED_SECTOR_BYTES, SEAL_NONCE_BYTES, SEAL_TAG_BYTES, sealedUnitBytes,
} from '../../../src/block/volume/seal.js';
import { NATIVE_SEAL_ENV, sectorAead, sectorAeadStatus, type SectorAead } from '../../../src/block/volume/sector-aead.js';
import { SealVersions } from '../../../src/block/volume/seal-versions.js';
import { SealedMember } from '../../../src/block/volume/sealed-member.js';
import { MemoryMember } from '../../../src/block/volume/memory-member.js';
import { memoryVersionStorage } from './helpers.js';

const VOLUME_ID = '0123456789abcdef';
const aead = sectorAead();
const needsAddon = aead === undefined ? `the native sealer is not in use here: ${sectorAeadStatus().detail}` : false;

/** A libsodium sealer and a native one over one key, volume and nonce half. */
function pair(native: SectorAead) {
  const key = deriveVolumeKey(randomBytes(32), VOLUME_ID);
  const nonceRandom = randomBytes(16);
  return { sodium: new SectorSealer(key, VOLUME_ID, nonceRandom, null), native: new SectorSealer(key, VOLUME_ID, nonceRandom, native) };
}

/** Records of `n` sectors of `plain`, sealed by `s` from packed plaintext (as a write in line does). */
function sealPacked(s: SectorSealer, plain: Buffer, firstSector: number, firstVersion: number): Buffer {
  s.mirrored(false);
  return Buffer.from(s.sealRun(plain, firstSector, () => firstVersion).rec as Buffer);
}

/** The same, from sectors placed in their record slots (as a sealing worker does). */
function sealSlots(s: SectorSealer, plain: Buffer, firstSector: number, firstVersion: number): Buffer {
  const n = plain.length / SECTOR_BYTES;
  const rec = Buffer.alloc(n * SEALED_SECTOR_BYTES, 0xee);
  for (let i = 0; i < n; i++) plain.copy(rec, i * SEALED_SECTOR_BYTES, i * SECTOR_BYTES, (i + 1) * SECTOR_BYTES);
  s.sealInPlace(rec, firstSector, firstVersion, n);
  return rec;
}

function openAll(s: SectorSealer, rec: Buffer, firstSector: number): { plain: Buffer; versions: number[] } {
  const n = rec.length / SEALED_SECTOR_BYTES;
  const copy = Buffer.from(rec);
  const versions = new Float64Array(n);
  s.openInPlace(copy, firstSector, n, versions);
  return { plain: copy.subarray(0, n * SECTOR_BYTES), versions: [...versions] };
}

describe('native sector sealer', () => {
  it('seals the same records as libsodium, packed or in place, and each opens the other\'s', { skip: needsAddon }, () => {
    const { sodium, native } = pair(aead as SectorAead);
    for (const [n, sector, version] of [[1, 0, 1], [3, 77, 2 ** 32 + 9], [16, 2 ** 40, 2 ** 52]] as const) {
      const plain = randomBytes(n * SECTOR_BYTES);
      const bySodium = sealPacked(sodium, plain, sector, version);
      assert.deepEqual(sealPacked(native, plain, sector, version), bySodium, `${n} sector(s) from packed plaintext`);
      assert.deepEqual(sealSlots(native, plain, sector, version), bySodium, `${n} sector(s) sealed in place`);
      assert.deepEqual(sealSlots(sodium, plain, sector, version), bySodium);
      const want = Array.from({ length: n }, (_, i) => version + i);
      for (const [opener, name] of [[native, 'native'], [sodium, 'libsodium']] as const) {
        const opened = openAll(opener, bySodium, sector);
        assert.deepEqual(opened.versions, want, `${name} opens, telling each record's version`);
        assert.deepEqual(opened.plain, plain);
      }
    }
  });

  it('refuses an altered, moved or foreign record as libsodium does, and opens a never-written one as zeroes', { skip: needsAddon }, () => {
    const { sodium, native } = pair(aead as SectorAead);
    const plain = randomBytes(4 * SECTOR_BYTES);
    const rec = sealPacked(sodium, plain, 10, 500);
    // Record 1 altered in its ciphertext, version, random nonce half, tag and format byte; record 2 zeroed whole.
    const tagAt = SECTOR_BYTES + SEAL_NONCE_BYTES;
    for (const at of [0, 4095, SECTOR_BYTES + 7, SECTOR_BYTES + 12, tagAt + 3, tagAt + SEAL_TAG_BYTES]) {
      const bad = Buffer.from(rec);
      bad[SEALED_SECTOR_BYTES + at] = (bad[SEALED_SECTOR_BYTES + at] as number) ^ 1;
      bad.fill(0, 2 * SEALED_SECTOR_BYTES, 3 * SEALED_SECTOR_BYTES);
      const fromNative = openAll(native, bad, 10);
      assert.deepEqual(fromNative.versions, [500, BAD_RECORD, 0, 503], `flip at ${at}`);
      assert.deepEqual(openAll(sodium, bad, 10).versions, fromNative.versions, 'libsodium agrees');
      assert.deepEqual(fromNative.plain.subarray(0, SECTOR_BYTES), plain.subarray(0, SECTOR_BYTES));
      assert.equal(fromNative.plain.subarray(SECTOR_BYTES, 3 * SECTOR_BYTES).every((b) => b === 0), true, 'no unauthenticated bytes are left where the bad sector was, and the unwritten one is zeroes');
      assert.deepEqual(fromNative.plain.subarray(3 * SECTOR_BYTES), plain.subarray(3 * SECTOR_BYTES));
    }
    assert.deepEqual(openAll(native, rec, 11).versions, [BAD_RECORD, BAD_RECORD, BAD_RECORD, BAD_RECORD], 'records moved by one sector');
    const other = new SectorSealer(deriveVolumeKey(randomBytes(32), 'fedcba9876543210'), 'fedcba9876543210', undefined, aead as SectorAead);
    assert.deepEqual(openAll(other, rec, 10).versions, [BAD_RECORD, BAD_RECORD, BAD_RECORD, BAD_RECORD], 'another volume');
  });

  it('checks its arguments instead of reading or writing past a buffer', { skip: needsAddon }, () => {
    const a = aead as SectorAead;
    const key = randomBytes(32);
    const tag = Buffer.from(VOLUME_ID, 'hex');
    const rnd = randomBytes(16);
    const plain = randomBytes(2 * SECTOR_BYTES);
    const out = Buffer.alloc(2 * SEALED_SECTOR_BYTES);
    assert.throws(() => a.seal(key.subarray(1), rnd, tag, plain, SECTOR_BYTES, out, 0, 1, 2), TypeError);
    assert.throws(() => a.seal(key, rnd, tag, plain, SECTOR_BYTES, out.subarray(1), 0, 1, 2), TypeError, 'records too short');
    assert.throws(() => a.seal(key, rnd, tag, plain.subarray(1), SECTOR_BYTES, out, 0, 1, 2), TypeError, 'plaintext too short');
    assert.throws(() => a.seal(key, rnd, tag, plain, 100, out, 0, 1, 2), TypeError, 'a stride that is neither packed nor in place');
    assert.throws(() => a.seal(key, rnd, tag, plain, SECTOR_BYTES, out, 0, 0, 2), TypeError, 'version 0 is a sector never written');
    assert.throws(() => a.seal(key, rnd, tag, plain, SECTOR_BYTES, out, 0, 2 ** 53, 2), TypeError, 'versions past 2^53');
    assert.throws(() => a.seal(key, rnd, tag, out.subarray(10), SEALED_SECTOR_BYTES, out, 0, 1, 1), TypeError, 'plaintext overlapping its record other than in place');
    assert.throws(() => a.open(key, tag, out, 0, 3, new Float64Array(3)), TypeError, 'records too short');
    assert.throws(() => a.open(key, tag, out, 0, 2, new Float64Array(1)), TypeError, 'versions too short');
    assert.throws(() => a.open(key, tag, out, 0, 2, new Uint8Array(16) as unknown as Float64Array), TypeError);
  });

  it('a sealed member round-trips through either sealer, records of one read by the other', { skip: needsAddon }, async () => {
    const UNIT = 16 << 10;
    const units = 4;
    const su = sealedUnitBytes(UNIT);
    const raw = new MemoryMember({ id: 'm0', size: units * su, unitSize: su });
    const { sodium, native } = pair(aead as SectorAead);
    const versions = await SealVersions.open(memoryVersionStorage(), 1, (units * UNIT) / SECTOR_BYTES);
    const bySodium = new SealedMember(raw, sodium, UNIT, units, { table: versions, index: 0 });
    const byNative = new SealedMember(raw, native, UNIT, units, { table: versions, index: 0 });
    const ref = randomBytes(units * UNIT);
    await bySodium.write(0, ref.subarray(0, 2 * UNIT));
    await byNative.write(2 * UNIT, ref.subarray(2 * UNIT));
    await byNative.write(5000, ref.subarray(5000, 9000));
    assert.deepEqual(await byNative.read(0, ref.length), ref);
    assert.deepEqual(await bySodium.read(0, ref.length), ref);
  });
});

describe('native sealer loading', () => {
  it('is refused when it disagrees with libsodium or accepts an altered record', () => {
    const sodiumOnly = { seal: () => undefined, open: () => undefined } satisfies SectorAead;
    assert.match(nativeDisagreement(sodiumOnly) ?? '', /differ from libsodium/);
    const lenient: SectorAead = {
      seal: (k, r, t, src, stride, out, first, version, n) => new SectorSealer(Buffer.from(k), VOLUME_ID, r, null).sealInPlace(spread(src, stride, out, n), first, version, n),
      open: (_k, _t, _rec, _first, n, versions) => versions.fill(3, 0, n),
    };
    assert.match(nativeDisagreement(lenient) ?? '', /accepts an altered one/);
    if (aead !== undefined) assert.equal(nativeDisagreement(aead), undefined);
  });

  it(`${NATIVE_SEAL_ENV}=off keeps sealing with libsodium, and a bad value is refused`, () => {
    // sector-aead.js beside the built test, sector-aead.ts (tsx resolves the .js name) beside the source.
    const probe = fileURLToPath(new URL('../../../src/block/volume/sector-aead.js', import.meta.url));
    const run = (value: string) => execFileSync(process.execPath, ['--import', 'tsx', '-e', `import(${JSON.stringify(probe)}).then((m) => { try { console.log(JSON.stringify(m.sectorAeadStatus())); } catch (e) { console.log(JSON.stringify({ error: e.message })); } })`], {
      encoding: 'utf8', env: { ...process.env, [NATIVE_SEAL_ENV]: value }, timeout: 60_000,
    });
    assert.deepEqual(JSON.parse(run('off')), { native: false, detail: `${NATIVE_SEAL_ENV}=off` });
    assert.match(JSON.parse(run('maybe')).error ?? '', /must be 'on' or 'off'/);
  });

  it('refuses a run whose versions are not positive safe integers, whichever sealer seals it', () => {
    const key = deriveVolumeKey(randomBytes(32), VOLUME_ID);
    const sealers = [new SectorSealer(key, VOLUME_ID, undefined, null), ...(aead !== undefined ? [new SectorSealer(key, VOLUME_ID, undefined, aead)] : [])];
    for (const s of sealers) {
      const rec = Buffer.alloc(2 * SEALED_SECTOR_BYTES, 0x11);
      const before = Buffer.from(rec);
      for (const [first, n] of [[0, 2], [-1, 1], [1.5, 1], [2 ** 53 - 1, 2]] as const) {
        assert.throws(() => s.sealInPlace(rec, 0, first, n), (e: Error & { code?: string }) => e.code === 'BAD_INPUT' && /positive safe integers/.test(e.message), `version ${first} for ${n}`);
      }
      assert.ok(rec.equals(before), 'nothing is sealed when the versions are refused');
    }
  });

  it('npm install goes on without the native sealer, saying why in one line', () => {
    // The repository's scripts/, above this test whether it runs from test/ or from dist/test/.
    let root = dirname(fileURLToPath(import.meta.url));
    while (!existsSync(join(root, 'scripts', 'build-native.mjs')) && dirname(root) !== root) root = dirname(root);
    const script = join(root, 'scripts', 'build-native.mjs');
    const out = execFileSync(process.execPath, [script], { encoding: 'utf8', env: { ...process.env, [NATIVE_SEAL_ENV]: 'off', TESSERA_LMDB_BOUNDED: 'off' }, timeout: 60_000 });
    assert.equal(out.split('\n')[0], `native sector sealer not built (${NATIVE_SEAL_ENV}=off); block volumes seal with libsodium`);
  });
});

/** Places `n` sectors of `src` (packed, or already in place) in their record slots of `out`. */
function spread(src: Uint8Array, stride: number, out: Uint8Array, n: number): Buffer {
  const o = Buffer.from(out.buffer, out.byteOffset, out.byteLength);
  if (stride === SECTOR_BYTES) for (let i = 0; i < n; i++) o.set(src.subarray(i * SECTOR_BYTES, (i + 1) * SECTOR_BYTES), i * SEALED_SECTOR_BYTES);
  return o;
}
