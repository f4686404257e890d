/**
 * Real node processes on 127.0.0.1: joining through one bootstrap address, failure detection
 * after kill -9, rejoin with the same id, joining through a non-bootstrap member.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { LocalCluster, waitFor } from '../../src/cli/local-cluster.js';

// Fast failure detection so the test is quick; the node defaults give ≤ 5 s.
const TIMING = ['--probe-interval', '300', '--suspicion-timeout', '1500'];
const DEAD_WITHIN_MS = 8_000;

test('five nodes find each other through one bootstrap address, detect a kill -9, and take the node back', async (t) => {
  const cluster = await LocalCluster.create({ nodes: 5, nodeArgs: TIMING, logLevel: 'warn' });
  t.after(() => cluster.destroy());

  await cluster.waitForMembers({ alive: 5 }, 20_000);
  for (const n of cluster.nodes) {
    const peers = await n.client.peers();
    assert.deepEqual(peers.map((p) => p.nodeId).sort(), cluster.nodes.map((m) => m.nodeId).sort());
    assert.equal(peers.filter((p) => p.self).length, 1);
  }

  const victim = cluster.node(3);
  const killedAt = Date.now();
  await cluster.kill(3, 'SIGKILL');
  await cluster.waitForMembers({ alive: 4, dead: 1 }, DEAD_WITHIN_MS, [0, 1, 2, 4]);
  const detectedMs = Date.now() - killedAt;
  t.diagnostic(`kill -9 detected by every survivor in ${detectedMs} ms`);
  for (const i of [0, 1, 2, 4]) {
    const dead = (await cluster.node(i).client.peers()).find((p) => p.nodeId === victim.nodeId);
    assert.equal(dead?.state, 'dead', `node ${i} sees the killed node as dead`);
  }

  await cluster.start(3);
  await cluster.waitForMembers({ alive: 5 }, 20_000);
  const back = await cluster.node(0).client.peers();
  const again = back.find((p) => p.nodeId === victim.nodeId);
  assert.equal(again?.state, 'alive');
  assert.equal(again?.addr, victim.listen, 'same id, same address');
  assert.equal((await victim.client.status()).nodeId, victim.nodeId, 'restarted with the same identity');
});

test('with the bootstrap node dead, a new node joins through another member', async (t) => {
  const cluster = await LocalCluster.create({ nodes: 5, nodeArgs: TIMING, logLevel: 'warn' });
  t.after(() => cluster.destroy());
  await cluster.waitForMembers({ alive: 5 }, 20_000);

  await cluster.kill(0, 'SIGKILL');
  await cluster.waitForMembers({ alive: 4, dead: 1 }, DEAD_WITHIN_MS, [1, 2, 3, 4]);

  const sixth = await cluster.addNode({ bootstrap: [2] });
  await cluster.waitForMembers({ alive: 5, dead: 1 }, 20_000, [1, 2, 3, 4, 5]);
  const seen = await sixth.client.peers();
  assert.equal(seen.length, 6, 'the new node learned every member, the dead bootstrap node included');
  assert.equal(seen.find((p) => p.nodeId === cluster.node(0).nodeId)?.state, 'dead');
});

test('a graceful stop (SIGTERM) is announced as a leave, not a failure', async (t) => {
  const cluster = await LocalCluster.create({ nodes: 3, nodeArgs: TIMING, logLevel: 'warn' });
  t.after(() => cluster.destroy());
  await cluster.waitForMembers({ alive: 3 }, 20_000);
  await cluster.kill(2, 'SIGTERM');
  const left = await waitFor('the others to record the leave', DEAD_WITHIN_MS, async () => {
    const p = (await cluster.node(0).client.peers()).find((m) => m.nodeId === cluster.node(2).nodeId);
    return p?.state === 'left' ? p : undefined;
  });
  assert.equal(left.state, 'left');
  // The node's own account of a failed stop ('unclean stop', or an error that ended the process) says why.
  const log = await readFile(join(cluster.dir, 'node2.log'), 'utf8');
  assert.equal(cluster.node(2).proc?.exitCode, 0, `the node exits 0 after leaving; its log ends:\n${log.trim().split('\n').slice(-20).join('\n')}`);
  assert.doesNotMatch(log, /unclean stop|Unhandled|uncaught/i);
});
