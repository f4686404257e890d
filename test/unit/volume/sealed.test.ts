import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Layout, type LayoutKind } from '../../../src/block/volume/layout.js';
import { MemoryMember } from '../../../src/block/volume/memory-member.js';
import {
  deriveVolumeKey, NonceSource, SectorSealer, SECTOR_BYTES, SEALED_SECTOR_BYTES, SEAL_NONCE_BYTES, sealedUnitBytes,
} from '../../../src/block/volume/seal.js';
import { SealedMember } from '../../../src/block/volume/sealed-member.js';
import { StripedVolume } from '../../../src/block/volume/striped-volume.js';
import { isTesseraError } from '../../../src/errors.js';

const VOLUME_ID = '0123456789abcdef';
const sealer = () => new SectorSealer(deriveVolumeKey(randomBytes(32), VOLUME_ID), VOLUME_ID);

describe('sector sealing', () => {
  it('opens what it sealed, and refuses a flipped byte, a moved record or another volume', () => {
    const s = sealer();
    const plain = randomBytes(SECTOR_BYTES);
    const rec = Buffer.alloc(SEALED_SECTOR_BYTES);
    s.seal(plain, 7, rec, 0);
    assert.equal(rec.subarray(0, SECTOR_BYTES).equals(plain), false);
    const out = Buffer.alloc(SECTOR_BYTES);
    assert.equal(s.open(rec, 0, 7, out, 0), true);
    assert.deepEqual(out, plain);
    assert.equal(s.open(rec, 0, 8, out, 0), false, 'a record moved to another sector fails');
    for (const at of [0, 4095, SECTOR_BYTES + 3, SECTOR_BYTES + SEAL_NONCE_BYTES + 5]) {
      const bad = Buffer.from(rec);
      bad[at] = (bad[at] as number) ^ 1;
      assert.equal(s.open(bad, 0, 7, out, 0), false, `flip at ${at}`);
    }
    const other = new SectorSealer(deriveVolumeKey(randomBytes(32), 'fedcba9876543210'), 'fedcba9876543210');
    assert.equal(other.open(rec, 0, 7, out, 0), false);
  });

  it('reads a never-written record as zeroes, but not zero trailer with data', () => {
    const s = sealer();
    const out = Buffer.alloc(SECTOR_BYTES, 0xaa);
    const rec = Buffer.alloc(SEALED_SECTOR_BYTES);
    assert.equal(s.open(rec, 0, 0, out, 0), true);
    assert.equal(out.every((b) => b === 0), true);
    rec[10] = 1;
    assert.equal(s.open(rec, 0, 0, out, 0), false);
  });

  it('never repeats a nonce within a source, and two sources differ in their prefix', () => {
    const a = new NonceSource();
    const b = new NonceSource();
    const seen = new Set<string>();
    const buf = Buffer.alloc(SEAL_NONCE_BYTES);
    for (let i = 0; i < 10_000; i++) { a.next(buf, 0); seen.add(buf.toString('hex')); }
    assert.equal(seen.size, 10_000);
    b.next(buf, 0);
    assert.equal(seen.has(buf.toString('hex')), false);
  });

  it('sizes sealed units in whole 512-byte blocks', () => {
    assert.equal(sealedUnitBytes(4096), 4608);
    assert.equal(sealedUnitBytes(64 << 10), 66048);
    assert.equal(sealedUnitBytes(4 << 20), (4 << 20) + (32 << 10));
    assert.throws(() => sealedUnitBytes(1000), (e: unknown) => isTesseraError(e, 'BAD_INPUT'));
  });
});

const UNIT = 16 << 10;
const STRIPES = 6;

function sealedMembers(n: number, units: number): { raw: MemoryMember[]; sealed: SealedMember[] } {
  const s = sealer();
  const su = sealedUnitBytes(UNIT);
  const raw = Array.from({ length: n }, (_, i) => new MemoryMember({ id: `m${i}`, size: units * su, unitSize: su }));
  return { raw, sealed: raw.map((m) => new SealedMember(m, s, UNIT, units)) };
}

