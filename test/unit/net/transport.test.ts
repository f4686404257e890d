import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { TesseraError } from '../../../src/errors.js';
import type { Transport } from '../../../src/net/transport.js';
import { makeNode, waitFor } from './helpers.js';

const open: Transport[] = [];
after(async () => {
  await Promise.all(open.map((t) => t.close()));
});
async function node(...args: Parameters<typeof makeNode>) {
  const n = await makeNode(...args);
  open.push(n.t);
  return n;
}

const isErr = (code: string, pattern?: RegExp) => (e: unknown) => {
  assert.ok(e instanceof TesseraError, `expected TesseraError, got ${String(e)}`);
  assert.equal(e.code, code, e.message);
  if (pattern) assert.match(e.message, pattern);
  return true;
};

test('a 1 MiB payload round-trips byte-exact with its body', async () => {
  const a = await node();
  const b = await node();
  const payload = randomBytes(1 << 20);
  const r = await a.t.call(b.addr, 'chunk.put', { id: 'abc', n: 1 }, payload);
  assert.deepEqual(r.body, { method: 'chunk.put', body: { id: 'abc', n: 1 }, from: a.creds.nodeId });
  assert.equal(createHash('sha256').update(r.payload).digest('hex'), createHash('sha256').update(payload).digest('hex'));
  assert.equal(r.peer.nodeId, b.creds.nodeId);
  assert.equal(r.peer.clusterId, 'test-cluster');
  assert.ok(a.t.counters.bytesOut > 1 << 20 && a.t.counters.bytesIn > 1 << 20);
});

test('a scatter list payload arrives as one contiguous payload', async () => {
  const a = await node();
  const b = await node();
  const r = await a.t.call(b.addr, 'x', null, [Buffer.from('abc'), Buffer.from('def')]);
  assert.equal(r.payload.toString(), 'abcdef');
});

test('many concurrent calls share one connection and each gets its own answer', async () => {
  const a = await node();
  const b = await node({ handler: async (req) => ({ body: req.body, payload: Buffer.from(String(req.body)) }) });
  const n = 300;
  const results = await Promise.all(Array.from({ length: n }, (_, i) => a.t.call(b.addr, 'm', i)));
  results.forEach((r, i) => {
    assert.equal(r.body, i);
    assert.equal(r.payload.toString(), String(i));
  });
  assert.equal(a.t.counters.connectionsDialed, 1);
  assert.equal(b.t.counters.connectionsAccepted, 1);
  assert.equal(a.t.counters.callsOk, n);
});

test('both directions use the one connection: the acceptor calls back over it', async () => {
  const a = await node();
  const b = await node();
  await a.t.call(b.addr, 'hi', null);
  const r = await b.t.call(a.addr, 'back', 7);
  assert.equal((r.body as { body: number }).body, 7);
  assert.equal(b.t.counters.connectionsDialed, 0);
  assert.equal(a.t.counters.connectionsAccepted, 0);
});

test('a call times out, and the handler sees its signal abort', async () => {
  let aborted: unknown;
  const b = await node({
    handler: (req) =>
      new Promise((_, reject) =>
        req.signal.addEventListener('abort', () => {
          aborted = req.signal.reason;
          reject(req.signal.reason);
        }),
      ),
  });
  const a = await node();
  await assert.rejects(a.t.call(b.addr, 'slow', null, undefined, { timeoutMs: 200 }), isErr('TIMEOUT', /slow .* timed out after/));
  assert.ok(await waitFor(() => aborted !== undefined), 'handler signal must abort');
  assert.ok(aborted instanceof TesseraError && aborted.code === 'CANCELLED');
  assert.equal(a.t.counters.callsTimedOut, 1);
});

test('cancellation by AbortSignal reaches the remote handler', async () => {
  let started = false;
  let sawAbort = false;
  const b = await node({
    handler: (req) =>
      new Promise((resolve) => {
        if (req.method === 'after') return resolve({ body: 'fine' });
        started = true;
        req.signal.addEventListener('abort', () => {
          sawAbort = true;
          resolve({ body: 'late' });
        });
      }),
  });
  const a = await node();
  const ac = new AbortController();
  const p = a.t.call(b.addr, 'wait', null, undefined, { signal: ac.signal });
  assert.ok(await waitFor(() => started));
  ac.abort();
  await assert.rejects(p, isErr('CANCELLED', /wait .* cancelled/));
  assert.ok(await waitFor(() => sawAbort), 'remote handler must see the cancel');
  assert.ok(await waitFor(() => b.t.counters.requestsCancelled === 1));
  // The connection keeps working after a cancel.
  const r = await a.t.call(b.addr, 'after', 1);
  assert.equal(r.body, 'fine');
  assert.equal(a.t.counters.connectionsDialed, 1);
});

test('in-flight calls per connection are bounded; extra callers wait for a slot', async () => {
  let running = 0;
  let peak = 0;
  const b = await node({
    handler: async () => {
      running++;
      peak = Math.max(peak, running);
      await new Promise((r) => setTimeout(r, 20));
      running--;
      return {};
    },
  });
  const a = await node({ maxInFlightPerConnection: 3 });
  await Promise.all(Array.from({ length: 30 }, () => a.t.call(b.addr, 'm', null)));
  assert.equal(peak, 3);
});

test('concurrently running inbound handlers are bounded per connection', async () => {
  let running = 0;
  let peak = 0;
  const b = await node({
    maxInboundHandlersPerConnection: 2,
    handler: async () => {
      running++;
      peak = Math.max(peak, running);
      await new Promise((r) => setTimeout(r, 15));
      running--;
      return {};
    },
  });
  const a = await node({ maxInFlightPerConnection: 16 });
  await Promise.all(Array.from({ length: 24 }, () => a.t.call(b.addr, 'm', null)));
  assert.equal(peak, 2);
});

