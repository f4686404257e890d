import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { isTesseraError } from '../../../src/errors.js';
import { LAYOUT_KINDS, type LayoutKind } from '../../../src/block/volume/layout.js';
import { MemoryMember } from '../../../src/block/volume/memory-member.js';
import { IntentLog } from '../../../src/block/volume/intent-log.js';
import { MAX_VOLUME_IO_BYTES, StripedVolume } from '../../../src/block/volume/striped-volume.js';
import { fill, put, rig, STRIPES, UNIT, type Rig } from './helpers.js';

const opArb = (size: number) => fc.record({
  write: fc.boolean(),
  offset: fc.integer({ min: 0, max: size - 1 }),
  length: fc.integer({ min: 1, max: 5 * UNIT }),
  seed: fc.integer({ min: 0, max: 255 }),
});

async function runOps(r: Rig, ops: Array<{ write: boolean; offset: number; length: number; seed: number }>): Promise<void> {
  for (const op of ops) {
    const len = Math.min(op.length, r.layout.size - op.offset);
    if (op.write) {
      const data = Buffer.alloc(len);
      for (let i = 0; i < len; i++) data[i] = (op.seed + i * 7) & 0xff;
      await put(r, op.offset, data);
    } else {
      const got = await r.volume.read(op.offset, len);
      assert.ok(got.equals(r.ref.subarray(op.offset, op.offset + len)), `read ${op.offset}+${len} matches the reference`);
    }
  }
}

const isUnavailable = (e: unknown) => isTesseraError(e, 'UNAVAILABLE');

for (const kind of LAYOUT_KINDS) {
  test(`${kind}: random writes and reads match a plain buffer, and check() is clean`, async () => {
    const size = (await rig(kind)).layout.size;
    await fc.assert(fc.asyncProperty(fc.array(opArb(size), { minLength: 1, maxLength: 25 }), async (ops) => {
      const r = await rig(kind);
      await runOps(r, ops);
      assert.ok((await r.volume.read(0, r.layout.size)).equals(r.ref));
      const c = await r.volume.check();
      assert.equal(c.mismatches, 0);
      assert.equal(c.stripesChecked, STRIPES);
    }), { numRuns: 15 });
  });
}

for (const kind of ['raid1', 'raid5', 'raid6'] as const) {
  const t = kind === 'raid5' ? 1 : 2;
  test(`${kind}: with ${t} member(s) failed, reads and writes still match the reference`, async () => {
    const size = (await rig(kind)).layout.size;
    await fc.assert(fc.asyncProperty(
      fc.uniqueArray(fc.nat(), { minLength: t, maxLength: t }), fc.array(opArb(size), { minLength: 1, maxLength: 20 }),
      async (picks, ops) => {
        const r = await rig(kind);
        await fill(r);
        const failed = [...new Set(picks.map((p) => p % r.layout.members))];
        for (const j of failed) r.members[j]?.fail('error');
        await runOps(r, ops);
        assert.ok((await r.volume.read(0, r.layout.size)).equals(r.ref), 'whole volume reads back');
        const st = r.volume.status();
        assert.equal(st.degraded, true);
        assert.equal(st.failed, false);
      }), { numRuns: 12 });
  });

  test(`${kind}: one failure more than tolerated is UNAVAILABLE, never wrong data`, async () => {
    const r = await rig(kind);
    await fill(r);
    for (let j = 0; j <= t; j++) r.members[j]?.fail('error');
    // Every read either returns the right bytes (a stripe whose data members survive) or fails.
    let failures = 0;
    for (let off = 0; off < r.layout.size; off += UNIT) {
      try {
        const got = await r.volume.read(off, UNIT);
        assert.ok(got.equals(r.ref.subarray(off, off + UNIT)), `read at ${off} is right or refused`);
      } catch (e) {
        assert.ok(isUnavailable(e), `refusal is UNAVAILABLE: ${String(e)}`);
        failures++;
      }
    }
    assert.ok(failures > 0, 'some reads needed the lost members');
    assert.equal(r.volume.status().failed, true);
    await assert.rejects(r.volume.write(0, Buffer.alloc(r.layout.size)), isUnavailable);
  });
}

