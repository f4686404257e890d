/** Who may change a volume: record proofs and bounds, and the extent operations each record allows. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { isTesseraError } from '../../../src/errors.js';
import { silentLogger } from '../../../src/log.js';
import { authorityPublicKey } from '../../../src/content/index.js';
import { MAX_VOLUME_VERSION_STEP, VolumeAuthority, type AuthoredVolumeRecord } from '../../../src/block/volume-authority.js';

const NOW = 1_700_000_000_000;
const dataKey = randomBytes(32);
const full = new VolumeAuthority({ dataKey }, 'self', silentLogger, () => NOW);
const storageOnly = new VolumeAuthority({ authorityKey: authorityPublicKey(dataKey) }, 'self', silentLogger, () => NOW);
const auth = (e: unknown) => isTesseraError(e, 'AUTH');

const base: AuthoredVolumeRecord = {
  name: 'v', id: '0123456789abcdef', layout: 'raid1', size: 1 << 20, memberSize: 1 << 20, unitSize: 65536,
  members: ['self', 'other'], version: 3, updatedAt: NOW, updatedBy: 'writer', deleted: false, format: 2, master: 'm1',
};
const EXTENT = 'v.0123456789abcdef';

test('a signed record passes on a storage-only node; any change to it, or no proof, does not', () => {
  const signed = full.sign(base);
  assert.equal(storageOnly.canSign, false);
  assert.throws(() => storageOnly.sign(base), auth);
  storageOnly.checkRecord(signed, undefined, 'peer');
  assert.throws(() => storageOnly.checkRecord({ ...signed, master: 'evil' }, undefined, 'peer'), auth);
  assert.throws(() => storageOnly.checkRecord({ ...signed, members: ['self', 'evil'] }, undefined, 'peer'), auth);
  assert.throws(() => storageOnly.checkRecord({ ...base }, undefined, 'peer'), auth);
  assert.throws(() => storageOnly.checkRecord({ ...base, proof: randomBytes(64) }, undefined, 'peer'), auth);
  assert.throws(() => storageOnly.checkRecord(new VolumeAuthority({ dataKey: randomBytes(32) }, 'x', silentLogger).sign(base), undefined, 'peer'), auth);
  assert.throws(() => new VolumeAuthority({}, 'self', silentLogger).checkRecord(signed, undefined, 'peer'), (e: unknown) => auth(e) && /no authority key/.test((e as Error).message));
});

test('versions may not jump past the step, nor times lie ahead', () => {
  const held = full.sign(base);
  full.checkRecord(full.sign({ ...base, version: base.version + MAX_VOLUME_VERSION_STEP }), held, 'peer');
  assert.throws(() => full.checkRecord(full.sign({ ...base, version: base.version + MAX_VOLUME_VERSION_STEP + 1 }), held, 'peer'), (e: unknown) => auth(e) && /jumps/.test((e as Error).message));
  assert.throws(() => full.checkRecord(full.sign({ ...base, version: MAX_VOLUME_VERSION_STEP + 1 }), undefined, 'peer'), auth);
  assert.throws(() => full.checkRecord(full.sign({ ...base, updatedAt: NOW + 61_000 }), held, 'peer'), (e: unknown) => auth(e) && /future/.test((e as Error).message));
});

test('only the named master writes; create needs a record placing the extent here; delete needs one that does not', () => {
  const a = storageOnly;
  a.checkExtent('write', EXTENT, base, 'm1');
  assert.throws(() => a.checkExtent('write', EXTENT, base, 'other'), (e: unknown) => auth(e) && /only the volume's master/.test((e as Error).message));
  assert.throws(() => a.checkExtent('write', EXTENT, { ...base, master: undefined }, 'm1'), auth);
  assert.throws(() => a.checkExtent('write', EXTENT, undefined, 'm1'), auth);
  assert.throws(() => a.checkExtent('write', 'v.ffffffffffffffff', base, 'm1'), auth, 'another volume id');
  assert.throws(() => a.checkExtent('write', EXTENT, { ...base, members: ['x', 'y'] }, 'm1'), auth, 'not a member');
  a.checkExtent('write', EXTENT, { ...base, members: ['x', 'y'], incoming: 'self' }, 'm1');
  a.checkExtent('create', EXTENT, base, 'm1');
  a.checkExtent('create', EXTENT, base, 'writer');
  assert.throws(() => a.checkExtent('create', EXTENT, base, 'other'), auth);
  assert.throws(() => a.checkExtent('create', EXTENT, { ...base, deleted: true }, 'm1'), auth);
  assert.throws(() => a.checkExtent('delete', EXTENT, base, 'm1'), auth, 'the record still places it here');
  assert.throws(() => a.checkExtent('delete', EXTENT, undefined, 'm1'), auth, 'no record at all');
  a.checkExtent('delete', EXTENT, { ...base, deleted: true }, 'anyone');
  a.checkExtent('delete', EXTENT, { ...base, members: ['x', 'y'] }, 'anyone');
  a.checkExtent('delete', EXTENT, { ...base, id: 'ffffffffffffffff' }, 'anyone');
  assert.ok(a.refused >= 9);
});
