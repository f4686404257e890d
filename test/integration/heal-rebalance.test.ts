/**
 * Rebalance and drain with real node processes: a join moves about 1/N of the chunks to the new
 * node and the surplus copies go; a drained node ends up holding nothing, and stopping it loses
 * nothing. Checked by listing what every node stores.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LocalCluster, waitFor } from '../../src/cli/local-cluster.js';
import { collect, pieces, seededBuffer } from './files-support.js';
import { FAST_FAILURE, copyCounts, holdings } from './heal-support.js';

const CS = 8 << 10;
const ARGS = ['--quota', '1G', ...FAST_FAILURE, '--repair-grace-ms', '2000', '--repair-interval-ms', '1000'];

test('a 6th node joins a loaded 5-node cluster: it receives about 1/6 of the chunks, nothing is lost, surplus copies are removed', async (t) => {
  const cluster = await LocalCluster.create({ nodes: 5, memory: true, logLevel: 'warn', nodeArgs: ARGS });
  t.after(() => cluster.destroy());
  await cluster.waitForMembers({ alive: 5 });
  const data = await seededBuffer('rebalance', 600 * CS);
  await cluster.node(0).client.put(pieces(data), { name: 'load.bin', chunkSize: CS, replicas: 3 });
  const before = copyCounts(await holdings(cluster, [0, 1, 2, 3, 4]));
  const total = before.size;
  assert.ok(total > 600);

  await cluster.addNode({ args: [] });
  const all = [0, 1, 2, 3, 4, 5];
  // Settled: every chunk on exactly 3 nodes again, and the new node holding its share.
  const settled = await waitFor('rebalance to settle', 90_000, async () => {
    const h = await holdings(cluster, all);
    const counts = copyCounts(h);
    for (const id of before.keys()) if (counts.get(id) !== 3) return false;
    return h.get(5)!.size > 0 ? h : false;
  });
  const onNew = settled.get(5)!.size;
  // Each chunk has 3 of 6 slots: the new node's fair share is 3/6 of the chunks, i.e. 1/6 of all copies.
  const fair = (3 * total) / 6;
  assert.ok(onNew >= fair * 0.7 && onNew <= fair * 1.3, `new node holds ${onNew} copies; a fair share is ${fair.toFixed(0)} (±30 %)`);
  const moved = [0, 1, 2, 3, 4].reduce((a, i) => a + [...settled.get(i)!].length, 0);
  assert.equal(moved + onNew, 3 * total, 'no copy lost, none left over');
  const back = await cluster.node(5).client.get('load.bin');
  assert.ok((await collect(back.stream)).equals(data));
});

test('drain: the node gives every chunk away, reports safe to stop, and stopping it loses nothing', async (t) => {
  const cluster = await LocalCluster.create({ nodes: 5, memory: true, logLevel: 'warn', nodeArgs: ARGS });
  t.after(() => cluster.destroy());
  await cluster.waitForMembers({ alive: 5 });
  const data = await seededBuffer('drain', 200 * CS + 9);
  const ecData = await seededBuffer('drain-ec', 40 * CS);
  await cluster.node(0).client.put(pieces(data), { name: 'd.bin', chunkSize: CS, replicas: 3 });
  await cluster.node(0).client.put(pieces(ecData), { name: 'e.bin', chunkSize: CS, ec: '2+1' });
  const before = copyCounts(await holdings(cluster, [0, 1, 2, 3, 4]));
  const victim = cluster.node(2);
  assert.ok((await holdings(cluster, [2])).get(2)!.size > 0);

  const started = await cluster.node(0).client.drain(victim.nodeId.slice(0, 10));
  assert.equal(started.draining, true);
  assert.equal(started.nodeId, victim.nodeId);
  await waitFor('the drained node to report safe to stop', 90_000, async () => (await victim.client.drainState()).safeToStop);
  const h = await holdings(cluster, [0, 1, 2, 3, 4]);
  assert.equal(h.get(2)!.size, 0, 'the drained node holds nothing');
  const others = copyCounts(new Map([...h].filter(([i]) => i !== 2)));
  for (const [id, n] of before) assert.ok((others.get(id) ?? 0) >= n, `chunk ${id.slice(0, 12)} has its ${n} copies elsewhere`);
  await cluster.kill(2, 'SIGTERM');
  assert.ok((await collect((await cluster.node(1).client.get('d.bin')).stream)).equals(data));
  assert.ok((await collect((await cluster.node(3).client.get('e.bin')).stream)).equals(ecData));
});
