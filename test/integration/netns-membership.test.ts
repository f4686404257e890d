/**
 * Real node processes on separate network namespaces (test/netns/harness.ts): partitions made with
 * nftables, an asymmetric and a flapping link, 50 ± 10 ms of latency through the fault proxy, and a
 * kill -9 / restart loop with a file workload whose history is checked afterwards. Skipped, with the
 * reason, where namespaces cannot be made (not root, no `ip netns`, no nft).
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { createPrng } from '../../src/cluster/sim/prng.js';
import { randomInt } from '../../src/cluster/clock.js';
import { waitFor } from '../../src/cli/local-cluster.js';
import { NetnsCluster, cleanStale, leftovers, netnsUnavailable } from '../netns/harness.js';

// Fast detection, as in test/integration/membership.test.ts.
const TIMING = ['--probe-interval', '300', '--suspicion-timeout', '1500'];
const DEAD_WITHIN_MS = 15_000;
const CONVERGE_MS = 40_000;

const why = await netnsUnavailable();
if (why === undefined) {
  const stale = await cleanStale();
  if (stale.length > 0) process.stderr.write(`netns: removed leftovers of a crashed run: ${stale.join(' ')}\n`);
}
const opts = { skip: why === undefined ? false : `netns tests skipped: ${why}`, timeout: 120_000 };

async function cluster(t: TestContext, hosts: number, extra: Partial<Parameters<typeof NetnsCluster.create>[0]> = {}): Promise<NetnsCluster> {
  const c = await NetnsCluster.create({ hosts, nodeArgs: TIMING, ...extra });
  t.after(async () => {
    await c.destroy();
    assert.deepEqual(await leftovers(), [], 'teardown left namespaces or links behind');
  });
  await c.start();
  t.diagnostic(`${hosts} hosts up: ${c.hosts.map((h) => `${h.ns}=${h.ip}`).join(' ')}`);
  await c.waitConverged(CONVERGE_MS);
  return c;
}

/**
 * Polls every host's view until `ms` have passed, counting the changes seen and remembering every
 * (observer, subject, state) that appeared; bounded by time and by polls.
 */
