/**
 * Failure domains with real node processes: six nodes in three zones, a replicated and an
 * erasure-coded file placed across the zones, then a whole zone killed at once. Both files read
 * back identical, repair restores what the two remaining zones can hold, and stat says how many
 * zone losses each file survives as the copies lie.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LocalCluster, waitFor } from '../../src/cli/local-cluster.js';
import { collect, pieces, seededBuffer } from './files-support.js';
import { FAST_FAILURE } from './heal-support.js';
import type { FileStatView } from '../../src/api/types.js';

const CS = 32 << 10;
const zoneOfIndex = (i: number): string => `zone-${Math.floor(i / 2)}`;

/** For every chunk stat details, how many distinct zones hold it. */
function zonesPerChunk(s: FileStatView, zoneOf: Map<string, string>): number[] {
  return s.chunkHealth.map((c) => new Set(c.holders.map((h) => zoneOf.get(h))).size);
}

test('6 nodes in 3 zones: copies and shards span the zones; losing a whole zone loses nothing', async (t) => {
  const cluster = await LocalCluster.create({
    nodes: 6,
    logLevel: 'warn',
    nodeArgs: ['--quota', '1G', ...FAST_FAILURE, '--repair-grace-ms', '2000', '--repair-interval-ms', '1500'],
    argsFor: (i) => ['--zone', zoneOfIndex(i)],
  });
  t.after(() => cluster.destroy());
  await cluster.waitForMembers({ alive: 6 });
  const zoneOf = new Map(cluster.nodes.map((n) => [n.nodeId, zoneOfIndex(n.index)]));
  await waitFor('every node to know every zone', 10_000, async () => {
    for (const n of cluster.nodes) if ((await n.client.status()).zonesUp !== 3) return false;
    return true;
  });
  const peers = await cluster.node(1).client.peers();
  for (const p of peers) assert.equal(p.zone, zoneOf.get(p.nodeId), `node 1 sees ${p.nodeId}'s zone`);

  const rep = await seededBuffer('zones-rep', 20 * CS + 101);
  const ec = await seededBuffer('zones-ec', 12 * CS + 55);
  await cluster.node(0).client.put(pieces(rep), { name: 'rep.bin', chunkSize: CS, replicas: 3 });
  await cluster.node(0).client.put(pieces(ec), { name: 'ec.bin', chunkSize: CS, ec: '4+2' });

  const repStat = await cluster.node(2).client.stat('rep.bin');
  assert.equal(repStat.health.fullRedundancy, 21);
  assert.ok(zonesPerChunk(repStat, zoneOf).every((z) => z === 3), 'every replicated chunk has a copy in each zone');
  assert.equal(repStat.zones, 3);
  assert.equal(repStat.zoneLossesSurvived, 2);
  const ecStat = await cluster.node(2).client.stat('ec.bin');
  assert.equal(ecStat.health.fullRedundancy, 13);
  assert.equal(ecStat.zoneLossesSurvived, 1, 'two shards per zone: any one zone may go');

  // The whole of zone-2 fails at once.
  await Promise.all([cluster.kill(4, 'SIGKILL'), cluster.kill(5, 'SIGKILL')]);
  for (const [name, data] of [['rep.bin', rep], ['ec.bin', ec]] as const) {
    const back = await cluster.node(1).client.get(name);
    assert.ok((await collect(back.stream)).equals(data), `${name} reads back identical with a whole zone down`);
  }

  // Replicas: repair brings every chunk back to 3 copies, over the two zones left.
  await waitFor('replicated file back at full redundancy on the remaining zones', 90_000, async () => {
    const s = await cluster.node(0).client.stat('rep.bin');
    return s.health.fullRedundancy === 21 && s.zones === 2;
  });
  const after = await cluster.node(0).client.stat('rep.bin');
  assert.ok(zonesPerChunk(after, zoneOf).every((z) => z === 2), 'each chunk spans both remaining zones');
  assert.equal(after.zoneLossesSurvived, 1);
  assert.ok(after.chunkHealth.every((c) => c.holders.every((h) => zoneOf.get(h) !== 'zone-2')));

  // 4+2 needs six nodes: with four live, stat says honestly that the stripes are degraded and that
  // another zone's loss could make them unreadable.
  const ecAfter = await cluster.node(0).client.stat('ec.bin');
  assert.equal(ecAfter.health.lost, 0);
  assert.equal(ecAfter.health.fullRedundancy + ecAfter.health.degraded, 13);
  assert.equal(ecAfter.zoneLossesSurvived, 0);
  const back = await cluster.node(3).client.get('ec.bin');
  assert.ok((await collect(back.stream)).equals(ec));
});