test('remote error codes and messages are preserved; other throws become INTERNAL', async () => {
  const b = await node({
    handler: async (req) => {
      if (req.method === 'missing') throw new TesseraError('NOT_FOUND', 'chunk 00ff is not stored here');
      throw new RangeError('boom');
    },
  });
  const a = await node();
  await assert.rejects(a.t.call(b.addr, 'missing', null), isErr('NOT_FOUND', /^chunk 00ff is not stored here$/));
  await assert.rejects(a.t.call(b.addr, 'other', null), isErr('INTERNAL', /handler for other failed: boom/));
});

test('a dropped connection rejects pending calls with UNAVAILABLE', async () => {
  let started = false;
  const b = await node({
    handler: () => {
      started = true;
      return new Promise(() => {});
    },
  });
  const a = await node();
  const p = a.t.call(b.addr, 'hang', null);
  assert.ok(await waitFor(() => started));
  await b.t.close();
  await assert.rejects(p, isErr('UNAVAILABLE'));
});

test('reconnects after the peer restarts on the same address', async () => {
  const b = await node();
  const a = await node();
  await a.t.call(b.addr, 'one', null);
  const port = Number(b.addr.split(':')[1]);
  await b.t.close();
  await assert.rejects(a.t.call(b.addr, 'two', null, undefined, { timeoutMs: 2000 }), isErr('UNAVAILABLE'));
  const b2 = await node({ credentials: b.creds, port });
  let r;
  for (let i = 0; i < 50 && r === undefined; i++) {
    r = await a.t.call(b2.addr, 'three', null, undefined, { timeoutMs: 2000 }).catch(() => undefined);
    if (r === undefined) await new Promise((res) => setTimeout(res, 50));
  }
  assert.ok(r, 'call after restart must succeed');
  assert.equal(r.peer.nodeId, b.creds.nodeId);
  assert.equal(a.t.counters.connectionsDialed, 2);
});

test('expectNodeId refuses a peer at that address with another id', async () => {
  const b = await node();
  const a = await node();
  const other = (await node()).creds.nodeId;
  await assert.rejects(a.t.call(b.addr, 'm', null, undefined, { expectNodeId: other }), isErr('AUTH', /expected/));
  const r = await a.t.call(b.addr, 'm', null, undefined, { expectNodeId: b.creds.nodeId });
  assert.equal(r.peer.nodeId, b.creds.nodeId);
});

test('simultaneous dials in both directions settle on one connection per peer', async () => {
  const a = await node();
  const b = await node();
  const calls = [];
  for (let i = 0; i < 10; i++) calls.push(a.t.call(b.addr, 'ab', i), b.t.call(a.addr, 'ba', i));
  const rs = await Promise.all(calls);
  assert.equal(rs.length, 20);
  assert.ok(await waitFor(() => a.t.peers.length === 1 && b.t.peers.length === 1));
  // After the retired duplicate drains, exactly one connection remains open on each side.
  const live = (t: Transport) => t.counters.connectionsDialed + t.counters.connectionsAccepted - t.counters.connectionsClosed;
  assert.ok(await waitFor(() => live(a.t) === 1 && live(b.t) === 1, 6000), `live a=${live(a.t)} b=${live(b.t)}`);
  const r = await a.t.call(b.addr, 'after', 1);
  assert.equal((r.body as { body: number }).body, 1);
});

test('a call that times out or is cancelled while queued for a slot never reaches the peer, and frees no slot it did not hold', async () => {
  const seen: string[] = [];
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const b = await node({
    handler: async (req) => {
      seen.push(req.method);
      if (req.method === 'hold') await gate;
      return { body: req.method };
    },
  });
  const a = await node({ maxInFlightPerConnection: 1 });
  const held = a.t.call(b.addr, 'hold', null);
  assert.ok(await waitFor(() => seen.length === 1));
  await assert.rejects(a.t.call(b.addr, 'queued', null, undefined, { timeoutMs: 100 }), isErr('TIMEOUT', /queued .* timed out/));
  const ac = new AbortController();
  const cancelled = a.t.call(b.addr, 'cancelled', null, undefined, { signal: ac.signal });
  setTimeout(() => ac.abort(), 50);
  await assert.rejects(cancelled, isErr('CANCELLED', /cancelled .* was cancelled/));
  release();
  assert.equal((await held).body, 'hold');
  // Had either given back a slot it never held, two calls would now run at once.
  const both = await Promise.all([a.t.call(b.addr, 'next', null), a.t.call(b.addr, 'last', null)]);
  assert.deepEqual(both.map((r) => r.body), ['next', 'last']);
  assert.deepEqual(seen, ['hold', 'next', 'last']);
  assert.equal(a.t.counters.callsTimedOut, 1);
  assert.equal(a.t.counters.callsCancelled, 1);
});

test('a handler that looks at its signal only after the caller went away sees it aborted', async () => {
  let started = false;
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  let sawAborted: boolean | undefined;
  const b = await node({
    handler: async (req) => {
      started = true;
      await gate;
      sawAborted = req.signal.aborted;
      return {};
    },
  });
  const a = await makeNode();
  const p = a.t.call(b.addr, 'wait', null).catch(() => undefined);
  assert.ok(await waitFor(() => started));
  await a.t.close();
  await p;
  assert.ok(await waitFor(() => b.t.counters.connectionsClosed >= 1), 'the serving side must see the connection close');
  release();
  assert.ok(await waitFor(() => sawAborted !== undefined));
  assert.equal(sawAborted, true);
});
