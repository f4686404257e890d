/** The node caller: calls to itself, hold-down after a failure, and the node id check, over real transports where it matters. */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { TesseraError } from '../../../src/errors.js';
import { PROTOCOL_VERSION } from '../../../src/limits.js';
import { NodeCaller, type NodeCallerOptions } from '../../../src/cluster/node-caller.js';
import { PeerRouter } from '../../../src/net/peer-router.js';
import type { CallResult, PeerHello } from '../../../src/net/types.js';
import type { Transport } from '../../../src/net/transport.js';
import { makeNode } from '../net/helpers.js';

const open: Transport[] = [];
after(async () => {
  await Promise.all(open.map((t) => t.close()));
});

const SELF: PeerHello = { nodeId: 'self-node', clusterId: 'c1', protocolVersion: PROTOCOL_VERSION, capabilities: ['chunks/1'], listenAddr: '127.0.0.1:1' };
const HOLD_MS = 1_000;

function code(c: string, pattern?: RegExp) {
  return (e: unknown) => {
    assert.ok(e instanceof TesseraError, `expected a TesseraError, got ${String(e)}`);
    assert.equal(e.code, c, e.message);
    if (pattern) assert.match(e.message, pattern);
    return true;
  };
}

/** A caller over a scripted network: `fail` decides what each send throws; the clock is ours. */
function scripted(fail: (nodeId: string) => Error | undefined, over: Partial<NodeCallerOptions> = {}) {
  const sent: string[] = [];
  let now = 1_000_000;
  const caller = new NodeCaller({
    self: SELF,
    addressOf: (id) => (id === 'stranger' ? undefined : `addr-of-${id}`),
    send: async (addr, method, _body, _payload, opts): Promise<CallResult> => {
      sent.push(`${addr} ${method} ${opts.expectNodeId}`);
      const e = fail(opts.expectNodeId!);
      if (e) throw e;
      return { body: { ok: true }, payload: Buffer.from('p'), peer: { ...SELF, nodeId: opts.expectNodeId! } };
    },
    local: async () => {
      throw new Error('no local calls in this test');
    },
    holdDownMs: HOLD_MS,
    now: () => now,
    ...over,
  });
  return { caller, sent, advance: (ms: number) => (now += ms) };
}

test('a call to this node itself goes through its own handlers with its own hello, never the network', async () => {
  const router = new PeerRouter();
  const seen: Array<{ peer: PeerHello; payload: string; verified: boolean | undefined }> = [];
  router.register('chunk.', async (req) => {
    seen.push({ peer: req.peer, payload: req.payload.toString(), verified: req.verifiedPayload });
    return { body: { method: req.method }, payload: [Buffer.from('a'), Buffer.from('b')] };
  });
  const { caller, sent } = scripted(() => undefined, { local: router.handle });
  const r = await caller.call(SELF.nodeId, 'chunk.put', {}, [Buffer.from('x'), Buffer.from('y')], { timeoutMs: 1000, verified: true });
  assert.deepEqual(r.body, { method: 'chunk.put' });
  assert.equal(r.payload.toString(), 'ab');
  const plain = await caller.call(SELF.nodeId, 'chunk.get', {}, undefined, { timeoutMs: 1000 });
  assert.equal(plain.payload.toString(), 'ab');
  assert.deepEqual(seen, [
    { peer: SELF, payload: 'xy', verified: true },
    { peer: SELF, payload: '', verified: undefined },
  ]);
  assert.deepEqual(sent, []);
  await assert.rejects(caller.call(SELF.nodeId, 'nope.x', {}, undefined, { timeoutMs: 1000 }), code('BAD_INPUT', /unknown method 'nope.x'/));
  const ac = new AbortController();
  ac.abort();
  await assert.rejects(caller.call(SELF.nodeId, 'chunk.put', {}, undefined, { timeoutMs: 1000, signal: ac.signal }));
  assert.equal(seen.length, 2);
});