test('raid0: any member failure is UNAVAILABLE', async () => {
  const r = await rig('raid0');
  await fill(r);
  r.members[1]?.fail('error');
  await assert.rejects(r.volume.read(0, r.layout.size), isUnavailable);
  await assert.rejects(r.volume.write(0, Buffer.alloc(r.layout.size)), isUnavailable);
});

test('a hanging member times out, is marked down, and reads reconstruct', async () => {
  const r = await rig('raid5', { timeoutMs: 50 });
  await fill(r);
  await r.volume.flush();
  r.members[0]?.fail('hang');
  assert.ok((await r.volume.read(0, r.layout.size)).equals(r.ref));
  assert.equal(r.volume.status().members[0]?.state, 'down');
});

for (const kind of ['raid1', 'raid5', 'raid6'] as const) {
  test(`${kind}: resync copies exactly the units written while the member was away`, async () => {
    const r = await rig(kind);
    await fill(r);
    await r.volume.flush();
    const away = 1;
    r.members[away]?.fail('error');
    await r.volume.read(0, UNIT * 2); // noticing the failure is enough, whatever the read touched
    await put(r, 0, randomBytes(100)); // may be the first touch of the down member
    const stripes = new Set<number>([0]);
    for (const s of [3, 5, 9]) {
      const off = s * r.layout.stripeDataBytes + 17;
      await put(r, off, randomBytes(300));
      stripes.add(s);
    }
    const st = r.volume.status();
    assert.equal(st.members[away]?.state, 'down');
    assert.equal(st.members[away]?.dirtyUnits, stripes.size);
    // The dirty set survives a master restart.
    await r.volume.close().catch(() => {});
    const m = r.members[away] as MemoryMember;
    m.fail('none');
    m.resetCounters();
    const v2 = await StripedVolume.open({ layout: r.layout, members: r.members, healthStorage: r.health, intentStorage: r.intents });
    assert.equal(v2.status().members[away]?.dirtyUnits, stripes.size);
    const rep = await v2.resync(away);
    assert.equal(rep.unitsCopied, stripes.size);
    assert.deepEqual([...m.unitsWritten].sort((a, b) => a - b), [...stripes].sort((a, b) => a - b), 'only the dirty units were written');
    assert.equal(v2.status().degraded, false);
    assert.equal((await v2.check()).mismatches, 0);
    assert.ok((await v2.read(0, r.layout.size)).equals(r.ref));
    // The member is really current: with another member gone, its data serves reads.
    r.members[(away + 1) % r.layout.members]?.fail('error');
    assert.ok((await v2.read(0, r.layout.size)).equals(r.ref));
  });

  test(`${kind}: replace rebuilds everything onto a new member`, async () => {
    const r = await rig(kind);
    await fill(r);
    r.members[2]?.fail('error');
    await put(r, 5000, randomBytes(9000));
    const fresh = new MemoryMember({ id: 'new', size: r.layout.memberSize, unitSize: UNIT });
    const rep = await r.volume.replace(2, fresh);
    assert.equal(rep.unitsCopied, STRIPES);
    assert.equal(r.volume.status().degraded, false);
    assert.equal((await r.volume.check()).mismatches, 0);
    r.members[0]?.fail('error');
    assert.ok((await r.volume.read(0, r.layout.size)).equals(r.ref), 'reads served with the new member in use');
  });
}

test('check() finds a flipped parity byte and repair fixes it', async () => {
  const r = await rig('raid6');
  await fill(r);
  const p = r.layout.parityMembers(4)[1] as number;
  const raw = (r.members[p] as MemoryMember).raw();
  raw[4 * UNIT + 10] = (raw[4 * UNIT + 10] as number) ^ 1;
  const c = await r.volume.check();
  assert.equal(c.mismatches, 1);
  assert.deepEqual(c.firstMismatches, [{ stripe: 4, members: [p] }]);
  assert.equal((await r.volume.check({ repair: true })).repaired, 1);
  assert.equal((await r.volume.check()).mismatches, 0);
});

