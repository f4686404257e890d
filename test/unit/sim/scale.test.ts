/**
 * The scale simulation in a small configuration: the figures `bench/sim.ts` prints are produced
 * here too and checked for sense, and the same seed must print the same report.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runScale, type ScaleOptions } from '../../../src/cluster/sim/scale.js';
import { SimCluster } from '../../../src/cluster/sim/sim-cluster.js';
import { format, parseArgs } from '../../../bench/sim.js';

const SMALL: Partial<ScaleOptions> = { nodes: 40, chunks: 6000, lossDurationMs: 40_000, phaseLimitMs: 60_000 };

test('a small cluster joins, rides out 1 % loss without false deaths, finds a mass failure and repairs it', async (t) => {
  const r = await runScale({ ...SMALL, seed: 5 });
  t.diagnostic(format(r));
  assert.ok(r.join.converged, 'join converged');
  assert.ok(r.join.simMs < 10_000, `join took ${r.join.simMs} simulated ms`);
  assert.equal(r.steady.falseDeaths, 0);
  assert.notEqual(r.steady.reconvergedMs, null);
  assert.equal(r.failure.failed, 2);
  assert.notEqual(r.failure.detectedMs, null);
  assert.equal(r.failure.falseDeaths, 0);
  assert.equal(r.repair.lost, r.repair.lostByPlacement, 'the planner finds exactly the chunks with no surviving copy');
  assert.equal(r.repair.underReplicatedAfter, r.repair.lost, 'everything else is back to full redundancy');
  assert.ok(r.repair.copies >= r.repair.affected - r.repair.lost);
  assert.equal(r.repair.bytesMoved, r.repair.copies * (1 << 20));
  assert.ok(r.repair.simMs > 0);
  // One join moves about 1/(N+1) of the copies; 3 sigma of a binomial over 18,000 copies.
  const sd = Math.sqrt(r.joinOne.expected / (6000 * 3));
  assert.ok(Math.abs(r.joinOne.fractionOfCopies - r.joinOne.expected) < 3 * sd + 1e-9, `moved ${r.joinOne.fractionOfCopies}`);
});

test('the same seed gives the same report, another seed another run', async () => {
  const opts = { ...SMALL, nodes: 16, chunks: 2000, lossDurationMs: 10_000 };
  const a = await runScale({ ...opts, seed: 9 });
  const b = await runScale({ ...opts, seed: 9 });
  const c = await runScale({ ...opts, seed: 10 });
  assert.deepEqual(b, a);
  assert.equal(format(b), format(a));
  assert.notEqual(c.digest, a.digest);
});

test('skipping body copies in the simulated network replays exactly the run with copies', async () => {
  const run = async (cloneBodies: boolean) => {
    const c = new SimCluster({ seed: 77, lossRate: 0.02, cloneBodies });
    const ids = Array.from({ length: 12 }, (_, i) => `m${i}`);
    for (const id of ids) c.start(id, [SimCluster.addrOf(ids[0]!)]);
    await c.clock.runFor(5_000);
    c.crash(ids[4]!);
    await c.clock.runFor(8_000);
    c.start(ids[4]!, [SimCluster.addrOf(ids[1]!)]);
    await c.clock.runFor(5_000);
    c.stopAll();
    return { digest: c.net.digest, changes: c.changes.length, sent: c.net.stats.sent };
  };
  const copied = await run(true);
  assert.ok(copied.changes > 100);
  assert.deepEqual(await run(false), copied);
});

test('sim arguments are parsed and checked', () => {
  assert.deepEqual(parseArgs(['--nodes', '1000', '--seed', '3', '--loss-seconds', '60', '--json']), {
    opts: { nodes: 1000, seed: 3, lossDurationMs: 60_000 },
    json: true,
    quiet: false,
  });
  assert.throws(() => parseArgs(['--nodes', '1.5']), /whole number/);
  assert.throws(() => parseArgs(['--loss', '1']), /fractions/);
  assert.throws(() => parseArgs(['--frobnicate']), /unknown argument/);
});

test('zones: a whole zone failing loses no chunk, and repair restores R copies in distinct zones', async (t) => {
  const r = await runScale({ ...SMALL, nodes: 40, zones: 4, chunks: 6000, seed: 6 });
  t.diagnostic(format(r));
  const z = r.zoneFailure;
  assert.ok(z !== undefined, 'a multi-zone run reports a zone failure');
  assert.equal(z.failed, 10);
  assert.ok(z.affected > 0.5 * 6000, `${z.affected} chunks had a copy in the failed zone`);
  assert.equal(z.lost, 0);
  assert.equal(z.underReplicatedAfter, 0);
  assert.equal(z.sharingAZoneAfter, 0, 'three zones remain for three copies');
  assert.ok(z.copies >= z.affected);
  assert.match(format(r), /a whole zone fails at once: zone\d+, 10 nodes/);
  // Without zones, one zone's worth of failed nodes does take chunks with it.
  const flat = await runScale({ ...SMALL, nodes: 40, chunks: 6000, seed: 6, failFraction: 0.25 });
  assert.ok(flat.repair.lostByPlacement > 0, 'a quarter of the nodes failing at random loses chunks without zones');
  assert.equal(flat.zoneFailure, undefined);
});
