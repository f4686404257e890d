import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KEY_CACHE_TTL_MS, KeyCache, MAX_CACHED_KEYS, principalMay, principalOf, type StoredKey } from '../../../src/s3/principal.js';

const key = (id: string, buckets: StoredKey['buckets'] = null): StoredKey => ({ accessKeyId: id, name: '', secretKey: 's', buckets });

test('a scoped key may do what it was given on its buckets only; owner implies read and write; unscoped reaches all', () => {
  const p = principalOf(key('A', { photos: ['read'], logs: ['owner'] }));
  assert.equal(principalMay(p, 'photos', 'read'), true);
  assert.equal(principalMay(p, 'photos', 'write'), false);
  assert.equal(principalMay(p, 'logs', 'write'), true);
  assert.equal(principalMay(p, 'logs', 'read'), true);
  assert.equal(principalMay(p, 'other', 'read'), false);
  assert.equal(principalMay(principalOf(key('B')), 'anything', 'owner'), true);
});

test('key cache: a hit within the TTL costs no lookup, a removed key stops working after it, unknown ids are never cached, size bounded', async () => {
  let now = 0;
  const store = new Map<string, StoredKey>([['A', key('A')]]);
  let loads = 0;
  const cache = new KeyCache(async (id) => {
    loads++;
    return store.get(id) ?? null;
  }, () => now);
  assert.equal((await cache.get('A'))?.accessKeyId, 'A');
  await cache.get('A');
  assert.equal(loads, 1);
  store.delete('A');
  now += KEY_CACHE_TTL_MS - 1;
  assert.ok(await cache.get('A'), 'still cached within the TTL');
  now += 2;
  assert.equal(await cache.get('A'), null, 'gone once the TTL passed');
  loads = 0;
  await cache.get('nope');
  await cache.get('nope');
  assert.equal(loads, 2, 'unknown ids are looked up every time');
  for (let i = 0; i < MAX_CACHED_KEYS + 10; i++) store.set(`K${i}`, key(`K${i}`));
  for (let i = 0; i < MAX_CACHED_KEYS + 10; i++) await cache.get(`K${i}`);
  loads = 0;
  await cache.get('K0');
  assert.equal(loads, 1, 'the oldest entry was evicted');
  await cache.get(`K${MAX_CACHED_KEYS + 9}`);
  assert.equal(loads, 1, 'the newest is still cached');
});
