/**
 * SWIM membership end to end on the deterministic simulated network: join, failure detection,
 * restart, partitions, loss, graceful leave, and replay determinism. Times are simulated ms.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_MEMBERSHIP_CONFIG } from '../../../src/cluster/membership.js';
import { SimCluster } from '../../../src/cluster/sim/sim-cluster.js';

const N = 20;
const ids = Array.from({ length: N }, (_, i) => `node-${String(i).padStart(2, '0')}`);
const SEED_ADDR = SimCluster.addrOf(ids[0]!);
/** Detection bound promised on loopback with default settings. */
const DEAD_WITHIN_MS = 5_000;

async function joined(seed: number, opts: { lossRate?: number } = {}): Promise<SimCluster> {
  const c = new SimCluster({ seed, lossRate: opts.lossRate ?? 0 });
  for (const id of ids) c.start(id, [SEED_ADDR]);
  assert.ok(await c.clock.runUntilTrue(() => c.converged(), 10_000), 'cluster did not converge within 10 s');
  return c;
}

test('20 nodes joining through one seed all see each other alive, with stats', async () => {
  const c = new SimCluster({ seed: 11 });
  ids.forEach((id, i) => c.start(id, [SEED_ADDR], { capacity: 1000 * (i + 1) }));
  assert.equal(c.converged(), false);
  assert.ok(await c.clock.runUntilTrue(() => c.converged(), 10_000));
  for (const a of c.running()) {
    const ms = a.membership.members();
    assert.equal(ms.length, N);
    assert.equal(a.membership.live().length, N);
    ids.forEach((id, i) => assert.equal(a.membership.get(id)?.capacity, 1000 * (i + 1), `${a.nodeId} sees ${id}'s capacity`));
  }
  assert.equal(c.deaths().length, 0);
  c.stopAll();
});

test('a change in a node’s used bytes reaches every member by gossip', async () => {
  const c = new SimCluster({ seed: 21 });
  let used = 0;
  for (const id of ids) c.start(id, [SEED_ADDR], id === ids[4] ? { stats: () => ({ capacity: 1000, used }) } : {});
  assert.ok(await c.clock.runUntilTrue(() => c.converged(), 10_000));
  used = 640;
  const seen = () => c.running().every((n) => n.membership.get(ids[4]!)?.used === 640);
  assert.equal(seen(), false);
  assert.ok(await c.clock.runUntilTrue(seen, DEFAULT_MEMBERSHIP_CONFIG.statsIntervalMs + 3_000), 'stats update did not spread');
  c.stopAll();
});

test('a killed node is declared dead by every other node within the configured bound, and nobody else is', async () => {
  const c = await joined(12);
  const victim = ids[7]!;
  c.crash(victim);
  const t0 = c.clock.now();
  assert.ok(await c.clock.runUntilTrue(() => c.allSee(victim, 'dead'), DEAD_WITHIN_MS, 10), `not everyone saw ${victim} dead within ${DEAD_WITHIN_MS} ms`);
  const took = c.clock.now() - t0;
  // Cannot be faster than one probe timeout plus the suspicion timeout.
  assert.ok(took >= DEFAULT_MEMBERSHIP_CONFIG.suspicionTimeoutMs + DEFAULT_MEMBERSHIP_CONFIG.probeTimeoutMs, `dead after only ${took} ms`);
  await c.clock.runFor(5_000);
  assert.deepEqual(new Set(c.deaths().map((d) => d.nodeId)), new Set([victim]));
  assert.equal(c.get(ids[0]!).live().length, N - 1);
  c.stopAll();
});

test('a restarted node (same id) is alive again everywhere, with or without its persisted incarnation', async () => {
  const c = await joined(13);
  const a = ids[3]!;
  const b = ids[4]!;
  c.crash(a);
  c.crash(b);
  assert.ok(await c.clock.runUntilTrue(() => c.allSee(a, 'dead') && c.allSee(b, 'dead'), DEAD_WITHIN_MS));
  const deadInc = c.get(ids[0]!).get(b)!.incarnation;
  c.start(a, [SEED_ADDR], { incarnation: 7 });
  // b lost its incarnation (say, its data dir): it must learn it is dead and outbid that.
  c.start(b, [SEED_ADDR], { incarnation: 0 });
  assert.ok(await c.clock.runUntilTrue(() => c.converged(), 5_000), 'restarted nodes did not become alive everywhere');
  assert.equal(c.get(ids[9]!).get(a)!.incarnation, 7);
  assert.ok(c.get(b).incarnation > deadInc, `b refuted with incarnation ${c.get(b).incarnation}, dead at ${deadInc}`);
  c.stopAll();
});

