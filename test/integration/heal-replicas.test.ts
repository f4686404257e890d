/**
 * Self-healing of replicated files with real node processes: a node that stays dead is repaired
 * around, a blip is not, checked by listing what each node really stores.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LocalCluster, waitFor } from '../../src/cli/local-cluster.js';
import { collect, pieces, seededBuffer } from './files-support.js';
import { FAST_FAILURE, copyCounts, holdings, running } from './heal-support.js';

const CS = 16 << 10;

test('R=3 on 5 nodes: one node killed for good; after the grace period every chunk has 3 copies on live nodes', async (t) => {
  const cluster = await LocalCluster.create({
    nodes: 5,
    memory: true,
    logLevel: 'warn',
    nodeArgs: [...FAST_FAILURE, '--repair-grace-ms', '2000', '--repair-interval-ms', '1500'],
  });
  t.after(() => cluster.destroy());
  await cluster.waitForMembers({ alive: 5 });
  const data = await seededBuffer('heal-r3', 160 * CS + 123);
  await cluster.node(0).client.put(pieces(data), { name: 'r3.bin', chunkSize: CS, replicas: 3 });

  const before = copyCounts(await holdings(cluster, [0, 1, 2, 3, 4]));
  assert.ok(before.size > 160, 'data chunks, manifest root');
  for (const [id, n] of before) assert.equal(n, 3, `chunk ${id.slice(0, 12)} starts with 3 copies`);
  const victim = 3;
  const lost = (await holdings(cluster, [victim])).get(victim)!;
  assert.ok(lost.size > 40, `the victim holds a share of the chunks (${lost.size})`);

  await cluster.kill(victim, 'SIGKILL');
  const live = [0, 1, 2, 4];
  // Exactly 3, waited for: on a loaded machine a live member may be taken for dead for a moment,
  // and the surplus copies made meanwhile are dropped by later passes.
  let after = new Map<string, number>();
  await waitFor('every chunk back at exactly 3 live copies', 90_000, async () => {
    after = copyCounts(await holdings(cluster, live));
    for (const id of before.keys()) if (after.get(id) !== 3) return false;
    return true;
  }).catch((err: unknown) => {
    const off = [...before.keys()].filter((id) => after.get(id) !== 3).map((id) => `${id.slice(0, 12)}: ${after.get(id) ?? 0}`);
    throw new Error(`${(err as Error).message}; chunks not at 3 live copies: ${off.slice(0, 10).join(', ')} (${off.length} in all)`);
  });
  for (const id of before.keys()) assert.equal(after.get(id), 3, `chunk ${id.slice(0, 12)} has exactly 3 live copies`);
  await waitFor('status to show nothing under-replicated', 20_000, async () => {
    const s = await cluster.node(0).client.status();
    return s.repair !== undefined && s.repair.passes > 0 && s.repair.underReplicatedBytes === 0;
  });
  const restored = (await Promise.all(live.map((i) => cluster.node(i).client.repair()))).reduce((a, r) => a + r.totals.copiesMade, 0);
  assert.ok(restored >= lost.size, `copies were made (${restored}) for the ${lost.size} the dead node held`);
  const back = await cluster.node(1).client.get('r3.bin');
  assert.ok((await collect(back.stream)).equals(data));
});

test('no repair for a node that is only suspected, nor for one dead for less than the grace period', async (t) => {
  // Disk nodes: the node that comes back must come back with its data. A quota fixes each node's
  // capacity (placement weight), which free disk space shared with other processes would move.
  const cluster = await LocalCluster.create({
    nodes: 5,
    logLevel: process.env.HEAL_DEBUG_DIR ? 'debug' : 'warn',
    ...(process.env.HEAL_DEBUG_DIR ? { dir: process.env.HEAL_DEBUG_DIR } : {}),
    nodeArgs: ['--quota', '1G', '--probe-interval', '200', '--suspicion-timeout', '2500', '--repair-grace-ms', '60000', '--repair-interval-ms', '500'],
  });
  t.after(() => cluster.destroy());
  await cluster.waitForMembers({ alive: 5 });
  const data = await seededBuffer('heal-blip', 64 * CS);
  await cluster.node(0).client.put(pieces(data), { name: 'blip.bin', chunkSize: CS });
  const before = await holdings(cluster, [0, 1, 2, 3, 4]);

  // Paused well inside the suspicion timeout: suspected, never declared dead.
  const proc = cluster.node(2).proc!;
  proc.kill('SIGSTOP');
  await waitFor('node 2 suspected', 10_000, async () => (await cluster.node(0).client.peers()).some((p) => p.nodeId === cluster.node(2).nodeId && p.state === 'suspect'));
  await new Promise((r) => setTimeout(r, 1500));
  proc.kill('SIGCONT');
  await cluster.waitForMembers({ alive: 5 });

  // Dead for a few seconds, far less than the 60 s grace period, then back.
  await cluster.kill(4, 'SIGKILL');
  await waitFor('node 4 declared dead', 20_000, async () => (await cluster.node(0).client.peers()).some((p) => p.nodeId === cluster.node(4).nodeId && p.state === 'dead'));
  // Several repair passes (every 500 ms) see the dead member and must leave it alone.
  await waitFor('a few repair passes with the member dead', 20_000, async () => {
    const r = await cluster.node(0).client.repair();
    return r.passes >= 4 && r.deadMembers.some((d) => d.nodeId === cluster.node(4).nodeId) ? r : false;
  });
  const during = await holdings(cluster, running(cluster));
  for (const i of running(cluster)) assert.deepEqual([...during.get(i)!].sort(), [...before.get(i)!].sort(), `node ${i} holds exactly what it held before`);
  const status = await cluster.node(0).client.status();
  assert.ok(status.repair!.deadMembers.every((d) => d.repairInMs > 0), 'the grace period is still running');
  await cluster.start(4);
  await cluster.waitForMembers({ alive: 5 });
  for (const i of running(cluster)) {
    const r = await cluster.node(i).client.repair();
    assert.equal(r.totals.copiesMade, 0, `node ${i} made no copies`);
    assert.equal(r.totals.copiesDropped, 0, `node ${i} dropped no copies`);
  }
  const back = await cluster.node(3).client.get('blip.bin');
  assert.ok((await collect(back.stream)).equals(data));
});
