/** The ledger of bytes peers keep on a node uncommitted: shares, release on commit, retirement on abort, expiry. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isTesseraError } from '../../../src/errors.js';
import { MAX_UNCOMMITTED_UPLOADS_PER_PEER, UncommittedLedger } from '../../../src/files/uncommitted-ledger.js';

const refusedNoSpace = (e: unknown) => isTesseraError(e, 'NO_SPACE');

test('one peer cannot pass its share, and all peers together cannot pass theirs', () => {
  const l = new UncommittedLedger(() => ({ perPeer: 100, allPeers: 250 }));
  l.charge('a', 'u1', 60, 1e9);
  l.charge('a', 'u2', 40, 1e9);
  assert.throws(() => l.charge('a', 'u3', 1, 1e9), refusedNoSpace);
  assert.equal(l.bytes('a'), 100);
  l.charge('b', 'u4', 100, 1e9);
  assert.throws(() => l.charge('c', 'u5', 51, 1e9), (e: unknown) => refusedNoSpace(e) && /all of them/.test((e as Error).message));
  l.charge('c', 'u5', 50, 1e9);
  assert.equal(l.total, 250);
  assert.equal(l.refused, 2);
  // Another peer cannot add to an upload that is not its own.
  assert.throws(() => l.charge('b', 'u1', 1, 1e9), (e: unknown) => isTesseraError(e, 'CONFLICT'));
});

test('a commit releases at once; an abort keeps the bytes charged until the grace period ends', () => {
  const l = new UncommittedLedger(() => ({ perPeer: 100, allPeers: 1000 }));
  l.charge('a', 'u1', 70, 1e9);
  l.release('u1');
  assert.equal(l.bytes('a'), 0);
  l.charge('a', 'u2', 70, 1e9);
  l.retire('u2', 5_000);
  l.expire(4_999);
  assert.throws(() => l.charge('a', 'u3', 40, 1e9), refusedNoSpace, 'aborted bytes still count until deleted');
  l.expire(5_000);
  assert.equal(l.bytes('a'), 0);
  l.charge('a', 'u3', 100, 1e9);
  // A copy that was already here is given back.
  l.refund('u3', 30);
  assert.equal(l.bytes('a'), 70);
});

test('the uploads one peer keeps charged are bounded in count', () => {
  const l = new UncommittedLedger(() => ({ perPeer: Infinity, allPeers: Infinity }));
  for (let i = 0; i < MAX_UNCOMMITTED_UPLOADS_PER_PEER; i++) l.charge('a', `u${i}`, 1, 1e9);
  assert.throws(() => l.charge('a', 'one-more', 1, 1e9), refusedNoSpace);
  l.charge('a', 'u0', 1, 1e9);
  l.charge('b', 'other', 1, 1e9);
  l.release('u1');
  l.charge('a', 'one-more', 1, 1e9);
});
