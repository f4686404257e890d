import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Layout, type LayoutKind } from '../../../src/block/volume/layout.js';
import { MemoryMember } from '../../../src/block/volume/memory-member.js';
import {
  BAD_RECORD, deriveVolumeKey, recordVersion, SectorSealer, SECTOR_BYTES, SEALED_SECTOR_BYTES, SEAL_NONCE_BYTES, sealedUnitBytes,
} from '../../../src/block/volume/seal.js';
import { encodeVersions, SealVersions } from '../../../src/block/volume/seal-versions.js';
import { SealedMember } from '../../../src/block/volume/sealed-member.js';
import { MemoryBlobStorage } from '../../../src/block/volume/storage.js';
import { memoryVersionStorage } from './helpers.js';
import { StripedVolume } from '../../../src/block/volume/striped-volume.js';
import { isTesseraError } from '../../../src/errors.js';

const VOLUME_ID = '0123456789abcdef';
const sealer = () => new SectorSealer(deriveVolumeKey(randomBytes(32), VOLUME_ID), VOLUME_ID);

describe('sector sealing', () => {
  it('opens what it sealed, and refuses a flipped byte, a moved record or another volume', () => {
    const s = sealer();
    const plain = randomBytes(SECTOR_BYTES);
    const rec = Buffer.alloc(SEALED_SECTOR_BYTES);
    s.seal(plain, 7, 42, rec, 0);
    assert.equal(rec.subarray(0, SECTOR_BYTES).equals(plain), false);
    const out = Buffer.alloc(SECTOR_BYTES);
    assert.equal(s.open(rec, 0, 7, out, 0), 42, 'opens, and tells the version it was sealed under');
    assert.deepEqual(out, plain);
    assert.equal(s.open(rec, 0, 8, out, 0), BAD_RECORD, 'a record moved to another sector fails');
    // Ciphertext, the version half of the nonce, the random half, the tag, the format byte.
    for (const at of [0, 4095, SECTOR_BYTES + 7, SECTOR_BYTES + 12, SECTOR_BYTES + SEAL_NONCE_BYTES + 5, SECTOR_BYTES + SEAL_NONCE_BYTES + 16]) {
      const bad = Buffer.from(rec);
      bad[at] = (bad[at] as number) ^ 1;
      assert.equal(s.open(bad, 0, 7, out, 0), BAD_RECORD, `flip at ${at}`);
    }
    const other = new SectorSealer(deriveVolumeKey(randomBytes(32), 'fedcba9876543210'), 'fedcba9876543210');
    assert.equal(other.open(rec, 0, 7, out, 0), BAD_RECORD);
    assert.throws(() => s.seal(plain, 7, 0, rec, 0), (e: unknown) => isTesseraError(e, 'BAD_INPUT'), 'version 0 is a sector never written');
  });

  it('reads a never-written record as zeroes, but not zero trailer with data', () => {
    const s = sealer();
    const out = Buffer.alloc(SECTOR_BYTES, 0xaa);
    const rec = Buffer.alloc(SEALED_SECTOR_BYTES);
    assert.equal(s.open(rec, 0, 0, out, 0), 0);
    assert.equal(out.every((b) => b === 0), true);
    rec[10] = 1;
    assert.equal(s.open(rec, 0, 0, out, 0), BAD_RECORD);
  });

  it('puts the version in the nonce beside a random half drawn per sealer', () => {
    const key = deriveVolumeKey(randomBytes(32), VOLUME_ID);
    const a = new SectorSealer(key, VOLUME_ID);
    const b = new SectorSealer(key, VOLUME_ID);
    const plain = randomBytes(SECTOR_BYTES);
    const ra = Buffer.alloc(SEALED_SECTOR_BYTES);
    const rb = Buffer.alloc(SEALED_SECTOR_BYTES);
    a.seal(plain, 1, 2 ** 40 + 5, ra, 0);
    b.seal(plain, 1, 2 ** 40 + 5, rb, 0);
    assert.equal(recordVersion(ra, 0), 2 ** 40 + 5);
    const nonce = (r: Buffer) => r.subarray(SECTOR_BYTES, SECTOR_BYTES + SEAL_NONCE_BYTES);
    assert.equal(nonce(ra).equals(nonce(rb)), false, 'two sealers counting over the same versions still differ');
    assert.equal(ra.subarray(0, SECTOR_BYTES).equals(rb.subarray(0, SECTOR_BYTES)), false);
  });

  it('reuses a run\'s record buffer only after every writer of it is done, and never one a failed write may hold', () => {
    const s = sealer();
    const plain = randomBytes(4 * SECTOR_BYTES);
    let v = 1;
    const take = () => { const x = v; v += 4; return x; };
    const a = s.sealRun(plain, 0, take);
    const mirror = s.sealRun(plain, 0, take);
    assert.equal(mirror, a, 'the mirrors share one sealing');
    const bytes = Buffer.from(a.rec as Buffer);
    s.written(a);
    const other = s.sealRun(randomBytes(4 * SECTOR_BYTES), 8, take);
    assert.notEqual(other.rec, a.rec, 'one mirror still writes the first buffer');
    assert.deepEqual(a.rec, bytes, 'and its bytes are untouched');
    s.written(a);
    const next = s.sealRun(randomBytes(4 * SECTOR_BYTES), 16, take);
    assert.equal(next.rec, a.rec, 'both done: the buffer is reused');
    // `other` is never reported written (its write failed): its buffer is not reused.
    const last = s.sealRun(randomBytes(4 * SECTOR_BYTES), 24, take);
    assert.notEqual(last.rec, other.rec);
    const out = Buffer.alloc(SECTOR_BYTES);
    assert.equal(s.open(next.rec as Buffer, 0, 16, out, 0), next.firstVersion, 'a reused buffer holds its new records whole');
  });

  it('sizes sealed units in whole 512-byte blocks', () => {
    assert.equal(sealedUnitBytes(4096), 4608);
    assert.equal(sealedUnitBytes(64 << 10), 66560);
    assert.equal(sealedUnitBytes(4 << 20), (4 << 20) + (64 << 10));
    assert.throws(() => sealedUnitBytes(1000), (e: unknown) => isTesseraError(e, 'BAD_INPUT'));
  });
});

