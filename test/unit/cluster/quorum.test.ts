/** The failover-and-quorum loop: stand-ins in placement order, quorum met or not, cancellation. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TesseraError } from '../../../src/errors.js';
import { reachQuorum, type QuorumOutcome } from '../../../src/cluster/quorum.js';

const shortfall = (o: QuorumOutcome<unknown>) => new TesseraError('UNAVAILABLE', `reached ${o.done.length}; failed ${o.failed.map((f) => f.nodeId).join(',')}`);

test('a quorum is met despite failures, without stand-ins when none are needed', async () => {
  const tried: string[] = [];
  const out = await reachQuorum({
    ranked: ['a', 'b', 'c'],
    quorum: 2,
    attempt: async (node, slot, standIn) => {
      tried.push(`${node}/${slot}/${standIn}`);
      if (node === 'b') throw new Error('b is down');
      return node.toUpperCase();
    },
    shortfall,
  });
  assert.deepEqual(tried.sort(), ['a/0/false', 'b/1/false', 'c/2/false']);
  assert.deepEqual(out.done.map((d) => [d.nodeId, d.slot, d.value]).sort(), [['a', 0, 'A'], ['c', 2, 'C']]);
  assert.deepEqual(out.failed.map((f) => [f.nodeId, f.slot, (f.error as Error).message]), [['b', 1, 'b is down']]);
});

test('a failed node is replaced by the next usable one in placement order, each node used once', async () => {
  const tried: string[] = [];
  const out = await reachQuorum({
    ranked: ['a', 'b', 'c', 'held', 'd', 'e', 'f'],
    want: 3,
    quorum: 3,
    usable: (n) => n !== 'held',
    attempt: async (node, slot, standIn) => {
      tried.push(`${node}/${slot}/${standIn}`);
      if (node === 'a' || node === 'c' || node === 'd') throw new Error(`${node} failed`);
      return slot;
    },
    shortfall,
  });
  // Slots 0 (a) and 2 (c) fail; stand-ins come from d, e, f in order, 'held' skipped; d fails too.
  assert.deepEqual(out.done.map((d) => d.slot).sort(), [0, 1, 2]);
  assert.deepEqual(out.done.filter((d) => !d.standIn).map((d) => d.nodeId), ['b']);
  assert.deepEqual(out.done.filter((d) => d.standIn).map((d) => d.nodeId).sort(), ['e', 'f']);
  assert.ok(out.done.every((d) => d.value === d.slot));
  assert.deepEqual(out.failed.map((f) => f.nodeId).sort(), ['a', 'c', 'd']);
  const nodesTried = tried.map((t) => t.split('/')[0]!);
  assert.ok(!nodesTried.includes('held'), 'a held-down node is never a stand-in');
  assert.equal(new Set(nodesTried).size, nodesTried.length, 'no node is tried twice');
  assert.deepEqual(nodesTried.slice().sort(), ['a', 'b', 'c', 'd', 'e', 'f']);
  assert.ok(tried.includes('d/0/true') || tried.includes('d/2/true'), 'd stands in for a failed slot');
});

test('stand-ins run out: the plan falls short with every failure named', async () => {
  let thrown: unknown;
  try {
    await reachQuorum({
      ranked: ['a', 'b', 'c', 'd'],
      want: 2,
      quorum: 2,
      attempt: async (node) => {
        if (node !== 'a') throw new Error(`${node} refused`);
        return 1;
      },
      shortfall,
    });
  } catch (e) {
    thrown = e;
  }
  assert.ok(thrown instanceof TesseraError);
  assert.equal(thrown.code, 'UNAVAILABLE');
  assert.match(thrown.message, /^reached 1; failed /);
  assert.deepEqual(thrown.message.replace(/^reached 1; failed /, '').split(',').sort(), ['b', 'c', 'd']);
});

test('a quorum larger than the nodes there are falls short without a call too many', async () => {
  let calls = 0;
  await assert.rejects(
    reachQuorum({ ranked: [], quorum: 1, attempt: async () => void calls++, shortfall }),
    (e: unknown) => e instanceof TesseraError && e.message === 'reached 0; failed ',
  );
  assert.equal(calls, 0);
});

test('cancellation: an aborted plan makes no call, and an abort mid-way rethrows its reason without stand-ins', async () => {
  const ac = new AbortController();
  ac.abort(new TesseraError('CANCELLED', 'client went away'));
  let calls = 0;
  await assert.rejects(reachQuorum({ ranked: ['a'], quorum: 1, signal: ac.signal, attempt: async () => void calls++, shortfall }), { code: 'CANCELLED' });
  assert.equal(calls, 0);

  const mid = new AbortController();
  const tried: string[] = [];
  await assert.rejects(
    reachQuorum({
      ranked: ['a', 'b', 'c'],
      want: 1,
      quorum: 1,
      signal: mid.signal,
      attempt: async (node) => {
        tried.push(node);
        mid.abort(new TesseraError('CANCELLED', 'put cancelled'));
        throw new Error('connection reset');
      },
      shortfall,
    }),
    { code: 'CANCELLED', message: 'put cancelled' },
  );
  assert.deepEqual(tried, ['a']);
});

test('a plan that names a node twice is a bug, refused before any call', async () => {
  let calls = 0;
  await assert.rejects(reachQuorum({ ranked: ['a', 'a'], quorum: 1, attempt: async () => void calls++, shortfall }), { code: 'INTERNAL' });
  assert.equal(calls, 0);
});

/** An attempt that stays open until the test releases it. */
function gate<T>(): { promise: Promise<T>; open(v: T): void; fail(e: Error): void } {
  let open!: (v: T) => void;
  let fail!: (e: Error) => void;
  const promise = new Promise<T>((res, rej) => {
    open = res;
    fail = rej;
  });
  return { promise, open, fail };
}

