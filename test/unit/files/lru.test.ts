import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ByteLru } from '../../../src/files/lru.js';

test('the cache never holds more bytes than its budget and evicts the least recently used first', () => {
  const lru = new ByteLru(10);
  lru.set('a', Buffer.alloc(4));
  lru.set('b', Buffer.alloc(4));
  assert.ok(lru.get('a'), 'a is now the most recent');
  lru.set('c', Buffer.alloc(4));
  assert.equal(lru.get('b'), undefined, 'b was the least recent');
  assert.ok(lru.get('a') && lru.get('c'));
  assert.ok(lru.bytes <= 10);
  lru.set('huge', Buffer.alloc(11));
  assert.equal(lru.get('huge'), undefined, 'an entry over the whole budget is not kept');
  lru.set('a', Buffer.alloc(6));
  assert.equal(lru.bytes, 10);
  lru.delete('a');
  assert.equal(lru.bytes, 4);
});