test('a node briefly partitioned or stalled for less than the suspicion timeout is never declared dead', async () => {
  const c = await joined(14);
  const p = SimCluster.addrOf(ids[5]!);
  const outage = DEFAULT_MEMBERSHIP_CONFIG.suspicionTimeoutMs * 0.6;
  for (let round = 0; round < 5; round++) {
    c.net.partition([p]);
    await c.clock.runFor(outage);
    c.net.heal();
    await c.clock.runFor(8_000);
  }
  const slow = SimCluster.addrOf(ids[6]!);
  for (let round = 0; round < 5; round++) {
    // Every message to or from it takes longer than a probe timeout: a stall, like a long GC pause.
    c.net.setDelay(slow, DEFAULT_MEMBERSHIP_CONFIG.probeTimeoutMs * 2);
    await c.clock.runFor(outage);
    c.net.setDelay(slow, 0);
    await c.clock.runFor(8_000);
  }
  // The outages were noticed (suspicions) yet always refuted in time.
  const suspected = c.changes.filter((x) => x.state === 'suspect' && (x.nodeId === ids[5] || x.nodeId === ids[6]));
  assert.ok(suspected.length > 0, 'the outages should at least have caused suspicion');
  assert.deepEqual(c.deaths(), []);
  assert.ok(c.converged());
  c.stopAll();
});

test('with 1% message loss over a long run there are no false dead declarations, and a real death is still found', async () => {
  const c = await joined(15, { lossRate: 0.01 });
  await c.clock.runFor(120_000);
  assert.ok(c.net.stats.dropped > 50, `loss should have dropped messages (dropped ${c.net.stats.dropped})`);
  assert.deepEqual(c.deaths(), []);
  assert.ok(c.converged());
  c.crash(ids[11]!);
  assert.ok(await c.clock.runUntilTrue(() => c.allSee(ids[11]!, 'dead'), DEAD_WITHIN_MS + 2_000));
  c.stopAll();
});

test('graceful leave is seen as left, never as dead', async () => {
  const c = await joined(16);
  const leaver = c.get(ids[8]!);
  const done = leaver.leave();
  await c.clock.runFor(1_000);
  await done;
  assert.equal(leaver.isRunning, false);
  c.crash(ids[8]!);
  assert.ok(await c.clock.runUntilTrue(() => c.allSee(ids[8]!, 'left'), 3_000), 'leave did not spread');
  await c.clock.runFor(10_000);
  assert.deepEqual(c.deaths(), []);
  assert.equal(c.get(ids[0]!).live().length, N - 1);
  c.stopAll();
});

test('a late joiner learns every member through the seed’s full state', async () => {
  const c = await joined(17);
  const late = c.start('late-joiner', [SimCluster.addrOf(ids[19]!)]);
  assert.ok(await c.clock.runUntilTrue(() => late.live().length === N + 1, 1_000, 5));
  assert.ok(await c.clock.runUntilTrue(() => c.converged(), 5_000));
  c.stopAll();
});

test('a node keeps retrying its seed with backoff until the seed comes up', async () => {
  const c = new SimCluster({ seed: 18 });
  const m = c.start(ids[1]!, [SEED_ADDR]);
  await c.clock.runFor(30_000);
  const attempts = c.net.trace.filter((l) => l.includes(`>${SEED_ADDR} member.sync`)).length;
  assert.ok(attempts >= 3, `only ${attempts} join attempts`);
  assert.ok(attempts <= 30, `${attempts} join attempts in 30 s: backoff is not working`);
  assert.equal(m.live().length, 1);
  c.start(ids[0]!, []);
  assert.ok(await c.clock.runUntilTrue(() => c.converged(), 20_000), 'did not join once the seed came up');
  c.stopAll();
});

test('two halves of a long partition declare each other dead, then merge back after healing', async () => {
  const c = await joined(19);
  const left = ids.slice(0, 10).map(SimCluster.addrOf);
  c.net.partition(left);
  const other = ids[15]!;
  assert.ok(await c.clock.runUntilTrue(() => c.get(ids[0]!).get(other)?.state === 'dead', 10_000));
  assert.ok(await c.clock.runUntilTrue(() => c.get(other).get(ids[0]!)?.state === 'dead', 10_000));
  await c.clock.runFor(5_000);
  c.net.heal();
  // Nobody restarts or re-contacts a seed: only the low-rate probing of dead members can merge them.
  const bound = DEFAULT_MEMBERSHIP_CONFIG.deadProbeIntervalMs * 3;
  assert.ok(await c.clock.runUntilTrue(() => c.converged(), bound, 100), `halves did not merge within ${bound} ms`);
  c.stopAll();
});

