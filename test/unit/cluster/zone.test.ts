import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkZone, defaultZone, zoneLossTolerance } from '../../../src/cluster/zone.js';
import { isTesseraError } from '../../../src/errors.js';

test('replicas: a chunk survives losing one zone fewer than the zones its copies are in', () => {
  assert.equal(zoneLossTolerance([['a'], ['b'], ['c']], 1), 2);
  assert.equal(zoneLossTolerance([['a'], ['a'], ['b']], 1), 1);
  assert.equal(zoneLossTolerance([['a'], ['a'], ['a']], 1), 0);
  assert.equal(zoneLossTolerance([], 1), -1);
});

test('k+m: 4+2 with two shards in each of three zones survives one zone, not two', () => {
  const pieces = [['a'], ['a'], ['b'], ['b'], ['c'], ['c']];
  assert.equal(zoneLossTolerance(pieces, 4), 1);
  // Three shards in one zone: losing it leaves 3 < 4.
  assert.equal(zoneLossTolerance([['a'], ['a'], ['a'], ['b'], ['b'], ['c']], 4), 0);
  // Fewer than k shards present: unreadable already.
  assert.equal(zoneLossTolerance([['a'], ['b'], ['c'], [], [], []], 4), -1);
  // A shard held in two zones survives either.
  assert.equal(zoneLossTolerance([['a', 'b'], ['a'], ['b'], ['c'], ['c'], ['d']], 4), 1);
});

test('default zone is the host name made printable; bad zones are refused by name', () => {
  assert.equal(defaultZone('rack 7'), 'rack-7');
  assert.equal(defaultZone(''), 'default');
  assert.equal(defaultZone('x'.repeat(100)).length, 64);
  assert.equal(checkZone('rack1'), 'rack1');
  for (const bad of ['', 'two words', 'z'.repeat(65), 'é']) {
    assert.throws(() => checkZone(bad), (e) => isTesseraError(e, 'BAD_INPUT') && /--zone/.test(e.message));
  }
});

test('a peer record with a zone is read back; a malformed zone is refused naming the field', async () => {
  const { readSync } = await import('../../../src/cluster/membership-wire.js');
  const rec = { nodeId: 'n1', addr: 'h:1', state: 'alive', incarnation: 1, capacity: 0, used: 0, statsVersion: 1 };
  assert.equal(readSync({ from: { ...rec, zone: 'rack1' }, members: [] }, 'sync').from.zone, 'rack1');
  assert.equal(readSync({ from: rec, members: [] }, 'sync').from.zone, undefined);
  for (const zone of ['', 'a b', 'z'.repeat(65), 7]) {
    assert.throws(() => readSync({ from: { ...rec, zone }, members: [] }, 'sync'), (e) => isTesseraError(e, 'BAD_INPUT') && /from\.zone/.test(e.message));
  }
});
