import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Layout } from '../../../src/block/volume/layout.js';
import { MemoryMember } from '../../../src/block/volume/memory-member.js';
import { deriveVolumeKey, SectorSealer, SECTOR_BYTES, sealedUnitBytes } from '../../../src/block/volume/seal.js';
import { SealVersions } from '../../../src/block/volume/seal-versions.js';
import { SealedMember } from '../../../src/block/volume/sealed-member.js';
import { memoryVersionStorage } from './helpers.js';
import { sectorClusters, StripedVolume } from '../../../src/block/volume/striped-volume.js';

const S = SECTOR_BYTES;

describe('parity windows', () => {
  it('groups pieces by the sectors they touch, keeping their order within a group', () => {
    const p = (name: string, unitOffset: number, length: number) => ({ name, unitOffset, length });
    const pieces = [p('a', 5 * S, S), p('b', 0, 100), p('c', 100, 10), p('d', 6 * S, 1), p('e', 20 * S + 7, 2 * S), p('f', S - 1, 2)];
    assert.deepEqual(sectorClusters(pieces).map((c) => c.map((x) => x.name)), [['b', 'c', 'f'], ['a', 'd'], ['e']]);
    assert.deepEqual(sectorClusters([p('x', 3 * S, S), p('y', 3 * S, 10)]).map((c) => c.map((x) => x.name)), [['x', 'y']], 'overlapping pieces stay in arrival order');
  });

  it('seals and opens only the sectors a gathered raid5 group touches, not the columns between them', async () => {
    const UNIT = 64 << 10;
    const STRIPES = 4;
    const n = 4;
    const layout = new Layout({ kind: 'raid5', members: n, unitSize: UNIT, memberSize: STRIPES * UNIT });
    const su = sealedUnitBytes(UNIT);
    const raw = Array.from({ length: n }, (_, i) => new MemoryMember({ id: `m${i}`, size: STRIPES * su, unitSize: su }));
    const versions = await SealVersions.open(memoryVersionStorage(), n, (STRIPES * UNIT) / S);
    const id = '0123456789abcdef';
    // libsodium's sealer (no native one) calls seal() and open() once per sector: they are counted.
    const sealer = new SectorSealer(deriveVolumeKey(randomBytes(32), id), id, undefined, null);
    const v = await StripedVolume.open({ layout, members: raw.map((m, index) => new SealedMember(m, sealer, UNIT, STRIPES, { table: versions, index })) });
    const ref = randomBytes(layout.size);
    await v.write(0, ref);
    let seals = 0;
    let opens = 0;
    const seal = sealer.seal.bind(sealer);
    const open = sealer.open.bind(sealer);
    sealer.seal = (...a) => { seals++; return seal(...a); };
    sealer.open = (...a) => { opens++; return open(...a); };
    // Four 4 KiB writes into one stripe, in one turn, far apart in the unit: one gathered group.
    const offsets = [0, 5 * S, 9 * S, 15 * S].map((o, i) => (i % layout.dataUnits) * UNIT + o);
    const writes = offsets.map((o) => { const d = randomBytes(S); d.copy(ref, o); return v.write(o, d); });
    await Promise.all(writes);
    // Each write: its data sector and one parity sector sealed, the other data units' sector opened.
    assert.equal(seals, 2 * offsets.length);
    assert.equal(opens, (layout.dataUnits - 1) * offsets.length);
    assert.deepEqual(await v.read(0, layout.size), ref);
    assert.equal((await v.check()).mismatches, 0);
  });
});
