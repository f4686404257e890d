/** Scrub with real node processes: one flipped byte in a stored shard and one in a stored replica are found and repaired. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LocalCluster } from '../../src/cli/local-cluster.js';
import { rotStoredChunk } from '../helpers/store-layout.js';
import { collect, pieces, seededBuffer } from './files-support.js';
import { expectedStripes, holdings } from './heal-support.js';

const CS = 32 << 10;

test('scrub finds a flipped byte in a shard and in a replica, repairs both, and both files read back', async (t) => {
  const cluster = await LocalCluster.create({ nodes: 6, logLevel: 'warn', nodeArgs: ['--quota', '1G'] });
  t.after(() => cluster.destroy());
  await cluster.waitForMembers({ alive: 6 });
  const ecData = await seededBuffer('scrub-ec', 8 * CS);
  const repData = await seededBuffer('scrub-rep', 8 * CS + 5);
  await cluster.node(0).client.put(pieces(ecData), { name: 'ec.bin', chunkSize: CS, ec: '4+2' });
  const before = await holdings(cluster, [0, 1, 2, 3, 4, 5]);
  await cluster.node(0).client.put(pieces(repData), { name: 'rep.bin', chunkSize: CS, replicas: 3 });
  const after = await holdings(cluster, [0, 1, 2, 3, 4, 5]);

  // A shard on node 1: an id in a descriptor's shard list that node 1 holds.
  const stripes = await expectedStripes(cluster, ecData, CS, 4, 2);
  const shard = [...stripes.values()].flatMap((st) => st.s.map((s) => s.toString('hex'))).find((s) => before.get(1)!.has(s));
  assert.ok(shard, 'node 1 holds a shard');
  // A replica on node 2: a chunk that arrived with the replicated file.
  const replica = [...after.get(2)!].find((id) => ![...before.values()].some((s) => s.has(id)));
  assert.ok(replica, 'node 2 holds a replica');
  assert.ok(await rotStoredChunk(cluster.node(1).dataDir, shard), 'one byte of the shard flipped on disk');
  assert.ok(await rotStoredChunk(cluster.node(2).dataDir, replica), 'one byte of the replica flipped on disk');

  const r1 = await cluster.node(1).client.scrub();
  const r2 = await cluster.node(2).client.scrub();
  assert.equal(r1.bad, 1, 'scrub on node 1 found the bad shard');
  assert.deepEqual(r1.badIds, [shard]);
  assert.equal(r1.repaired, 1);
  assert.equal(r2.bad, 1, 'scrub on node 2 found the bad replica');
  assert.deepEqual(r2.badIds, [replica]);
  assert.equal(r2.repaired, 1);
  // The repaired copies are good on disk again, and a second pass finds nothing.
  assert.ok((await holdings(cluster, [1])).get(1)!.has(shard));
  assert.ok((await holdings(cluster, [2])).get(2)!.has(replica));
  assert.equal((await cluster.node(1).client.scrub()).bad, 0);
  assert.equal((await cluster.node(2).client.scrub()).bad, 0);
  assert.ok((await collect((await cluster.node(3).client.get('ec.bin')).stream)).equals(ecData));
  assert.ok((await collect((await cluster.node(3).client.get('rep.bin')).stream)).equals(repData));
});