async function watch(c: NetnsCluster, ms: number, during?: () => Promise<void>): Promise<{ changes: number; seen: Set<string>; polls: number }> {
  const last = new Map<string, string>();
  const seen = new Set<string>();
  let changes = 0;
  let polls = 0;
  const end = Date.now() + ms;
  const work = during?.();
  while (Date.now() < end && polls < 1000) {
    polls++;
    const views = await c.views().catch(() => new Map<number, Map<string, string>>());
    for (const [obs, v] of views) {
      for (const h of c.hosts) {
        const st = v.get(h.nodeId);
        if (st === undefined || h.index === obs) continue;
        const key = `${obs}>${h.index}`;
        if (last.has(key) && last.get(key) !== st) changes++;
        last.set(key, st);
        seen.add(`${key}:${st}`);
      }
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  await work;
  return { changes, seen, polls };
}

test('partition: an isolated host is declared dead by the majority, and everyone is alive again after healing', opts, async (t) => {
  const c = await cluster(t, 4);
  const cut = 3;
  const t0 = Date.now();
  await c.isolate(cut);
  await waitFor('the majority to declare the isolated host dead', DEAD_WITHIN_MS, async () => {
    for (const i of [0, 1, 2]) if ((await c.stateOf(i, cut)) !== 'dead') return false;
    return true;
  });
  const detected = Date.now() - t0;
  // The isolated host cannot tell its fault from everyone else's; membership's isolation guard makes
  // it suspect nobody rather than accuse the whole cluster (see src/cluster/membership.ts).
  await new Promise((r) => setTimeout(r, 4_000));
  const own = await c.views([cut]);
  const accused = c.hosts.filter((h) => h.index !== cut && own.get(cut)?.get(h.nodeId) !== 'alive').map((h) => h.index);
  await c.healAll();
  const healed = Date.now();
  await c.waitConverged(CONVERGE_MS);
  t.diagnostic(`majority declared the isolated host dead after ${detected} ms; the isolated host held ${accused.length} others as not alive (${accused.join(',') || 'none'}); converged ${Date.now() - healed} ms after healing`);
  for (const i of [0, 1, 2]) assert.equal(await c.stateOf(i, cut), 'alive');
});

test('asymmetric link: packets from host 0 to host 1 dropped, yet nobody is declared dead, and the link heals cleanly', opts, async (t) => {
  const c = await cluster(t, 4);
  await c.cut(0, 1, 'one-way');
  const w = await watch(c, 15_000);
  await c.healAll();
  const after = await c.waitConverged(CONVERGE_MS);
  const deaths = [...w.seen].filter((s) => s.endsWith(':dead'));
  const suspicions = [...w.seen].filter((s) => s.endsWith(':suspect'));
  t.diagnostic(`one-way cut for 15 s: ${w.changes} state changes seen in ${w.polls} polls, suspicions ${suspicions.join(' ') || 'none'}, deaths ${deaths.join(' ') || 'none'}; converged ${after} ms after healing`);
  assert.deepEqual(deaths, [], 'indirect probes through the other hosts must keep both ends alive');
});

test('flapping link: a host cut off for 0.7 s out of every 3 s is suspected at most, never dead, and ends alive', opts, async (t) => {
  const c = await cluster(t, 4);
  const flapper = 2;
  const w = await watch(c, 17_000, async () => {
    for (let k = 0; k < 5; k++) {
      await c.isolate(flapper);
      await new Promise((r) => setTimeout(r, 700));
      await c.healAll();
      await new Promise((r) => setTimeout(r, 2_300));
    }
  });
  const after = await c.waitConverged(CONVERGE_MS);
  const deaths = [...w.seen].filter((s) => s.endsWith(':dead'));
  t.diagnostic(`5 flaps of 0.7 s: ${w.changes} state changes seen in ${w.polls} polls, deaths ${deaths.join(' ') || 'none'}; converged ${after} ms after the last flap`);
  assert.deepEqual(deaths, [], 'suspicion must absorb outages shorter than the suspicion timeout');
});

test('latency: with 50 ± 10 ms each way through the fault proxy the cluster converges and stays converged', opts, async (t) => {
  const c = await cluster(t, 4, { proxy: { delayMs: 50, jitterMs: 10 } });
  const w = await watch(c, 15_000);
  const delays = c.hosts.flatMap((h) => h.proxy!.stats.delays);
  const mean = delays.reduce((a, b) => a + b, 0) / Math.max(1, delays.length);
  const conns = c.hosts.reduce((a, h) => a + h.proxy!.stats.connections, 0);
  const bad = [...w.seen].filter((s) => !s.endsWith(':alive'));
  t.diagnostic(`${delays.length} delayed segments, mean ${mean.toFixed(1)} ms, min ${Math.min(...delays).toFixed(1)}, max ${Math.max(...delays).toFixed(1)}; ${conns} proxied connections; ${w.changes} state changes in ${w.polls} polls; non-alive observations: ${bad.join(' ') || 'none'}`);
  assert.ok(delays.length > 100, 'peer traffic went through the proxies');
  assert.ok(mean >= 40 && mean <= 60, `mean delay ${mean}`);
  assert.deepEqual(bad.filter((s) => s.endsWith(':dead')), []);
  assert.ok(await c.converged());
});

interface Acked {
  name: string;
  sha: string;
  size: number;
  fileId: string;
}

test('crash-restart loop: kill -9 and restart random hosts under a file workload; membership converges and the history checks out', { ...opts, timeout: 180_000 }, async (t) => {
  const c = await cluster(t, 5);
  const random = createPrng(Number(process.env.TESSERA_NETNS_SEED ?? 1), 'crash-loop');
  const acked: Acked[] = [];
  const removed: Acked[] = [];
  let failedPuts = 0;
  let kills = 0;
  // Bounded in kills and in time: a restart takes a few seconds on a loaded machine.
  const KILLS = 4;
  const end = Date.now() + 60_000;
  const live = () => c.hosts.filter((h) => c.running(h.index));

  const workload = (async () => {
    for (let k = 0; k < 40 && kills < KILLS && Date.now() < end; k++) {
      const via = live()[randomInt(random, live().length)];
      if (!via) continue;
      const body = randomBytes(48 * 1024 + randomInt(random, 64 * 1024));
      const name = `crash/${k}`;
      try {
        const r = await via.client.put(Readable.from([body]), { name, chunkSize: 16 * 1024 });
        acked.push({ name, sha: createHash('sha256').update(body).digest('hex'), size: body.length, fileId: r.fileId });
      } catch {
        failedPuts++; // An unacknowledged put may or may not exist; the checker ignores it.
      }
      if (acked.length > 3 && randomInt(random, 4) === 0) {
        const victim = acked.splice(randomInt(random, acked.length), 1)[0]!;
        const rmVia = live()[randomInt(random, live().length)];
        try {
          await rmVia?.client.rm(victim.name);
          removed.push(victim);
        } catch {
          // Unacknowledged: it may or may not be gone, so the checker expects neither.
        }
      }
    }
  })();

  for (let round = 0; round < 12 && kills < KILLS && Date.now() < end; round++) {
    await new Promise((r) => setTimeout(r, 1_000 + randomInt(random, 1_000)));
    const up = live();
    // Keep a majority up, so writes have a quorum to reach.
    if (up.length <= 3) continue;
    const victim = up[randomInt(random, up.length)]!;
    await c.kill(victim.index, 'SIGKILL');
    kills++;
    await new Promise((r) => setTimeout(r, 1_000 + randomInt(random, 1_500)));
    await c.start([victim.index]);
  }
  await workload;
  const down = c.hosts.filter((h) => !c.running(h.index)).map((h) => h.index);
  if (down.length > 0) await c.start(down);
  t.diagnostic(`loop over after ${kills} kills: ${await c.describe()}`);
  const convergedIn = await c.waitConverged(CONVERGE_MS);

  // The history check: every acknowledged put is readable, byte for byte, through every host;
  // every acknowledged delete is gone everywhere.
  let reads = 0;
  let missing = 0;
  const failures: string[] = [];
  const checkEnd = Date.now() + 60_000;
  for (const h of c.hosts) {
    for (const a of acked) {
      // One deadline for the whole check keeps a cluster that lost data from hanging the suite.
      const got = await waitFor(`${a.name} through host ${h.index}`, Math.max(500, checkEnd - Date.now()), async () => {
        const r = await h.client.get(a.fileId);
        const hash = createHash('sha256');
        for await (const b of r.stream as AsyncIterable<Buffer>) hash.update(b);
        return hash.digest('hex');
      }).catch((e: unknown) => {
        failures.push(`${a.name} via host ${h.index}: ${(e as Error).message}`);
        return undefined;
      });
      reads++;
      if (got !== a.sha) {
        missing++;
        if (got !== undefined) failures.push(`${a.name} via host ${h.index}: wrong bytes`);
      }
    }
    for (const r of removed) {
      await assert.rejects(h.client.get(r.name), `deleted ${r.name} must be gone through host ${h.index}`);
    }
  }
  t.diagnostic(`${kills} kill -9 and restarts; ${acked.length} acknowledged puts, ${removed.length} deletes, ${failedPuts} failed puts; converged ${convergedIn} ms after the loop; ${reads} reads, ${missing} wrong or missing`);
  assert.equal(kills, KILLS, `only ${kills} kills within the time bound`);
  assert.ok(acked.length > 0, 'the workload stored something');
  assert.equal(missing, 0, `bytes lost:\n${failures.slice(0, 10).join('\n')}`);
});