async function traceOf(seed: number): Promise<{ digest: string; changes: string[] }> {
  const c = new SimCluster({ seed, lossRate: 0.01 });
  for (const id of ids.slice(0, 8)) c.start(id, [SEED_ADDR]);
  await c.clock.runFor(5_000);
  c.crash(ids[2]!);
  await c.clock.runFor(6_000);
  c.start(ids[2]!, [SEED_ADDR]);
  await c.clock.runFor(4_000);
  c.stopAll();
  return { digest: c.net.digest, changes: c.changes.map((x) => `${x.at.toFixed(3)} ${x.observer} ${x.nodeId} ${x.prev}>${x.state}@${x.incarnation}`) };
}

test('the same seed replays an identical run; another seed does not', async () => {
  const a = await traceOf(42);
  const b = await traceOf(42);
  const d = await traceOf(43);
  assert.ok(a.changes.length > 50);
  assert.deepEqual(b.changes, a.changes);
  assert.equal(b.digest, a.digest);
  assert.notEqual(d.digest, a.digest);
  assert.notDeepEqual(d.changes, a.changes);
});

test('a node cut off from everyone blames itself: it accuses nobody while it doubts itself (MAX_SELF_DOUBT_MS), and rejoins after healing', async () => {
  const c = await joined(20);
  const cut = ids[13]!;
  const before = c.changes.length;
  c.net.partition([SimCluster.addrOf(cut)]);
  assert.ok(await c.clock.runUntilTrue(() => c.allSee(cut, 'dead'), DEAD_WITHIN_MS + 1_000), 'the cluster should declare the cut-off node dead');
  await c.clock.runFor(5_000);
  const accusations = c.changes.slice(before).filter((x) => x.observer === cut && x.nodeId !== cut && x.state !== 'alive');
  assert.deepEqual(accusations, []);
  c.net.heal();
  assert.ok(await c.clock.runUntilTrue(() => c.converged(), 5_000), 'the cut-off node did not rejoin');
  assert.deepEqual(new Set(c.deaths().map((d) => d.nodeId)), new Set([cut]));
  c.stopAll();
});

test('zones travel with membership, and a restart in another zone reaches every member', async () => {
  const c = new SimCluster({ seed: 31 });
  ids.forEach((id, i) => c.start(id, [SEED_ADDR], { zone: `rack${i % 4}` }));
  assert.ok(await c.clock.runUntilTrue(() => c.converged(), 10_000));
  for (const a of c.running()) ids.forEach((id, i) => assert.equal(a.membership.get(id)?.zone, `rack${i % 4}`, `${a.nodeId} sees ${id}'s zone`));
  c.crash(ids[5]!);
  c.start(ids[5]!, [SEED_ADDR], { zone: 'rack9', incarnation: 10 });
  const moved = () => c.running().every((n) => n.membership.get(ids[5]!)?.zone === 'rack9');
  assert.ok(await c.clock.runUntilTrue(moved, 10_000), 'the new zone did not spread');
  c.stopAll();
});

test('a node whose seed was not up yet, reached first by another newcomer, still ends in one cluster with its seed', async () => {
  const c = new SimCluster({ seed: 41 });
  const [a, b, d, e] = ['isl-a', 'isl-b', 'isl-d', 'isl-e'];
  // b's only seed (a) is not running yet; d joins through b, so b is no longer alone and stops joining.
  c.start(b!, [SimCluster.addrOf(a!)]);
  c.start(d!, [SimCluster.addrOf(b!)]);
  assert.ok(await c.clock.runUntilTrue(() => c.get(b!).get(d!)?.state === 'alive', 10_000), 'b and d find each other');
  // Now a starts, and e joins through it: two islands, unless b goes back to its seed.
  c.start(a!, []);
  c.start(e!, [SimCluster.addrOf(a!)]);
  const one = () => c.converged() && c.running().every((n) => n.membership.live().length === 4);
  assert.ok(await c.clock.runUntilTrue(one, 3 * DEFAULT_MEMBERSHIP_CONFIG.pushPullIntervalMs + 5_000), 'the two islands merged');
  c.stopAll();
});

test('the last live node of three declares both others dead once it has doubted itself long enough (its only helpers are dead too)', async () => {
  const three = ids.slice(0, 3);
  const c = new SimCluster({ seed: 31 });
  for (const id of three) c.start(id, [SEED_ADDR]);
  assert.ok(await c.clock.runUntilTrue(() => c.converged(), 10_000), 'three nodes did not converge');
  c.crash(three[1]!);
  c.crash(three[2]!);
  const survivor = c.get(three[0]!);
  const bothDead = () => three.slice(1).every((id) => survivor.get(id)?.state === 'dead');
  assert.ok(await c.clock.runUntilTrue(bothDead, 25_000, 10), `the survivor still sees ${three.slice(1).map((id) => `${id}=${survivor.get(id)?.state}`).join(', ')}`);
  c.stopAll();
});