test('early: settles on the quorum while a straggler is still out, and hands the straggler to late', async () => {
  const slow = gate<string>();
  const late: string[] = [];
  const out = await reachQuorum({
    ranked: ['a', 'b', 'c'],
    quorum: 2,
    early: true,
    attempt: async (node) => (node === 'c' ? slow.promise : node),
    late: (d) => late.push(`${d.nodeId}=${d.value}`),
    shortfall,
  });
  assert.deepEqual(out.done.map((d) => d.nodeId).sort(), ['a', 'b']);
  assert.deepEqual(late, []);
  slow.open('C');
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(late, ['c=C']);
  assert.deepEqual(out.done.map((d) => d.nodeId).sort(), ['a', 'b'], 'the answer already given does not change');
});

test('early: fails as soon as the open slots cannot make the quorum, without waiting for the last one', async () => {
  const slow = gate<string>();
  const late: string[] = [];
  let thrown: unknown;
  try {
    await reachQuorum({
      ranked: ['a', 'b', 'c'],
      quorum: 2,
      early: true,
      attempt: async (node) => {
        if (node === 'c') return slow.promise;
        throw new Error(`${node} down`);
      },
      late: (d) => late.push(d.nodeId),
      shortfall,
    });
  } catch (e) {
    thrown = e;
  }
  assert.ok(thrown instanceof TesseraError);
  assert.match(thrown.message, /^reached 0; failed /);
  assert.deepEqual(thrown.message.replace(/^reached 0; failed /, '').split(',').sort(), ['a', 'b']);
  slow.open('C');
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(late, ['c']);
});

test('early: a wait-all plan with the same answers waits for the straggler', async () => {
  const slow = gate<string>();
  let settled = false;
  const p = reachQuorum({ ranked: ['a', 'b', 'c'], quorum: 2, attempt: async (node) => (node === 'c' ? slow.promise : node), shortfall }).then((o) => {
    settled = true;
    return o;
  });
  await new Promise((r) => setImmediate(r));
  assert.equal(settled, false);
  slow.open('C');
  assert.deepEqual((await p).done.map((d) => d.nodeId).sort(), ['a', 'b', 'c']);
});

test('early: fewer slots than the quorum fails before any call; late without early is a bug', async () => {
  let calls = 0;
  await assert.rejects(reachQuorum({ ranked: ['a'], quorum: 2, early: true, attempt: async () => void calls++, shortfall }), { code: 'UNAVAILABLE' });
  assert.equal(calls, 0);
  await assert.rejects(reachQuorum({ ranked: ['a'], quorum: 1, late: () => undefined, attempt: async () => void calls++, shortfall }), { code: 'INTERNAL' });
  assert.equal(calls, 0);
});