test('a node that did not answer is held down for a moment, then tried again', async () => {
  let down = true;
  const { caller, sent, advance } = scripted(() => (down ? new TesseraError('UNAVAILABLE', 'connection refused') : undefined));
  await assert.rejects(caller.call('n2', 'chunk.get', {}, undefined, { timeoutMs: 1000 }), code('UNAVAILABLE', /refused/));
  assert.equal(caller.isHeldDown('n2'), true);
  await assert.rejects(caller.call('n2', 'chunk.get', {}, undefined, { timeoutMs: 1000 }), code('UNAVAILABLE', /moments ago/));
  assert.equal(sent.length, 1, 'a held-down node is not dialled');
  assert.equal(caller.isHeldDown('n3'), false, 'other nodes are not affected');
  // The volume master asks every time.
  await assert.rejects(caller.call('n2', 'extent.read', {}, undefined, { timeoutMs: 1000, respectHoldDown: false }), code('UNAVAILABLE', /refused/));
  assert.equal(sent.length, 2);
  down = false;
  advance(HOLD_MS - 1);
  assert.equal(caller.isHeldDown('n2'), true);
  advance(2);
  assert.equal(caller.isHeldDown('n2'), false);
  assert.deepEqual((await caller.call('n2', 'chunk.get', {}, undefined, { timeoutMs: 1000 })).body, { ok: true });
  assert.equal(sent.length, 3);
});

test('timeouts hold a node down; answered errors, cancellations and unknown members do not', async () => {
  const errors: Record<string, Error> = {
    slow: new TesseraError('TIMEOUT', 'no answer in time'),
    picky: new TesseraError('BAD_INPUT', 'bad body'),
    impostor: new TesseraError('AUTH', 'expected another node id'),
  };
  const { caller } = scripted((id) => errors[id]);
  await assert.rejects(caller.call('slow', 'm.x', {}, undefined, { timeoutMs: 1 }), code('TIMEOUT'));
  await assert.rejects(caller.call('picky', 'm.x', {}, undefined, { timeoutMs: 1000 }), code('BAD_INPUT'));
  await assert.rejects(caller.call('impostor', 'm.x', {}, undefined, { timeoutMs: 1000 }), code('AUTH'));
  await assert.rejects(caller.call('stranger', 'm.x', {}, undefined, { timeoutMs: 1000 }), code('UNAVAILABLE', /not a known member/));
  assert.equal(caller.isHeldDown('slow'), true);
  assert.equal(caller.isHeldDown('picky'), false);
  assert.equal(caller.isHeldDown('impostor'), false);

  const ac = new AbortController();
  const cancelled = scripted(() => {
    ac.abort();
    return new TesseraError('UNAVAILABLE', 'cancelled by the caller');
  });
  await assert.rejects(cancelled.caller.call('n2', 'm.x', {}, undefined, { timeoutMs: 1000, signal: ac.signal }));
  assert.equal(cancelled.caller.isHeldDown('n2'), false, 'a call the caller cancelled says nothing about the node');
});

test('over real transports the caller dials the member by id and refuses a node with another id at its address', async () => {
  const b = await makeNode();
  const a = await makeNode();
  const c = await makeNode();
  open.push(a.t, b.t, c.t);
  const addresses = new Map([
    [b.creds.nodeId, b.addr],
    // A stale or forged address: c's id pointing at b.
    [c.creds.nodeId, b.addr],
  ]);
  const caller = new NodeCaller({
    self: { ...SELF, nodeId: a.creds.nodeId },
    addressOf: (id) => addresses.get(id),
    send: (addr, method, body, payload, opts) => a.t.call(addr, method, body, payload, opts),
    local: new PeerRouter().handle,
  });
  const r = await caller.call(b.creds.nodeId, 'chunk.get', { n: 1 }, Buffer.from('hello'), { timeoutMs: 5_000 });
  assert.deepEqual(r.body, { method: 'chunk.get', body: { n: 1 }, from: a.creds.nodeId });
  assert.equal(r.payload.toString(), 'hello');
  await assert.rejects(caller.call(c.creds.nodeId, 'chunk.get', {}, undefined, { timeoutMs: 5_000 }), code('AUTH', /expected/));
  assert.equal(caller.isHeldDown(c.creds.nodeId), false);
});

test('the peer router: one handler per prefix, unknown methods refused', async () => {
  const router = new PeerRouter();
  router.register('vol.', async () => ({ body: 'v' }));
  assert.throws(() => router.register('vol.', async () => ({})), code('CONFLICT', /twice/));
  assert.throws(() => router.register('vol', async () => ({})), code('BAD_INPUT', /ending in/));
  assert.throws(() => router.register('', async () => ({})), code('BAD_INPUT'));
  const req = (method: string) => ({ method, body: null, payload: Buffer.alloc(0), peer: SELF, signal: new AbortController().signal });
  assert.deepEqual(await router.handle(req('vol.get')), { body: 'v' });
  await assert.rejects(router.handle(req('volume.get')), code('BAD_INPUT', /unknown method/));
  await assert.rejects(router.handle(req('.get')), code('BAD_INPUT'));
  await assert.rejects(router.handle(req('nodot')), code('BAD_INPUT'));
});
