/**
 * Membership as one piece: input validation of every RPC, precedence and refutation, bounds. The
 * peer side is a scripted MembershipNet; timing runs on a SimClock.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CALL_GRACE_MS, DEFAULT_MEMBERSHIP_CONFIG, Membership, MAX_CONCURRENT_INDIRECT_PROBES, type MemberInfo, type MembershipNet } from '../../../src/cluster/membership.js';
import { BroadcastQueue } from '../../../src/cluster/membership-broadcast.js';
import { MAX_INCARNATION_STEP, compareRecords, refutationIncarnation, restartIncarnation, retransmitLimit } from '../../../src/cluster/membership-rules.js';
import {
  MAX_ADDR_CHARS,
  MAX_INCARNATION,
  MAX_MEMBERS,
  MAX_NODE_ID_CHARS,
  MAX_SYNC_RECORDS,
  MAX_UPDATES_PER_MESSAGE,
  type MemberState,
  type WireRecord,
} from '../../../src/cluster/membership-wire.js';
import { createPrng } from '../../../src/cluster/sim/prng.js';
import { SimClock } from '../../../src/cluster/sim/sim-clock.js';
import { isTesseraError, TesseraError } from '../../../src/errors.js';

const never: MembershipNet = { call: () => new Promise(() => {}) };
const refusing: MembershipNet = { call: () => Promise.reject(new TesseraError('UNAVAILABLE', 'refused')) };

function make(net: MembershipNet = refusing, extra: Partial<ConstructorParameters<typeof Membership>[0]> = {}) {
  const clock = new SimClock();
  const m = new Membership({
    self: { nodeId: 'me', addr: 'me:1' },
    net,
    clock,
    random: createPrng(1),
    seeds: [],
    localStats: () => ({ capacity: 100, used: 10 }),
    ...extra,
  });
  const changes: [MemberInfo, MemberState | undefined][] = [];
  m.on('change', (i, p) => changes.push([i, p]));
  m.start();
  return { m, clock, changes };
}

function rec(nodeId: string, state: MemberState = 'alive', incarnation = 0, more: Partial<WireRecord> = {}): WireRecord {
  return { nodeId, addr: `${nodeId}:1`, state, incarnation, capacity: 5, used: 1, statsVersion: 1, ...more };
}

const ping = (from: WireRecord, updates: WireRecord[] = []) => ({ from, updates });

async function rejects(p: Promise<unknown>, code: string, pattern: RegExp): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(isTesseraError(e), `expected a TesseraError, got ${String(e)}`);
    assert.equal(e.code, code);
    assert.match(e.message, pattern);
    return true;
  });
}

test('malformed membership messages are rejected with BAD_INPUT naming the field', async () => {
  const { m } = make();
  await rejects(m.handle('member.ping', null), 'BAD_INPUT', /malformed member\.ping/);
  await rejects(m.handle('member.ping', { from: rec('a'), updates: 'x' }), 'BAD_INPUT', /updates/);
  await rejects(m.handle('member.ping', ping(rec('a', 'alive', -1))), 'BAD_INPUT', /from\.incarnation/);
  await rejects(m.handle('member.ping', ping(rec('a', 'zombie' as MemberState))), 'BAD_INPUT', /from\.state/);
  await rejects(m.handle('member.ping', ping(rec('a', 'alive', 0, { capacity: 1.5 }))), 'BAD_INPUT', /capacity/);
  await rejects(m.handle('member.ping', ping(rec('a', 'alive', 0, { addr: 'has space:1' }))), 'BAD_INPUT', /printable/);
  await rejects(m.handle('member.ping-req', { from: rec('a'), updates: [] }), 'BAD_INPUT', /target/);
  await rejects(m.handle('member.sync', { from: rec('a'), members: {} }), 'BAD_INPUT', /members/);
  await rejects(m.handle('member.nonsense', {}), 'BAD_INPUT', /unknown membership method/);
  // Nothing malformed was taken in.
  assert.deepEqual(m.members().map((x) => x.nodeId), ['me']);
});

test('length bounds: ids, addresses, update lists and sync lists are checked at their limits', async () => {
  const { m } = make();
  await m.handle('member.ping', ping(rec('x'.repeat(MAX_NODE_ID_CHARS))));
  await rejects(m.handle('member.ping', ping(rec('x'.repeat(MAX_NODE_ID_CHARS + 1)))), 'BAD_INPUT', /from\.nodeId/);
  await m.handle('member.ping', ping(rec('b', 'alive', 0, { addr: 'a'.repeat(MAX_ADDR_CHARS) })));
  await rejects(m.handle('member.ping', ping(rec('c', 'alive', 0, { addr: 'a'.repeat(MAX_ADDR_CHARS + 1) }))), 'BAD_INPUT', /from\.addr/);
  const ups = (n: number) => Array.from({ length: n }, (_, i) => rec(`u${i}`));
  await m.handle('member.ping', ping(rec('d'), ups(MAX_UPDATES_PER_MESSAGE)));
  await rejects(m.handle('member.ping', ping(rec('d'), ups(MAX_UPDATES_PER_MESSAGE + 1))), 'BAD_INPUT', new RegExp(`at most ${MAX_UPDATES_PER_MESSAGE}`));
  const many = Array.from({ length: MAX_SYNC_RECORDS + 1 }, (_, i) => rec(`s${i}`, 'dead'));
  await rejects(m.handle('member.sync', { from: rec('d'), members: many }), 'BAD_INPUT', new RegExp(`at most ${MAX_SYNC_RECORDS}`));
  await m.handle('member.sync', { from: rec('d'), members: many.slice(0, MAX_SYNC_RECORDS) });
  const reply = (await m.handle('member.sync', { from: rec('d'), members: [] })) as { members: WireRecord[] };
  assert.equal(reply.members.length, MAX_SYNC_RECORDS, 'a full-state reply is capped too');
  assert.equal(reply.members[0]!.nodeId, 'me');
});

test('the member table is bounded: old dead members are evicted, live ones are never displaced', async () => {
  const { m } = make();
  for (let b = 0; b * MAX_SYNC_RECORDS < MAX_MEMBERS; b++) {
    const batch = Array.from({ length: MAX_SYNC_RECORDS }, (_, i) => rec(`dead-${b}-${i}`, 'dead'));
    await m.handle('member.sync', { from: rec('peer'), members: batch });
  }
  assert.equal(m.members().length, MAX_MEMBERS);
  assert.equal(m.get('peer')?.state, 'alive');
  await m.handle('member.ping', ping(rec('newcomer')));
  assert.equal(m.members().length, MAX_MEMBERS);
  assert.equal(m.get('newcomer')?.state, 'alive');
  assert.equal(m.get('dead-0-0'), undefined, 'the oldest dead member makes room');
});

test('a message whose sender differs from the authenticated peer is refused with AUTH', async () => {
  const { m } = make();
  await rejects(m.handle('member.ping', ping(rec('mallory')), { peerNodeId: 'alice' }), 'AUTH', /claims to be from mallory/);
  assert.equal(m.get('mallory'), undefined);
  await m.handle('member.ping', ping(rec('alice')), { peerNodeId: 'alice' });
  assert.equal(m.get('alice')?.state, 'alive');
});

test('hearing itself suspected or dead, a node raises its incarnation and says so in its reply', async () => {
  const { m, changes } = make(refusing, { incarnation: 4 });
  const r1 = (await m.handle('member.ping', ping(rec('a'), [rec('me', 'suspect', 4)]))) as { from: WireRecord };
  assert.equal(m.incarnation, 5);
  assert.equal(r1.from.incarnation, 5);
  assert.equal(r1.from.state, 'alive');
  // Stale accusations (older incarnation) are ignored; an 'alive' newer than ours is outbid too.
  await m.handle('member.ping', ping(rec('a'), [rec('me', 'dead', 3)]));
  assert.equal(m.incarnation, 5);
  await m.handle('member.ping', ping(rec('a'), [rec('me', 'alive', 9)]));
  assert.equal(m.incarnation, 10);
  assert.ok(changes.some(([i]) => i.nodeId === 'me' && i.incarnation === 10), 'the bump is announced so the node can persist it');
});

test('precedence: higher incarnation wins; at equal incarnation alive < suspect < dead < left', async () => {
  const { m, clock, changes } = make(never);
  await m.handle('member.ping', ping(rec('a', 'alive', 2)));
  assert.deepEqual(changes.at(-1)!.map((x) => (typeof x === 'object' ? x.state : x)), ['alive', undefined]);
  await m.handle('member.gossip', ping(rec('b'), [rec('a', 'suspect', 1)]));
  assert.equal(m.get('a')?.state, 'alive', 'an accusation against an older incarnation is stale');
  await m.handle('member.gossip', ping(rec('b'), [rec('a', 'suspect', 2)]));
  assert.equal(m.get('a')?.state, 'suspect');
  await m.handle('member.gossip', ping(rec('b'), [rec('a', 'alive', 2)]));
  assert.equal(m.get('a')?.state, 'suspect', 'alive at the same incarnation cannot clear a suspicion');
  await m.handle('member.gossip', ping(rec('b'), [rec('a', 'alive', 3)]));
  assert.equal(m.get('a')?.state, 'alive');
  await m.handle('member.gossip', ping(rec('b'), [rec('a', 'left', 3)]));
  assert.equal(m.get('a')?.state, 'left');
  await m.handle('member.gossip', ping(rec('b'), [rec('a', 'dead', 3)]));
  assert.equal(m.get('a')?.state, 'left');
  await m.handle('member.gossip', ping(rec('b'), [rec('a', 'alive', 4)]));
  assert.equal(m.get('a')?.state, 'alive', 'a restarted member comes back with a higher incarnation');
  // A suspicion heard by gossip runs out into 'dead' unless refuted.
  await m.handle('member.gossip', ping(rec('b'), [rec('a', 'suspect', 4)]));
  await clock.runFor(1_999);
  assert.equal(m.get('a')?.state, 'suspect');
  // The suspicion has run out; a last direct ping (unanswered here) decides.
  await clock.runFor(2);
  assert.equal(m.get('a')?.state, 'suspect');
  await clock.runFor(DEFAULT_MEMBERSHIP_CONFIG.probeTimeoutMs + CALL_GRACE_MS);
  assert.equal(m.get('a')?.state, 'dead');
  m.stop();
});

test('stats updates travel with a version and never go backwards', async () => {
  const { m, changes } = make(never);
  await m.handle('member.ping', ping(rec('a', 'alive', 1, { capacity: 10, used: 1, statsVersion: 5 })));
  await m.handle('member.ping', ping(rec('b')));
  const n = changes.length;
  await m.handle('member.gossip', ping(rec('b'), [rec('a', 'alive', 1, { capacity: 10, used: 7, statsVersion: 6 })]));
  assert.equal(m.get('a')?.used, 7);
  assert.equal(changes.length, n + 1);
  await m.handle('member.gossip', ping(rec('b'), [rec('a', 'alive', 1, { capacity: 10, used: 2, statsVersion: 5 })]));
  assert.equal(m.get('a')?.used, 7);
  m.stop();
});

test('a full-state merge turns a remote "dead" into "suspect" for a member we hold alive', async () => {
  const { m } = make(never);
  await m.handle('member.ping', ping(rec('a', 'alive', 1)));
  await m.handle('member.sync', { from: rec('b'), members: [rec('a', 'dead', 1), rec('z', 'dead', 0)] });
  assert.equal(m.get('a')?.state, 'suspect');
  assert.equal(m.get('z')?.state, 'dead', 'a member never seen alive is recorded as reported');
  m.stop();
});

test('indirect probes served at once are bounded', async () => {
  const { m } = make(never);
  const body = (i: number) => ({ from: rec(`r${i}`), target: { nodeId: 't', addr: 't:1' }, updates: [] });
  const pending = Array.from({ length: MAX_CONCURRENT_INDIRECT_PROBES }, (_, i) => m.handle('member.ping-req', body(i)));
  await rejects(m.handle('member.ping-req', body(99)), 'UNAVAILABLE', /too many indirect probes/);
  void pending;
  m.stop();
});

test('an indirect probe answers whether the target acked, and records the target as seen', async () => {
  const calls: { addr: string; method: string; expect?: string }[] = [];
  const net: MembershipNet = {
    async call(addr, method, _body, opts) {
      calls.push({ addr, method, ...(opts.expectNodeId ? { expect: opts.expectNodeId } : {}) });
      if (addr === 't:1') return { from: rec('t', 'alive', 3), updates: [] };
      throw new TesseraError('TIMEOUT', 'no answer');
    },
  };
  const { m } = make(net);
  const ok = (await m.handle('member.ping-req', { from: rec('r'), target: { nodeId: 't', addr: 't:1' }, updates: [] })) as { ok: boolean };
  assert.equal(ok.ok, true);
  assert.deepEqual(calls.at(-1), { addr: 't:1', method: 'member.ping', expect: 't' });
  assert.equal(m.get('t')?.incarnation, 3);
  assert.ok(m.get('t')!.lastSeen >= 0);
  const no = (await m.handle('member.ping-req', { from: rec('r'), target: { nodeId: 'u', addr: 'u:1' }, updates: [] })) as { ok: boolean };
  assert.equal(no.ok, false);
  m.stop();
});

test('a malformed reply from a peer counts as a failed probe, not a crash', async () => {
  const net: MembershipNet = { call: async () => ({ from: { nodeId: 42 }, updates: [] }) };
  const { m, clock } = make(net, { config: { suspicionTimeoutMs: 1000 } });
  await m.handle('member.ping', ping(rec('a')));
  await clock.runFor(5_000);
  // Its only peer never gave a valid ack and there is nobody to ask for an indirect probe.
  assert.equal(m.get('a')?.state, 'dead');
  m.stop();
});

test('configuration outside its bounds is refused', () => {
  for (const config of [{ probeIntervalMs: 0 }, { indirectProbes: -1 }, { maxUpdatesPerMessage: MAX_UPDATES_PER_MESSAGE + 1 }, { suspicionTimeoutMs: Number.NaN }]) {
    assert.throws(
      () => new Membership({ self: { nodeId: 'me', addr: 'me:1' }, net: never, clock: new SimClock(), random: Math.random, seeds: [], localStats: () => ({ capacity: 0, used: 0 }), config }),
      (e) => isTesseraError(e, 'BAD_INPUT') && /membership config/.test(e.message),
    );
  }
});

test('an address book seeds contacts and is remembered as dead until heard from', async () => {
  const contacted: string[] = [];
  const net: MembershipNet = {
    async call(addr) {
      contacted.push(addr);
      throw new TesseraError('UNAVAILABLE', 'refused');
    },
  };
  const book: MemberInfo[] = [{ nodeId: 'old', addr: 'old:1', state: 'alive', incarnation: 3, capacity: 1, used: 0, zone: '', lastSeen: 5 }];
  const { m, clock } = make(net, { addressBook: book });
  assert.equal(m.get('old')?.state, 'dead');
  await clock.runFor(100);
  assert.ok(contacted.includes('old:1'));
  m.stop();
});

test('stop() halts every timer; handle() then refuses', async () => {
  const { m, clock } = make(refusing, { seeds: ['s:1'] });
  await clock.runFor(1_000);
  m.stop();
  assert.equal(clock.pending, 0);
  await rejects(m.handle('member.ping', ping(rec('a'))), 'UNAVAILABLE', /not running/);
});

test('rules: record precedence and retransmit limit', () => {
  assert.ok(compareRecords(2, 'alive', 1, 'dead') > 0);
  assert.ok(compareRecords(1, 'suspect', 1, 'alive') > 0);
  assert.ok(compareRecords(1, 'alive', 1, 'suspect') < 0);
  assert.ok(compareRecords(1, 'left', 1, 'dead') > 0);
  assert.equal(compareRecords(3, 'dead', 3, 'dead'), 0);
  assert.equal(retransmitLimit(4, 9), 4);
  assert.equal(retransmitLimit(4, 20), 8);
  assert.equal(retransmitLimit(4, 1000), 16);
});

test('broadcast queue: newest record per member, least-sent first, dropped after the limit', () => {
  const q = new BroadcastQueue();
  q.enqueue(rec('a', 'alive', 1));
  q.enqueue(rec('a', 'suspect', 1));
  q.enqueue(rec('b'));
  assert.equal(q.size, 2);
  const first = q.take(1, 2);
  assert.equal(first[0]!.nodeId, 'b', 'equal send counts: newest first');
  const second = q.take(1, 2);
  assert.equal(second[0]!.nodeId, 'a');
  assert.equal(second[0]!.state, 'suspect');
  assert.deepEqual(q.take(5, 2, 'a').map((r) => r.nodeId), ['b']);
  assert.equal(q.size, 1, 'b reached its limit of 2 sends');
  assert.deepEqual(q.take(5, 2).map((r) => r.nodeId), ['a']);
  assert.equal(q.size, 0);
});

test('broadcast queue selection matches a full sort by (sends, newest) (property)', async () => {
  const fc = (await import('fast-check')).default;
  fc.assert(
    fc.property(fc.array(fc.integer({ min: 0, max: 30 }), { maxLength: 60 }), fc.integer({ min: 1, max: 20 }), (keys, max) => {
      const q = new BroadcastQueue();
      const model = new Map<string, { seq: number; sent: number }>();
      keys.forEach((k, seq) => {
        q.enqueue(rec(`k${k}`));
        model.set(`k${k}`, { seq, sent: 0 });
      });
      for (let round = 0; round < 4; round++) {
        const expected = [...model.entries()]
          .sort((a, b) => a[1].sent - b[1].sent || b[1].seq - a[1].seq)
          .slice(0, max)
          .map(([id]) => id);
        const got = q.take(max, 3).map((r) => r.nodeId);
        assert.deepEqual(got, expected);
        for (const id of expected) {
          const e = model.get(id)!;
          if (++e.sent >= 3) model.delete(id);
        }
        assert.equal(q.size, model.size);
      }
    }),
    { numRuns: 200 },
  );
});

test('a suspect that answers the last ping before its death is kept, with its refutation', async () => {
  let refute = false;
  const net: MembershipNet = {
    async call(_addr, _method, body) {
      const b = body as { updates: WireRecord[] };
      // The suspect only answers once it is told of the accusation, and then refutes it.
      if (refute && b.updates.some((u) => u.nodeId === 'a' && u.state === 'suspect')) return { from: rec('a', 'alive', 2), updates: [] };
      throw new TesseraError('TIMEOUT', 'no answer');
    },
  };
  const { m, clock } = make(net);
  await m.handle('member.ping', ping(rec('a', 'alive', 1)));
  await m.handle('member.gossip', ping(rec('b'), [rec('a', 'suspect', 1)]));
  refute = true;
  await clock.runFor(DEFAULT_MEMBERSHIP_CONFIG.suspicionTimeoutMs + 10);
  assert.equal(m.get('a')?.state, 'alive');
  assert.equal(m.get('a')?.incarnation, 2);
  m.stop();
});

test('a transport that never settles cannot wedge membership: calls time out on the membership clock', async () => {
  const { m, clock } = make(never, { seeds: ['s:1'] });
  await m.handle('member.ping', ping(rec('a', 'alive', 1)));
  await clock.runFor(10_000);
  assert.equal(m.get('a')?.state, 'dead');
  m.stop();
});

test('a peer repeating a stale accusation gets our newer record in the reply', async () => {
  const { m } = make(never);
  await m.handle('member.ping', ping(rec('a', 'alive', 5)));
  const reply = (await m.handle('member.gossip', ping(rec('b'), [rec('a', 'suspect', 4)]))) as { updates: WireRecord[] };
  const fix = reply.updates.find((u) => u.nodeId === 'a');
  assert.ok(fix, 'the reply should correct the sender');
  assert.equal(fix.state, 'alive');
  assert.equal(fix.incarnation, 5);
  m.stop();
});

test('an accusation far above our incarnation is ignored: a refutation never jumps to a value the accuser chose', async () => {
  const { m } = make(refusing, { incarnation: 4 });
  await m.handle('member.ping', ping(rec('x'), [rec('me', 'dead', Number.MAX_SAFE_INTEGER)])).then(
    () => assert.fail('an incarnation beyond MAX_INCARNATION must be refused on the wire'),
    (e: unknown) => assert.ok(isTesseraError(e, 'BAD_INPUT')),
  );
  await m.handle('member.ping', ping(rec('x'), [rec('me', 'dead', MAX_INCARNATION)]));
  assert.equal(m.incarnation, 4);
  await m.handle('member.ping', ping(rec('x'), [rec('me', 'suspect', 4 + MAX_INCARNATION_STEP + 1)]));
  assert.equal(m.incarnation, 4);
  // Within the step a stale 'alive' from before a restart is still outbid.
  await m.handle('member.ping', ping(rec('x'), [rec('me', 'suspect', 4 + MAX_INCARNATION_STEP)]));
  assert.equal(m.incarnation, 5 + MAX_INCARNATION_STEP);
});

test('second-hand records far ahead of what we hold are ignored; the member itself is believed', async () => {
  const { m } = make();
  await m.handle('member.ping', ping(rec('a', 'alive', 3)));
  await m.handle('member.ping', ping(rec('x'), [rec('a', 'dead', 3 + MAX_INCARNATION_STEP + 1)]));
  assert.equal(m.get('a')?.state, 'alive');
  assert.equal(m.get('a')?.incarnation, 3);
  // A forged record about a member we did not know yet gets in, but the member's own word replaces it.
  await m.handle('member.ping', ping(rec('x'), [rec('b', 'dead', 1_000_000)]));
  assert.equal(m.get('b')?.state, 'dead');
  await m.handle('member.ping', ping(rec('b', 'alive', 2)));
  assert.equal(m.get('b')?.state, 'alive');
  assert.equal(m.get('b')?.incarnation, 2);
});

test('restart incarnation: one above the saved value; out of range starts over instead of failing', () => {
  assert.deepEqual(restartIncarnation(undefined), { incarnation: 1, reset: false });
  assert.deepEqual(restartIncarnation(7), { incarnation: 8, reset: false });
  for (const bad of [Number.MAX_SAFE_INTEGER + 1, MAX_INCARNATION, -1, 1.5, 'x', null]) {
    assert.deepEqual(restartIncarnation(bad), { incarnation: 0, reset: true });
  }
  assert.equal(refutationIncarnation(MAX_INCARNATION, MAX_INCARNATION), undefined);
});