for (const kind of ['raid1', 'raid5', 'raid6'] as const) {
  test(`${kind}: intent log recovery after a crash between data and parity writes`, async () => {
    const r = await rig(kind);
    await fill(r);
    await r.volume.close();
    // Simulate the crash: stripe 6 is marked in flight and one unit got its new bytes, the rest did not.
    const log = await IntentLog.open(r.intents);
    await log.begin(6);
    const j = r.layout.kind === 'raid1' ? 0 : r.layout.dataMember(6, 0);
    const fresh = randomBytes(UNIT);
    fresh.copy((r.members[j] as MemoryMember).raw(), 6 * UNIT);
    fresh.copy(r.ref, 6 * r.layout.stripeDataBytes);
    const noRecover = await StripedVolume.open({ layout: r.layout, members: r.members, healthStorage: r.health, intentStorage: r.intents, recover: false });
    assert.equal((await noRecover.check()).mismatches, 1, 'the torn stripe is inconsistent');
    const v = await StripedVolume.open({ layout: r.layout, members: r.members, healthStorage: r.health, intentStorage: r.intents });
    assert.equal((await v.check()).mismatches, 0);
    assert.ok((await v.read(0, r.layout.size)).equals(r.ref));
    // The log was cleared: a third open has nothing to recover.
    assert.equal((await IntentLog.open(r.intents)).pending.length, 0);
  });
}

for (const kind of ['raid1', 'raid5', 'raid6'] as const) {
  test(`${kind}: overlapping parallel writes to one stripe keep parity consistent`, async () => {
    const r = await rig(kind, { maxDelayMs: 3 });
    await fill(r);
    const base = 2 * r.layout.stripeDataBytes;
    const writes = Array.from({ length: 24 }, (_, i) => ({
      off: base + ((i * 1531) % (r.layout.stripeDataBytes - 3000)),
      data: randomBytes(1000 + ((i * 977) % 2000)),
    }));
    await Promise.all(writes.map((w) => r.volume.write(w.off, w.data)));
    assert.equal((await r.volume.check()).mismatches, 0);
    // Each byte holds the data of one of the writes that covered it.
    const got = await r.volume.read(0, r.layout.size);
    for (let b = base; b < base + r.layout.stripeDataBytes; b += 97) {
      const cands = writes.filter((w) => b >= w.off && b < w.off + w.data.length).map((w) => w.data[b - w.off]);
      if (cands.length === 0) assert.equal(got[b], r.ref[b]);
      else assert.ok(cands.includes(got[b]), `byte ${b} comes from a write`);
    }
    // Degraded reads (through parity) agree with direct reads.
    r.members[r.layout.dataMember(2, 0)]?.fail('error');
    assert.ok((await r.volume.read(0, r.layout.size)).equals(got));
  });
}

test('bounds: oversize and out-of-range requests are refused', async () => {
  const r = await rig('raid5');
  await assert.rejects(r.volume.read(r.layout.size - 1, 2), (e: unknown) => isTesseraError(e, 'BAD_INPUT'));
  await assert.rejects(r.volume.write(-1, Buffer.alloc(1)), (e: unknown) => isTesseraError(e, 'BAD_INPUT'));
  const big = await rig('raid0', { members: 2 });
  assert.ok(big.layout.size < MAX_VOLUME_IO_BYTES + 1);
  await assert.rejects(r.volume.read(0, MAX_VOLUME_IO_BYTES + 1), (e: unknown) => isTesseraError(e, 'BAD_INPUT') || isTesseraError(e, 'TOO_LARGE'));
});

test('writeZeroes zeroes, trim keeps the volume consistent', async () => {
  const r = await rig('raid5');
  await fill(r);
  await r.volume.writeZeroes(1000, 20000);
  r.ref.fill(0, 1000, 21000);
  await r.volume.trim(0, 8192);
  assert.ok((await r.volume.read(1000, 20000)).equals(r.ref.subarray(1000, 21000)));
  assert.equal((await r.volume.check()).mismatches, 0);
});

export type { LayoutKind };
