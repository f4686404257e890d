import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TesseraError } from '../../../src/errors.js';
import { apiUsesTls } from '../../../src/net/api-tls.js';

const refused = (pattern: RegExp) => (e: unknown) => e instanceof TesseraError && e.code === 'BAD_INPUT' && pattern.test(e.message);

test('beyond loopback the API speaks TLS unless plain HTTP is forced; on loopback only when asked', () => {
  assert.equal(apiUsesTls(false, {}), true);
  assert.equal(apiUsesTls(false, { plainHttp: true }), false);
  assert.equal(apiUsesTls(true, {}), false);
  assert.equal(apiUsesTls(true, { tls: true }), true);
  assert.equal(apiUsesTls(true, { certFile: 'c.pem', keyFile: 'k.pem' }), true);
});

test('contradictory or unsafe API settings are refused, naming the flags', () => {
  assert.throws(() => apiUsesTls(true, { certFile: 'c.pem' }), refused(/--api-cert and --api-key go together/));
  assert.throws(() => apiUsesTls(false, { tls: true, plainHttp: true }), refused(/contradicts/));
  assert.throws(() => apiUsesTls(false, { openReads: true, plainHttp: true }), refused(/only allowed when the API listens on loopback/));
});
