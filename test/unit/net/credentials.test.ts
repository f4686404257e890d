import { test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate, createHash } from 'node:crypto';
import { TesseraError } from '../../../src/errors.js';
import {
  generateCredentials,
  loadCredentials,
  nodeIdFromCertificate,
  nodeIdFromPublicKey,
  serializeCredentials,
} from '../../../src/net/credentials.js';

test('node id is the first 20 bytes of SHA-256 of the raw key, in hex', async () => {
  const c = await generateCredentials();
  assert.equal(c.publicKey.length, 32);
  assert.equal(c.nodeId, createHash('sha256').update(c.publicKey).digest('hex').slice(0, 40));
  assert.equal(nodeIdFromPublicKey(c.publicKey), c.nodeId);
  assert.match(c.nodeId, /^[0-9a-f]{40}$/);
});

test('the certificate is self-signed Ed25519 and yields the same node id', async () => {
  const c = await generateCredentials();
  const cert = new X509Certificate(c.certificatePem);
  assert.equal(cert.publicKey.asymmetricKeyType, 'ed25519');
  assert.ok(cert.verify(cert.publicKey));
  assert.equal(nodeIdFromCertificate(cert), c.nodeId);
  assert.equal(nodeIdFromCertificate(c.certificatePem), c.nodeId);
});

test('credentials survive serialization and reject mismatched parts', async () => {
  const a = await generateCredentials();
  const b = await generateCredentials();
  const back = loadCredentials(JSON.parse(JSON.stringify(serializeCredentials(a))));
  assert.deepEqual(back, a);
  const mixed = { ...serializeCredentials(a), certificatePem: b.certificatePem };
  assert.throws(() => loadCredentials(mixed), (e: unknown) => e instanceof TesseraError && e.code === 'BAD_INPUT' && /does not match/.test(e.message));
  const wrongId = { ...serializeCredentials(a), nodeId: b.nodeId };
  assert.throws(() => loadCredentials(wrongId), (e: unknown) => e instanceof TesseraError && /recorded node id/.test(e.message));
  assert.throws(() => loadCredentials({ version: 1 }), (e: unknown) => e instanceof TesseraError && e.code === 'BAD_INPUT');
});

test('a non-Ed25519 or garbage certificate is AUTH', () => {
  assert.throws(() => nodeIdFromCertificate('not a cert'), (e: unknown) => e instanceof TesseraError && e.code === 'AUTH');
  assert.throws(() => nodeIdFromPublicKey(Buffer.alloc(31)), (e: unknown) => e instanceof TesseraError && e.code === 'BAD_INPUT');
});
