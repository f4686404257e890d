import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatJoinToken, initDataDir, loadDataDir, newClusterKeys, parseJoinToken } from '../../../src/cluster/identity.js';
import { authorityPublicKey } from '../../../src/content/index.js';

test('a storage-only token carries the authority public key and no data key, and init keeps it', async (t) => {
  const keys = newClusterKeys();
  const authorityKey = authorityPublicKey(keys.dataKey!);
  const parsed = parseJoinToken(formatJoinToken({ ...keys, authorityKey }, { storageOnly: true }));
  assert.equal(parsed.dataKey, undefined);
  assert.deepEqual(parsed.authorityKey, authorityKey);
  const dir = await mkdtemp(join(tmpdir(), 'tessera-token-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await initDataDir(join(dir, 'n'), parsed);
  assert.deepEqual((await loadDataDir(join(dir, 'n'))).cluster.authorityKey, authorityKey);
});

test('a full token carries the data key and not the authority key (a full node derives it)', () => {
  const keys = newClusterKeys();
  const parsed = parseJoinToken(formatJoinToken({ ...keys, authorityKey: authorityPublicKey(keys.dataKey!) }));
  assert.deepEqual(parsed.dataKey, keys.dataKey);
  assert.equal(parsed.authorityKey, undefined);
});

test('an authority key of the wrong size in a token is refused', () => {
  const keys = newClusterKeys();
  const token = formatJoinToken({ ...keys, authorityKey: Buffer.alloc(16) }, { storageOnly: true });
  assert.throws(() => parseJoinToken(token), { code: 'BAD_INPUT', message: /authority key must be 32 bytes/ });
});
