/**
 * A data directory written by the version with the all-node name directory: name records are
 * written into each stopped node's LMDB with that version's store API, differing between nodes
 * (a newer record on one node only, a deletion newer than a live record elsewhere), then the nodes
 * start together. Every name must end as the object the newest record says, the old records must
 * be gone, and a second start must change nothing.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { LocalCluster, waitFor } from '../../src/cli/local-cluster.js';
import { deriveClusterKeys, HybridClock, sealNameRecord, DEFAULT_POLICY, type NameRecord } from '../../src/content/index.js';
import { openMetadata } from '../../src/store/metadata.js';
import { NameStore, nameRecordCount } from '../../src/files/name-store.js';
import { isTesseraError } from '../../src/errors.js';
import { collect, filesContaining, pieces } from './files-support.js';

const TIMING = ['--probe-interval', '200', '--suspicion-timeout', '1500', '--anti-entropy-ms', '1000'];

test('name records of the previous version become objects of the default bucket on start', { timeout: 240_000 }, async (t) => {
  const cluster = await LocalCluster.create({ nodes: 3, nodeArgs: TIMING, logLevel: 'info' });
  t.after(() => cluster.destroy({ keep: process.env.KEEP === '1' }));
  await cluster.waitForMembers({ alive: 3 });
  const c0 = cluster.node(0).client;
  const bodies = [randomBytes(5000), randomBytes(70_000), randomBytes(1)];
  const ids: string[] = [];
  for (const b of bodies) ids.push((await c0.put(pieces(b), { chunkSize: 64 << 10 })).fileId);
  for (let i = 0; i < 3; i++) await cluster.kill(i, 'SIGTERM');

  const keys = deriveClusterKeys(cluster.keys.dataKey!);
  const t0 = Date.now() - 60_000;
  const rec = (name: string, file: number, extra: Partial<NameRecord> = {}): NameRecord => ({ name, fileId: ids[file]!, size: bodies[file]!.length, createdAt: t0, policy: DEFAULT_POLICY, ...extra });
  /** What each node's old name directory held: [record, wall time]. */
  const held: [NameRecord, number][][] = [
    [[rec('docs/MIGRATE-a', 0), t0], [rec('over-MIGRATE', 1), t0], [rec('gone-MIGRATE', 1, { deleted: true }), t0 + 2]],
    [[rec('docs/MIGRATE-a', 0), t0], [rec('over-MIGRATE', 1), t0], [rec('only-on-1-MIGRATE', 2), t0 + 1], [rec('gone-MIGRATE', 1), t0]],
    [[rec('docs/MIGRATE-a', 0), t0], [rec('over-MIGRATE', 2), t0 + 5], [rec('gone-MIGRATE', 1), t0]],
  ];
  for (let i = 0; i < 3; i++) {
    const meta = await openMetadata(join(cluster.node(i).dataDir, 'meta'));
    const clock = new HybridClock(`old-${i}`);
    const store = new NameStore(meta, clock);
    for (const [r, wall] of held[i]!) await store.merge(sealNameRecord(keys, r, { wall, logical: 0, node: `old-${i}` }));
    assert.equal(nameRecordCount(meta), held[i]!.length);
    await meta.close();
  }

  await Promise.all([0, 1, 2].map((i) => cluster.start(i)));
  await cluster.waitForMembers({ alive: 3 });
  const want = ['docs/MIGRATE-a', 'only-on-1-MIGRATE', 'over-MIGRATE'];
  const names = async (i: number) => (await cluster.node(i).client.ls()).files.map((f) => f.name);
  const migrated = async (i: number) => (await readFile(join(cluster.dir, `node${i}.log`), 'utf8')).includes('name records migrated to objects of the default bucket');
  await waitFor('every node to finish its migration', 60_000, async () => (await Promise.all([0, 1, 2].map(migrated))).every(Boolean));
  for (let i = 0; i < 3; i++) assert.deepEqual(await names(i), want, `node ${i} lists the migrated names`);
  const read = async (i: number, name: string) => collect((await cluster.node(i).client.get(name)).stream);
  assert.ok((await read(1, 'docs/MIGRATE-a')).equals(bodies[0]!));
  assert.ok((await read(2, 'over-MIGRATE')).equals(bodies[2]!), 'the newest record of a name wins, whichever node held it');
  assert.ok((await read(0, 'only-on-1-MIGRATE')).equals(bodies[2]!));
  await assert.rejects(read(0, 'gone-MIGRATE'), (e) => isTesseraError(e, 'NOT_FOUND'));
  // The deleted name's file stays reachable by id, as the previous version left it.
  assert.ok((await read(0, ids[1]!)).equals(bodies[1]!));

  // Stopped, no node holds an old record, and no name is in any data directory.
  for (let i = 0; i < 3; i++) await cluster.kill(i, 'SIGTERM');
  for (let i = 0; i < 3; i++) {
    const meta = await openMetadata(join(cluster.node(i).dataDir, 'meta'));
    assert.equal(nameRecordCount(meta), 0, `node ${i} dropped its migrated records`);
    await meta.close();
  }
  assert.deepEqual(await filesContaining(cluster.dir, [Buffer.from('MIGRATE')]), []);

  // A second start finds nothing to migrate and changes nothing; names work as objects from now on.
  await Promise.all([0, 1, 2].map((i) => cluster.start(i)));
  await cluster.waitForMembers({ alive: 3 });
  await waitFor('listing after the second start', 30_000, async () => JSON.stringify(await names(2)) === JSON.stringify(want));
  // Two migrated names share a file: removing one keeps it, removing the last removes it.
  await cluster.node(1).client.rm('over-MIGRATE');
  assert.deepEqual(await names(0), ['docs/MIGRATE-a', 'only-on-1-MIGRATE']);
  assert.ok((await read(2, 'only-on-1-MIGRATE')).equals(bodies[2]!));
  await cluster.node(0).client.rm('only-on-1-MIGRATE');
  await assert.rejects(read(2, ids[2]!), (e) => isTesseraError(e, 'NOT_FOUND'), 'removing the last name of a file removes the file');
});
