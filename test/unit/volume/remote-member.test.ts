import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { isTesseraError, TesseraError } from '../../../src/errors.js';
import type { IncomingRequest } from '../../../src/net/transport.js';
import { ExtentStore } from '../../../src/store/extent-store.js';
import { Minion } from '../../../src/block/minion.js';
import { openExtentGuard } from '../../helpers/open-extent-guard.js';
import { MAX_BATCH_OPS, RemoteMember, type MemberNet } from '../../../src/block/remote-member.js';

const UNIT = 4096;
const UNITS = 64;

async function setup(opts: { batchUnknown?: boolean } = {}) {
  const dir = await mkdtemp(join(tmpdir(), 'tessera-remote-'));
  const store = await ExtentStore.open(join(dir, 'x'));
  await store.create('v.1', { units: UNITS, unitSize: UNIT });
  const minion = new Minion(store, openExtentGuard);
  const calls: string[] = [];
  const net: MemberNet = {
    async call(_node, method, body, payload) {
      calls.push(method);
      if (opts.batchUnknown && method === 'extent.batch') throw new TesseraError('BAD_INPUT', `unknown method '${method}'`);
      const p = payload === undefined ? Buffer.alloc(0) : Array.isArray(payload) ? Buffer.concat(payload) : payload;
      const req = { method, body, payload: p, peer: { nodeId: 'master' } } as unknown as IncomingRequest;
      // Through a structured clone, as the wire would: no shared buffers between the two sides.
      const r = await minion.handle(req);
      const out = r.payload === undefined ? Buffer.alloc(0) : Array.isArray(r.payload) ? Buffer.concat(r.payload) : Buffer.from(r.payload);
      return { body: structuredClone(r.body), payload: out };
    },
  };
  const m = new RemoteMember({ net, nodeId: 'n1', extent: 'v.1', size: UNITS * UNIT, unitSize: UNIT });
  return { dir, store, minion, calls, m, async done() { await store.close(); await rm(dir, { recursive: true, force: true }); } };
}

test('remote member: a burst of reads and writes travels as one batch and lands right', async () => {
  const r = await setup();
  try {
    const data = Array.from({ length: 40 }, () => randomBytes(1000));
    await Promise.all(data.map((d, i) => r.m.write(i * 1500, d, { generation: 1 })));
    assert.deepEqual(r.calls, ['extent.batch'], 'forty writes, one call');
    const back = await Promise.all(data.map((d, i) => r.m.read(i * 1500, d.length)));
    assert.deepEqual(r.calls, ['extent.batch', 'extent.batch']);
    back.forEach((b, i) => assert.ok(b.equals(data[i] as Buffer), `read ${i} matches`));
    const whole = await r.store.read('v.1', 0, 40 * 1500);
    data.forEach((d, i) => assert.ok(whole.subarray(i * 1500, i * 1500 + 1000).equals(d)));
  } finally {
    await r.done();
  }
});

test('remote member: ops of a batch fail alone (a fenced write), the rest succeed', async () => {
  const r = await setup();
  try {
    await r.m.write(5 * UNIT, Buffer.alloc(100, 1), { generation: 9 });
    const results = await Promise.allSettled([
      r.m.write(0, Buffer.alloc(100, 2), { generation: 3 }),
      r.m.write(5 * UNIT, Buffer.alloc(100, 3), { generation: 3 }),
      r.m.read(5 * UNIT, 100),
    ]);
    assert.equal(r.calls.length, 2);
    assert.equal(results[0].status, 'fulfilled');
    assert.ok(results[1].status === 'rejected' && isTesseraError(results[1].reason, 'CONFLICT'), 'the stale write is fenced');
    assert.ok(results[2].status === 'fulfilled' && results[2].value.equals(Buffer.alloc(100, 1)));
  } finally {
    await r.done();
  }
});

test('remote member: FUA writes go in a batch of their own; a node without batches gets single calls', async () => {
  const r = await setup();
  try {
    await Promise.all([r.m.write(0, Buffer.alloc(10, 1)), r.m.write(UNIT, Buffer.alloc(10, 2), { durable: true })]);
    assert.deepEqual(r.calls, ['extent.batch', 'extent.batch']);
  } finally {
    await r.done();
  }
  const old = await setup({ batchUnknown: true });
  try {
    await Promise.all([old.m.write(0, Buffer.alloc(10, 7)), old.m.write(UNIT, Buffer.alloc(10, 8))]);
    assert.ok((await old.m.read(UNIT, 10)).equals(Buffer.alloc(10, 8)));
    assert.deepEqual(old.calls, ['extent.batch', 'extent.write', 'extent.write', 'extent.read']);
  } finally {
    await old.done();
  }
});

test('minion: malformed batches are refused whole', async () => {
  const r = await setup();
  try {
    const call = (body: unknown, payload = Buffer.alloc(0)) => r.minion.handle({ method: 'extent.batch', body, payload, peer: { nodeId: 'master' } } as unknown as IncomingRequest);
    const bad = (e: unknown) => isTesseraError(e, 'BAD_INPUT') || isTesseraError(e, 'TOO_LARGE');
    await assert.rejects(call({ name: 'v.1', ops: [[1, 0, 10]] }, Buffer.alloc(9)), bad);
    await assert.rejects(call({ name: 'v.1', ops: [] }), bad);
    await assert.rejects(call({ name: 'v.1', ops: [[2, 0, 10]] }), bad);
    await assert.rejects(call({ name: 'v.1', ops: [[0, -1, 10]] }), bad);
    await assert.rejects(call({ name: 'v.1', ops: Array.from({ length: MAX_BATCH_OPS + 1 }, () => [0, 0, 1]) }), bad);
    await assert.rejects(call({ name: 'v.1', ops: Array.from({ length: 3 }, () => [0, 0, 4 << 20]) }), bad);
    const past = await call({ name: 'v.1', ops: [[0, UNITS * UNIT - 5, 10], [0, 0, 4]] });
    assert.equal((past.body as { e: unknown[] }).e.length, 1, 'a read past the end fails alone');
  } finally {
    await r.done();
  }
});
