import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TesseraError } from '../../../src/errors.js';
import { MAX_METHOD_CHARS, checkRequestControl, checkResponseControl } from '../../../src/net/messages.js';

const refused = (pattern: RegExp) => (e: unknown) => {
  assert.ok(e instanceof TesseraError && e.code === 'BAD_INPUT', String(e));
  assert.match(e.message, pattern);
  return true;
};

test('a request control needs a map with a method name of bounded length; the body may be anything', () => {
  assert.deepEqual(checkRequestControl({ m: 'chunk.get', b: { id: 'x' } }), { m: 'chunk.get', b: { id: 'x' } });
  assert.deepEqual(checkRequestControl({ m: 'ping' }), { m: 'ping', b: undefined });
  assert.deepEqual(checkRequestControl({ m: 'x'.repeat(MAX_METHOD_CHARS), b: null, extra: 1 }), { m: 'x'.repeat(MAX_METHOD_CHARS), b: null });
  assert.throws(() => checkRequestControl({ b: 1 }), refused(/at m: expected a method name/));
  assert.throws(() => checkRequestControl({ m: '' }), refused(/at m:/));
  assert.throws(() => checkRequestControl({ m: 'x'.repeat(MAX_METHOD_CHARS + 1) }), refused(/at m:/));
  assert.throws(() => checkRequestControl({ m: 7 }), refused(/at m:/));
  for (const v of [null, undefined, 'chunk.get', 3, ['chunk.get'], new Uint8Array(2)]) {
    assert.throws(() => checkRequestControl(v), refused(/at body: expected a map/), String(v));
  }
});

test('a response control is a map whose body may be anything', () => {
  assert.deepEqual(checkResponseControl({ b: [1, 2] }), { b: [1, 2] });
  assert.deepEqual(checkResponseControl({}), { b: undefined });
  for (const v of [null, 'b', 0, [], new Uint8Array(1)]) assert.throws(() => checkResponseControl(v), refused(/at body: expected a map/));
});