const UNIT = 16 << 10;
const STRIPES = 6;

/** Sealed members over raw memory members; `state` keeps the versions across a simulated restart. */
async function sealedMembers(n: number, units: number, state = memoryVersionStorage(), raw?: MemoryMember[], s = sealer()) {
  const su = sealedUnitBytes(UNIT);
  raw ??= Array.from({ length: n }, (_, i) => new MemoryMember({ id: `m${i}`, size: units * su, unitSize: su }));
  const versions = await SealVersions.open(state, n, (units * UNIT) / SECTOR_BYTES);
  return { raw, state, versions, sealer: s, sealed: raw.map((m, index) => new SealedMember(m, s, UNIT, units, { table: versions, index })) };
}

describe('SealedMember', () => {
  it('round-trips unaligned reads and writes and stores no plaintext', async () => {
    const { raw, sealed } = await sealedMembers(1, 4);
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
    const { raw, sealed } = await sealedMembers(2, 2);
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

  it('without mirrors, seals each writer of one buffer afresh under versions of its own', async () => {
    const s = sealer();
    s.mirrored(false);
    const { raw, sealed, versions } = await sealedMembers(2, 2, undefined, undefined, s);
    const data = randomBytes(UNIT);
    const before = versions.take(1);
    await Promise.all(sealed.map((m) => m.write(UNIT, data)));
    const unitOf = (m: MemoryMember) => m.raw().subarray(sealedUnitBytes(UNIT), 2 * sealedUnitBytes(UNIT));
    assert.equal(unitOf(raw[0]!).equals(unitOf(raw[1]!)), false, 'two sealings, two sets of nonces');
    assert.equal(versions.take(1), before + 1 + 2 * (UNIT / SECTOR_BYTES), 'each writer took versions for its sectors');
    assert.deepEqual(await sealed[0]!.read(UNIT, UNIT), data);
    assert.deepEqual(await sealed[1]!.read(UNIT, UNIT), data);
  });

  it('rejects a read whose record was altered with CORRUPT naming the sector', async () => {
    const { raw, sealed } = await sealedMembers(1, 2);
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
  const { raw, sealed, versions } = await sealedMembers(n, STRIPES);
  const volume = await StripedVolume.open({ layout, members: sealed });
  const data = randomBytes(layout.size);
  await volume.write(0, data);
  return { layout, raw, volume, data, versions };
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
    const su = sealedUnitBytes(UNIT);
    const raw = Array.from({ length: n }, (_, i) => new TearingMember({ id: `t${i}`, size: STRIPES * su, unitSize: su }));
    const { sealed } = await sealedMembers(n, STRIPES, memoryVersionStorage(), raw);
    const volume = await StripedVolume.open({ layout, members: sealed });
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

/** The records of member sectors [first, first + n) of a raw member, as stored. */
function recordsAt(m: MemoryMember, sector: number, n = 1): { at: number; bytes: Buffer } {
  const perUnit = UNIT / SECTOR_BYTES;
  const at = Math.floor(sector / perUnit) * sealedUnitBytes(UNIT) + (sector % perUnit) * SEALED_SECTOR_BYTES;
  return { at, bytes: Buffer.from(m.raw().subarray(at, at + n * SEALED_SECTOR_BYTES)) };
}

describe('sealed volumes: a member replaying an older record', () => {
  it('a member read of a replayed sector fails with CORRUPT; the sector next to it still reads', async () => {
    const { raw, sealed } = await sealedMembers(1, 2);
    const m = sealed[0]!;
    const first = randomBytes(2 * SECTOR_BYTES);
    await m.write(0, first);
    const old = recordsAt(raw[0]!, 0);
    await m.write(0, randomBytes(SECTOR_BYTES));
    old.bytes.copy(raw[0]!.raw(), old.at);
    await assert.rejects(m.read(0, SECTOR_BYTES), (e: unknown) => isTesseraError(e, 'CORRUPT') && (e.details as { sectors: number[] }).sectors[0] === 0);
    assert.deepEqual(await m.read(SECTOR_BYTES, SECTOR_BYTES), first.subarray(SECTOR_BYTES));
    // A sector written once cannot be put back to "never written" either.
    raw[0]!.raw().fill(0, old.at, old.at + SEALED_SECTOR_BYTES);
    await assert.rejects(m.read(0, SECTOR_BYTES), (e: unknown) => isTesseraError(e, 'CORRUPT'));
  });

  for (const [kind, n] of [['raid1', 2], ['raid5', 4]] as const) {
    it(`${kind}: a replayed unit is served from redundancy and rewritten`, async () => {
      const v = await sealedVolume(kind, n);
      const at = UNIT * 2 + SECTOR_BYTES;
      const e = v.layout.mapRange(at, 1)[0]!;
      const sector = Math.floor(e.memberOffset / SECTOR_BYTES);
      const old = recordsAt(v.raw[e.member]!, sector);
      const next = randomBytes(SECTOR_BYTES);
      await v.volume.write(at, next);
      next.copy(v.data, at);
      old.bytes.copy(v.raw[e.member]!.raw(), old.at);
      for (let i = 0; i < n; i++) assert.deepEqual(await v.volume.read(at, SECTOR_BYTES), next, 'the new bytes, never the replayed ones');
      assert.ok(v.volume.status().repairedUnits >= 1, 'the replayed unit was rewritten');
      assert.equal(recordsAt(v.raw[e.member]!, sector).bytes.equals(old.bytes), false);
      assert.equal((await v.volume.check()).mismatches, 0);
      assert.deepEqual(await v.volume.read(0, v.layout.size), v.data);
    });
  }

  it('raid0: a replayed sector fails the read with CORRUPT', async () => {
    const v = await sealedVolume('raid0', 2);
    const e = v.layout.mapRange(UNIT, 1)[0]!;
    const old = recordsAt(v.raw[e.member]!, e.memberOffset / SECTOR_BYTES);
    await v.volume.write(UNIT, randomBytes(SECTOR_BYTES));
    old.bytes.copy(v.raw[e.member]!.raw(), old.at);
    await assert.rejects(v.volume.read(UNIT, SECTOR_BYTES), (err: unknown) => isTesseraError(err, 'CORRUPT'));
    assert.equal((await v.volume.check()).mismatches, 1);
  });

  it('after a restart, a sector accepts its last flushed write or a later one, never an older one', async () => {
    const first = await sealedMembers(1, 2);
    const m = first.sealed[0]!;
    await m.write(0, Buffer.alloc(SECTOR_BYTES, 1));
    const v1 = recordsAt(first.raw[0]!, 0);
    await m.write(0, Buffer.alloc(SECTOR_BYTES, 2));
    const v2 = recordsAt(first.raw[0]!, 0);
    await m.flush();
    await m.write(0, Buffer.alloc(SECTOR_BYTES, 3));
    const v3 = recordsAt(first.raw[0]!, 0);
    await first.versions.idle();
    // The master stops; the member keeps its bytes and the state keeps the flushed versions.
    const reopen = async (rec: { at: number; bytes: Buffer }) => {
      rec.bytes.copy(first.raw[0]!.raw(), rec.at);
      const again = await sealedMembers(1, 2, first.state, first.raw, first.sealer);
      return again.sealed[0]!.read(0, SECTOR_BYTES);
    };
    await assert.rejects(reopen(v1), (e: unknown) => isTesseraError(e, 'CORRUPT'), 'older than the flushed write');
    assert.deepEqual(await reopen(v2), Buffer.alloc(SECTOR_BYTES, 2), 'the flushed write');
    assert.deepEqual(await reopen(v3), Buffer.alloc(SECTOR_BYTES, 3), 'a later, unflushed write that landed');
  });

  it('hands out versions that grow across restarts, and logs the new range before the first seal', async () => {
    const state = memoryVersionStorage();
    const a = await SealVersions.open(state, 2, 64);
    const va = a.take(10);
    const b = await SealVersions.open(state, 2, 64);
    assert.ok(b.take(1) > va + 9, 'a restart never reuses a version');
    assert.equal(state.log.saves, 2, 'each open compacted the log with its range before handing out any version');
  });

  it('no version past the logged ceiling is handed out while the next range is being logged', async () => {
    const state = memoryVersionStorage();
    const v = await SealVersions.open(state, 1, 64);
    v.take(2 ** 32 - 1);
    assert.equal(v.canTake(2), false);
    const reserving = v.reserve(2);
    assert.equal(v.canTake(2), false, 'the range is not usable before its append is stable');
    await reserving;
    assert.equal(v.canTake(2), true);
    assert.equal(state.log.appends, 1, 'the new ceiling was appended, not compacted');
  });

  it('refuses a damaged version log with CORRUPT, and keeps no table for a volume too large', async () => {
    const state = memoryVersionStorage();
    await SealVersions.open(state, 2, 64);
    const blob = (await state.log.load())!;
    blob[0] = 0;
    await state.log.save(blob);
    await assert.rejects(SealVersions.open(state, 2, 64), (e: unknown) => isTesseraError(e, 'CORRUPT') && /version log/.test((e as Error).message));
    const big = await SealVersions.open(memoryVersionStorage(), 24, 2 ** 40);
    assert.equal(big.tracking, false);
    assert.equal(big.accept(0, 5, 1), true);
    assert.ok(big.take(1) > 0, 'versions (nonces) are still handed out');
  });

  it('tracks a volume of more member space than one state blob could hold (the earlier 18 GiB limit)', () => {
    assert.equal(SealVersions.fits(4, (32 << 30) / SECTOR_BYTES), true, '4 members of 32 GiB');
  });

  it('carries the versions of the earlier whole-table file over into the log and table', async () => {
    const legacy = new MemoryBlobStorage();
    await legacy.save(encodeVersions({ ceiling: 100, members: [[[3, 40]], [[5, 90], [6, 91]]] }));
    const state = { ...memoryVersionStorage(), legacy };
    const v = await SealVersions.open(state, 2, 64);
    assert.equal(v.accept(0, 3, 39), false, 'older than the carried-over version');
    assert.equal(v.accept(1, 6, 91), true);
    assert.equal(state.table.stored(1)?.[5], 90, 'checkpointed into the table');
    assert.ok(v.take(1) > 100);
  });
});