describe('SealedMember', () => {
  it('round-trips unaligned reads and writes and stores no plaintext', async () => {
    const { raw, sealed } = sealedMembers(1, 4);
    const m = sealed[0] as SealedMember;
    const ref = Buffer.alloc(m.size);
    const marker = Buffer.from('tessera-plaintext-marker-32bytes');
    for (const [off, len] of [[0, 4096], [100, 5000], [UNIT - 10, 30], [3 * UNIT + 4095, 2]] as const) {
      const data = Buffer.alloc(len);
      for (let i = 0; i < len; i++) data[i] = marker[i % marker.length] as number;
      await m.write(off, data);
      data.copy(ref, off);
    }
    assert.deepEqual(await m.read(0, m.size), ref);
    assert.deepEqual(await m.read(UNIT - 20, 50), ref.subarray(UNIT - 20, UNIT + 30));
    assert.equal((raw[0] as MemoryMember).raw().includes(marker.subarray(0, 16)), false);
  });

  it('seals a buffer written to the same place on two mirrors once, and afresh in a later turn', async () => {
    const { raw, sealed } = sealedMembers(2, 2);
    const data = randomBytes(UNIT);
    await Promise.all(sealed.map((m) => m.write(UNIT, data)));
    const unitOf = (m: MemoryMember) => m.raw().subarray(sealedUnitBytes(UNIT), 2 * sealedUnitBytes(UNIT));
    assert.deepEqual(unitOf(raw[0]!), unitOf(raw[1]!), 'one sealing for both mirrors');
    const first = Buffer.from(unitOf(raw[0]!));
    await new Promise((r) => setImmediate(r));
    await sealed[0]!.write(UNIT, data);
    assert.equal(unitOf(raw[0]!).equals(first), false, 'a rewrite in a later turn takes fresh nonces');
    assert.deepEqual(await sealed[0]!.read(UNIT, UNIT), data);
    assert.deepEqual(await sealed[1]!.read(UNIT, UNIT), data);
  });

  it('rejects a read whose record was altered with CORRUPT naming the sector', async () => {
    const { raw, sealed } = sealedMembers(1, 2);
    const m = sealed[0] as SealedMember;
    await m.write(0, randomBytes(2 * UNIT));
    const bytes = (raw[0] as MemoryMember).raw();
    const at = sealedUnitBytes(UNIT) + SEALED_SECTOR_BYTES + 9;
    bytes[at] = (bytes[at] as number) ^ 0x40;
    await assert.rejects(m.read(UNIT, UNIT), (e: unknown) => isTesseraError(e, 'CORRUPT') && (e.details as { sectors: number[] }).sectors[0] === UNIT / SECTOR_BYTES + 1);
    assert.equal((await m.read(0, UNIT)).length, UNIT, 'other sectors still read');
  });
});

async function sealedVolume(kind: LayoutKind, n: number) {
  const layout = new Layout({ kind, members: n, unitSize: UNIT, memberSize: STRIPES * UNIT });
  const { raw, sealed } = sealedMembers(n, STRIPES);
  const volume = await StripedVolume.open({ layout, members: sealed });
  const data = randomBytes(layout.size);
  await volume.write(0, data);
  return { layout, raw, volume, data };
}

/** Flips one byte of the record holding volume offset `at` on the member that stores it. */
function flip(v: { layout: Layout; raw: MemoryMember[] }, at: number): number {
  const e = v.layout.mapRange(at, 1)[0]!;
  const sector = Math.floor(e.memberOffset / SECTOR_BYTES);
  const inUnit = sector % (UNIT / SECTOR_BYTES);
  const phys = e.stripe * sealedUnitBytes(UNIT) + inUnit * SEALED_SECTOR_BYTES + (e.memberOffset % SECTOR_BYTES);
  const bytes = v.raw[e.member]!.raw();
  bytes[phys] = (bytes[phys] as number) ^ 0x01;
  return e.member;
}

describe('sealed volumes: altered member bytes', () => {
  for (const [kind, n] of [['raid1', 2], ['raid5', 4], ['raid6', 5]] as const) {
    it(`${kind}: serves the right bytes from redundancy and rewrites the bad unit`, async () => {
      const v = await sealedVolume(kind, n);
      const at = UNIT * 3 + 777;
      const member = flip(v, at);
      // raid1 reads round-robin: read enough times that the altered mirror is asked.
      for (let i = 0; i < n; i++) assert.deepEqual(await v.volume.read(at - 100, 8192), v.data.subarray(at - 100, at + 8092));
      assert.ok(v.volume.status().repairedUnits >= 1);
      assert.equal(v.volume.status().members[member]!.state, 'up', 'one bad sector does not take the member down');
      const before = v.volume.status().repairedUnits;
      assert.deepEqual(await v.volume.read(0, v.layout.size), v.data);
      assert.equal(v.volume.status().repairedUnits, before, 'the repair stuck: nothing left to rewrite');
      const c = await v.volume.check();
      assert.equal(c.mismatches, 0);
    });

    it(`${kind}: check finds and, with repair, rebuilds a unit that fails authentication`, async () => {
      const v = await sealedVolume(kind, n);
      const member = flip(v, UNIT * 4 + 5);
      const found = await v.volume.check();
      assert.equal(found.mismatches, 1);
      assert.ok(found.firstMismatches[0]!.members.includes(member));
      const fixed = await v.volume.check({ repair: true });
      assert.equal(fixed.repaired, 1);
      assert.equal((await v.volume.check()).mismatches, 0);
      assert.deepEqual(await v.volume.read(0, v.layout.size), v.data);
    });
  }

  it('raid5: a partial-stripe write over an altered data unit still writes the right parity', async () => {
    const v = await sealedVolume('raid5', 4);
    flip(v, 8192 + 100);
    const patch = randomBytes(4096);
    await v.volume.write(UNIT + 8192, patch);
    patch.copy(v.data, UNIT + 8192);
    assert.equal((await v.volume.check()).mismatches, 0);
    assert.deepEqual(await v.volume.read(0, v.layout.size), v.data);
  });

  it('raid0: a read of altered bytes fails with CORRUPT and never returns wrong data', async () => {
    const v = await sealedVolume('raid0', 3);
    flip(v, UNIT + 10);
    await assert.rejects(v.volume.read(UNIT, 4096), (e: unknown) => isTesseraError(e, 'CORRUPT'));
    assert.deepEqual(await v.volume.read(0, UNIT), v.data.subarray(0, UNIT), 'the rest of the volume reads');
    const c = await v.volume.check({ repair: true });
    assert.equal(c.mismatches, 1, 'check reads raid0 through verification and reports the unit');
    assert.equal(c.repaired, 0);
    assert.equal(c.firstMismatches[0]!.stripe, 0);
    await assert.rejects(v.volume.read(UNIT, 4096), (e: unknown) => isTesseraError(e, 'CORRUPT'), 'nothing to repair it from');
  });
});

