import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { AuthoritySigner, AuthorityVerifier, authorityPublicKey, type Statement } from '../../../src/content/authority.js';

const dataKey = randomBytes(32);
const signer = new AuthoritySigner(dataKey);
const rootA = 'a'.repeat(64);
const rootB = 'b'.repeat(64);
const hlc = { wall: 1_700_000_000_000, logical: 3, node: 'node-a' };

test('a storage-only node, given only the public key, checks proofs made from the data key', () => {
  const verifier = new AuthorityVerifier(authorityPublicKey(dataKey));
  const s: Statement = { kind: 'fileRm', root: rootA, at: 1_700_000_000_000 };
  assert.equal(verifier.valid(s, signer.prove(s)), true);
  assert.deepEqual(authorityPublicKey(dataKey), signer.publicKey, 'the key pair is a function of the data key');
});

test('a proof made with another data key is refused', () => {
  const other = new AuthoritySigner(randomBytes(32));
  const s: Statement = { kind: 'fileRm', root: rootA, at: 1 };
  assert.equal(signer.valid(s, other.prove(s)), false);
  assert.equal(signer.valid(s, randomBytes(64)), false);
  assert.equal(signer.valid(s, undefined), false);
  assert.equal(signer.valid(s, signer.prove(s).subarray(0, 63)), false);
});

test('a file removal proof does not transfer to another file or another time', () => {
  const proof = signer.prove({ kind: 'fileRm', root: rootA, at: 100 });
  assert.equal(signer.valid({ kind: 'fileRm', root: rootB, at: 100 }, proof), false, 'replayed for another file');
  assert.equal(signer.valid({ kind: 'fileRm', root: rootA, at: 101 }, proof), false, 're-dated');
});

test('a name proof is bound to the lookup key, the timestamp and the box', () => {
  const key = randomBytes(32);
  const box = randomBytes(80);
  const proof = signer.prove({ kind: 'name', key, hlc, box });
  assert.equal(signer.valid({ kind: 'name', key, hlc, box }, proof), true);
  assert.equal(signer.valid({ kind: 'name', key: randomBytes(32), hlc, box }, proof), false, 'moved to another name');
  assert.equal(signer.valid({ kind: 'name', key, hlc: { ...hlc, wall: hlc.wall + 1 }, box }, proof), false, 're-dated');
  assert.equal(signer.valid({ kind: 'name', key, hlc: { ...hlc, node: 'node-b' }, box }, proof), false, 'timestamp node swapped');
  const swapped = Buffer.from(box);
  swapped[0]! ^= 1;
  assert.equal(signer.valid({ kind: 'name', key, hlc, box: swapped }, proof), false, 'box replaced');
});

test('a drain proof is bound to its target node, its direction and its time', () => {
  const proof = signer.prove({ kind: 'drain', target: 'node-a', on: true, at: 500 });
  assert.equal(signer.valid({ kind: 'drain', target: 'node-a', on: true, at: 500 }, proof), true);
  assert.equal(signer.valid({ kind: 'drain', target: 'node-b', on: true, at: 500 }, proof), false, 'sent to another node');
  assert.equal(signer.valid({ kind: 'drain', target: 'node-a', on: false, at: 500 }, proof), false, 'direction swapped');
  assert.equal(signer.valid({ kind: 'drain', target: 'node-a', on: true, at: 501 }, proof), false, 're-dated');
});

test('a proof for one kind of operation proves nothing for another', () => {
  // Same bytes in the root and target fields: only the label tells them apart.
  const proof = signer.prove({ kind: 'fileRm', root: rootA, at: 7 });
  assert.equal(signer.valid({ kind: 'drain', target: rootA, on: true, at: 7 }, proof), false);
});

test('keys of the wrong size are refused with BAD_INPUT', () => {
  assert.throws(() => new AuthorityVerifier(randomBytes(31)), { code: 'BAD_INPUT' });
  assert.throws(() => new AuthoritySigner(randomBytes(16)), { code: 'BAD_INPUT' });
});
