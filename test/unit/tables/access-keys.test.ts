import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { isTesseraError } from '../../../src/errors.js';
import { AccessKeyTable, ACCESS_KEY_PARTITION, ACCESS_KEY_TABLE, isAccessKeyId, MAX_KEY_BUCKETS } from '../../../src/tables/access-keys.js';
import { mesh } from './mesh.js';

test('S3 access keys: made with a sealed secret, read back on another node, listed without secrets, scoped, removed', async () => {
  const m = await mesh(3);
  try {
    const dataKey = randomBytes(32);
    const [a, b] = [new AccessKeyTable(m.services.get(m.ids[0]!)!, dataKey), new AccessKeyTable(m.services.get(m.ids[1]!)!, dataKey)];
    const k = await a.create({ name: 'backup' });
    assert.ok(isAccessKeyId(k.accessKeyId), k.accessKeyId);
    assert.equal(k.secretKey.length, 40);
    const got = await b.get(k.accessKeyId);
    assert.equal(got?.secretKey, k.secretKey);
    assert.equal(got?.buckets, null);
    // The stored value never holds the secret in the clear.
    const raw = await m.services.get(m.ids[2]!)!.get({ table: ACCESS_KEY_TABLE, pk: ACCESS_KEY_PARTITION, sk: k.accessKeyId });
    assert.ok(raw?.value && !raw.value.includes(Buffer.from(k.secretKey)));
    // A record moved to another key id, or read under another data key, does not unseal.
    const other = (await a.create({ name: 'other' })).accessKeyId;
    await m.services.get(m.ids[0]!)!.put({ table: ACCESS_KEY_TABLE, pk: ACCESS_KEY_PARTITION, sk: other }, raw!.value);
    await assert.rejects(a.get(other), (e) => isTesseraError(e, 'CORRUPT'));
    await assert.rejects(new AccessKeyTable(m.services.get(m.ids[0]!)!, randomBytes(32)).get(k.accessKeyId), (e) => isTesseraError(e, 'CORRUPT'));

    const scoped = await a.create({ buckets: { photos: ['read', 'write'] } });
    assert.deepEqual((await b.get(scoped.accessKeyId))?.buckets, { photos: ['read', 'write'] });
    const listed = await b.list();
    assert.equal(listed.items.length, 3);
    assert.ok(listed.items.every((v) => !('secretKey' in v) && !('sealedSecret' in v)));

    await assert.rejects(a.create({ buckets: { 'Not_A_Bucket': ['read'] } }), (e) => isTesseraError(e, 'BAD_INPUT'));
    await assert.rejects(a.create({ buckets: { photos: [] } }), (e) => isTesseraError(e, 'BAD_INPUT'));
    await assert.rejects(a.create({ buckets: {} }), (e) => isTesseraError(e, 'BAD_INPUT'));
    await assert.rejects(a.create({ buckets: Object.fromEntries(Array.from({ length: MAX_KEY_BUCKETS + 1 }, (_, i) => [`bucket-${i}`, ['read' as const]])) }), (e) => isTesseraError(e, 'BAD_INPUT'));
    await assert.rejects(a.create({ name: 'x'.repeat(200) }), (e) => isTesseraError(e, 'BAD_INPUT'));

    assert.equal(await a.remove(k.accessKeyId), true);
    assert.equal(await b.get(k.accessKeyId), null);
    assert.equal(await a.remove(k.accessKeyId), false);
    assert.equal(await a.get('not-a-key-id'), null);
  } finally {
    await m.close();
  }
});