/** A member whose writes land in two halves with a pause between: a reader can see a record half written. */
class TearingMember extends MemoryMember {
  override async write(offset: number, data: Buffer, opts = {}): Promise<void> {
    const half = Math.floor(data.length / 2);
    await super.write(offset, data.subarray(0, half), opts);
    await new Promise((r) => setTimeout(r, 5));
    await super.write(offset + half, data.subarray(half), opts);
  }
}

describe('sealed volumes: concurrent access', () => {
  async function tearing(kind: LayoutKind, n: number) {
    const layout = new Layout({ kind, members: n, unitSize: UNIT, memberSize: STRIPES * UNIT });
    const s = sealer();
    const su = sealedUnitBytes(UNIT);
    const raw = Array.from({ length: n }, (_, i) => new TearingMember({ id: `t${i}`, size: STRIPES * su, unitSize: su }));
    const volume = await StripedVolume.open({ layout, members: raw.map((m) => new SealedMember(m, s, UNIT, STRIPES)) });
    return { layout, volume };
  }

  for (const [kind, n] of [['raid0', 2], ['raid1', 2], ['raid5', 3]] as const) {
    it(`${kind}: a read beside a write of the same sector gets old or new bytes, never an error or a repair`, async () => {
      const { volume } = await tearing(kind, n);
      const old = randomBytes(SECTOR_BYTES);
      await volume.write(UNIT + SECTOR_BYTES, old);
      let prev = old;
      for (let i = 0; i < 5; i++) {
        const next = randomBytes(SECTOR_BYTES);
        const w = volume.write(UNIT + SECTOR_BYTES, next);
        await new Promise((r) => setTimeout(r, 1));
        const got = await volume.read(UNIT + SECTOR_BYTES, SECTOR_BYTES);
        assert.ok(got.equals(next) || got.equals(prev), 'old or new bytes');
        prev = next;
        await w;
        assert.deepEqual(await volume.read(UNIT + SECTOR_BYTES, SECTOR_BYTES), next);
      }
      assert.equal(volume.status().repairedUnits, 0, 'nothing was taken for corruption');
    });
  }

  it('raid0: two writes into different halves of one sector both land', async () => {
    const { volume } = await tearing('raid0', 2);
    const a = Buffer.alloc(512, 0xaa);
    const b = Buffer.alloc(512, 0xbb);
    await Promise.all([volume.write(UNIT, a), volume.write(UNIT + 2048, b)]);
    const got = await volume.read(UNIT, SECTOR_BYTES);
    assert.deepEqual(got.subarray(0, 512), a);
    assert.deepEqual(got.subarray(2048, 2560), b);
  });
});

describe('exact volume sizes', () => {
  it('raid5 over 4 members exports exactly the size asked, not a whole stripe more', () => {
    const size = 512 << 20;
    const unit = 64 << 10;
    const stripeData = 3 * unit;
    const l = new Layout({ kind: 'raid5', members: 4, unitSize: unit, memberSize: Math.ceil(size / stripeData) * unit, size });
    assert.equal(l.size, size);
    assert.deepEqual(l.mapRange(size - 1, 1).length, 1);
    assert.throws(() => l.mapRange(size, 1), (e: unknown) => isTesseraError(e, 'BAD_INPUT'));
    assert.throws(() => new Layout({ kind: 'raid5', members: 4, unitSize: unit, memberSize: Math.ceil(size / stripeData) * unit + unit, size }), (e: unknown) => isTesseraError(e, 'BAD_INPUT'));
  });
});
