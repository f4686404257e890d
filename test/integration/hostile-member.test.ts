/**
 * An admitted member turned hostile, against real node processes: it completes the real
 * handshake with a joined identity, then sends a header claiming gigabytes, a control section
 * holding a 200 KiB CBOR bignum, and accusations at incarnations it chose. The victim must stay
 * small and responsive, nobody may declare it dead, and it must restart cleanly afterwards.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { LocalCluster } from '../../src/cli/local-cluster.js';
import { connect } from '../../src/client/index.js';
import { MAX_INCARNATION } from '../../src/cluster/membership-wire.js';
import { MAX_INCARNATION_STEP } from '../../src/cluster/membership-rules.js';
import { FRAME_HEADER_BYTES, FrameKind, encodeControl, encodeFrame } from '../../src/wire/index.js';
import { admittedPeer, closedWithin } from '../helpers/admitted-peer.js';

const RSS_GROWTH_LIMIT_BYTES = 64 << 20;
const API_ANSWER_MS = 1000;
const MONITOR_INTERVAL_MS = 200;

async function rssBytes(pid: number): Promise<number> {
  const m = /VmRSS:\s+(\d+) kB/.exec(await readFile(`/proc/${pid}/status`, 'utf8'));
  return Number(m?.[1] ?? 0) * 1024;
}

test('an admitted member cannot exhaust, freeze or cut off a node', async (t) => {
  const cluster = await LocalCluster.create({ nodes: 3, logLevel: 'info', nodeArgs: ['--probe-interval', '300', '--suspicion-timeout', '1500'] });
  t.after(() => cluster.destroy({ keep: process.env.KEEP === '1' }));
  await cluster.waitForMembers({ alive: 3 });
  if (process.env.KEEP === '1') console.log('cluster dir', cluster.dir);
  const victim = cluster.node(1);
  const pid = victim.proc!.pid!;
  const attacker = await admittedPeer(join(cluster.dir, 'attacker'), cluster.keys);

  // Watch the victim for the whole attack: memory, API latency, and what the others think of it.
  const baseRss = await rssBytes(pid);
  let peakRss = baseRss;
  let slowAnswers = 0;
  let samples = 0;
  const seenAs = new Set<string>();
  let monitoring = true;
  const fastClient = connect({ api: victim.api, token: victim.apiToken, timeoutMs: API_ANSWER_MS });
  const monitor = (async () => {
    while (monitoring) {
      peakRss = Math.max(peakRss, await rssBytes(pid));
      try {
        await fastClient.status();
      } catch {
        slowAnswers++;
      }
      for (const i of [0, 2]) {
        const peers = await cluster.node(i).client.peers();
        const v = peers.find((p) => p.nodeId === victim.nodeId);
        if (v) seenAs.add(v.state);
      }
      samples++;
      await new Promise((r) => setTimeout(r, MONITOR_INTERVAL_MS));
    }
  })();

  // 1. A REQUEST header claiming ~3.75 GiB, then 16 MiB of bytes: refused on the header.
  const a1 = await attacker.dial(victim.listen);
  const head = Buffer.alloc(FRAME_HEADER_BYTES);
  head.writeUInt32BE(0xf000_0000, 0);
  head.writeUInt8(FrameKind.REQUEST, 4);
  head.writeUInt32BE(1, 8);
  a1.socket.write(head);
  const junk = Buffer.alloc(1 << 20, 0x41);
  for (let i = 0; i < 16 && !a1.socket.destroyed; i++) a1.socket.write(junk);
  assert.ok(await closedWithin(a1.socket, 10_000), 'the victim closed the connection after the over-limit header');

  // 2. A control section that is one 200 KiB bignum (decoding took 29 s before).
  const a2 = await attacker.dial(victim.listen);
  const digits = Buffer.alloc(200 << 10, 0xff);
  const bignum = Buffer.concat([Buffer.from([0xc2, 0x5a, 0, 0, 0, 0]), digits]);
  bignum.writeUInt32BE(digits.length, 2);
  for (const part of encodeFrame(FrameKind.REQUEST, 1, bignum)) a2.socket.write(part);
  assert.ok(await closedWithin(a2.socket, 10_000), 'the victim closed the connection after the bignum');

  // 2b. A membership message carrying a payload, which no membership method takes.
  const a3 = await attacker.dial(victim.listen);
  for (const part of encodeFrame(FrameKind.REQUEST, 1, encodeControl({ m: 'member.ping', b: null }), Buffer.alloc(1 << 20))) a3.socket.write(part);
  assert.ok(await closedWithin(a3.socket, 10_000), 'the victim closed the connection after a payload on a membership call');

  // 3. Accusations at incarnations the accuser chose, to the victim and to the others.
  const me = { nodeId: attacker.identity.credentials.nodeId, addr: '127.0.0.1:1', state: 'left', incarnation: 0, capacity: 0, used: 0, statsVersion: 0 };
  const accuse = (incarnation: number) => ({ nodeId: victim.nodeId, addr: victim.listen, state: 'dead', incarnation, capacity: 0, used: 0, statsVersion: 0 });
  const before = (await cluster.node(0).client.peers()).find((p) => p.nodeId === victim.nodeId)!.incarnation;
  for (const target of [victim, cluster.node(0), cluster.node(2)]) {
    const rpc = await attacker.rpc(target.listen);
    await assert.rejects(rpc.call('member.gossip', { from: me, updates: [accuse(Number.MAX_SAFE_INTEGER)] }, undefined), /incarnation/);
    for (const inc of [MAX_INCARNATION, before + MAX_INCARNATION_STEP + 1, 2 ** 40]) {
      await rpc.call('member.gossip', { from: me, updates: [accuse(Math.min(inc, MAX_INCARNATION))] }, undefined).catch(() => undefined);
    }
    rpc.close('done');
  }
  // Let several probe and suspicion periods pass with the forged records in the cluster.
  await new Promise((r) => setTimeout(r, 4000));
  monitoring = false;
  await monitor;

  assert.ok(samples >= 10, `monitored ${samples} times`);
  assert.equal(slowAnswers, 0, `the victim's API missed the ${API_ANSWER_MS} ms bound ${slowAnswers} of ${samples} times`);
  assert.ok(peakRss - baseRss < RSS_GROWTH_LIMIT_BYTES, `victim RSS grew by ${((peakRss - baseRss) / 2 ** 20).toFixed(1)} MiB`);
  assert.deepEqual([...seenAs], ['alive'], `the others saw the victim as ${[...seenAs].join(', ')}`);
  const after = await cluster.node(0).client.peers();
  const v = after.find((p) => p.nodeId === victim.nodeId)!;
  assert.equal(v.state, 'alive');
  assert.ok(v.incarnation <= before + MAX_INCARNATION_STEP + 1, `victim incarnation ${v.incarnation} stayed near ${before}`);

  const log = await readFile(join(cluster.dir, 'node1.log'), 'utf8');
  const violations = log.split('\n').filter((l) => l.includes('closing connection after a protocol violation'));
  assert.ok(violations.some((l) => /REQUEST payload of \d+ bytes exceeds the limit/.test(l)), 'the over-limit header is logged with its reason');
  assert.ok(violations.some((l) => /tag 2 is not accepted/.test(l)), 'the bignum is logged with its reason');
  assert.ok(violations.some((l) => /member\.ping takes at most 0 payload bytes/.test(l)), 'the payload on a membership call is logged');
  assert.match(log, /ignoring a membership record whose incarnation jumps far beyond/);

  // The victim restarts cleanly with what it persisted, and rejoins.
  await cluster.kill(1, 'SIGTERM');
  await cluster.start(1);
  await cluster.waitForMembers({ alive: 3 });
});
