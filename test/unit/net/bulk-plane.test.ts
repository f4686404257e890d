import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import * as net from 'node:net';
import { TesseraError } from '../../../src/errors.js';
import type { Transport } from '../../../src/net/transport.js';
import type { RequestHandler } from '../../../src/net/types.js';
import { BIND_MESSAGE_BYTES, BULK_MAGIC } from '../../../src/net/bulk-wire.js';
import { POOLED_BODY_MIN_BYTES } from '../../../src/wire/body-pool.js';
import { startProxy, type TcpProxy } from '../../helpers/tcp-proxy.js';
import { echo, makeNode, waitFor } from './helpers.js';

const BULK = { requests: ['chunk.put'], replies: ['chunk.get', 'chunk.put'] };
const MIB = 1 << 20;

/** Everything a test opens, closed once all tests ran. */
const closers: Array<() => Promise<void>> = [];
after(() => Promise.all(closers.map((c) => c())));
const node = async (...args: Parameters<typeof makeNode>) => {
  const n = await makeNode(...args);
  closers.push(() => n.t.close());
  return n;
};
const proxy = async (...args: Parameters<typeof startProxy>): Promise<TcpProxy> => {
  const p = await startProxy(...args);
  closers.push(() => p.close());
  return p;
};
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** Dials a→b and waits until the bulk connection is bound. */
async function connected(a: Transport, addr: string, bId: string): Promise<void> {
  await a.call(addr, 'ping', null);
  assert.ok(await waitFor(() => a.hasBulkTo(bId)), 'bulk connection bound');
}

test('sealed payloads of listed methods travel on the bulk plane, byte-exact, both ways', async () => {
  const a = await node({ bulkPlane: BULK });
  const b = await node({ bulkPlane: BULK });
  await connected(a.t, b.addr, b.creds.nodeId);
  const payload = randomBytes(MIB);
  const r = await a.t.call(b.addr, 'chunk.put', { id: 1 }, [payload.subarray(0, 1000), payload.subarray(1000)]);
  assert.equal(sha(r.payload), sha(payload));
  assert.ok(a.t.counters.bulkBytesOut >= MIB, 'request payload went on the bulk connection');
  assert.ok(b.t.counters.bulkBytesIn >= MIB && b.t.counters.bulkBytesOut >= MIB, 'reply payload too');
  // Not listed, or too small: TLS as before.
  const before = a.t.counters.bulkBytesOut;
  assert.equal(sha((await a.t.call(b.addr, 'name.put', null, payload)).payload), sha(payload));
  assert.equal((await a.t.call(b.addr, 'chunk.put', null, Buffer.from('small'))).payload.toString(), 'small');
  assert.equal(a.t.counters.bulkBytesOut, before);
});

test('many concurrent bulk calls in both directions each get their own bytes', async () => {
  const a = await node({ bulkPlane: BULK });
  const b = await node({ bulkPlane: BULK });
  await connected(a.t, b.addr, b.creds.nodeId);
  const bodies = Array.from({ length: 40 }, (_, i) => randomBytes(64 * 1024 + i));
  const ab = bodies.map((p) => a.t.call(b.addr, 'chunk.put', null, p));
  const ba = bodies.map((p) => b.t.call(a.addr, 'chunk.put', null, p));
  const all = await Promise.all([...ab, ...ba]);
  all.forEach((r, i) => assert.equal(sha(r.payload), sha(bodies[i % bodies.length]!)));
  assert.ok(b.t.counters.bulkBytesOut > 40 * 64 * 1024, 'the acceptor sent on the bulk plane too');
});

test('a large bulk request payload arrives in a pooled buffer the handler may recycle; a small one does not', async () => {
  const seen: Array<{ buffer: ArrayBufferLike; pooled: boolean; sha: string }> = [];
  const a = await node({ bulkPlane: BULK });
  const b = await node({
    bulkPlane: BULK,
    handler: async (req) => {
      if (req.method !== 'chunk.put') return { body: null };
      seen.push({ buffer: req.payload.buffer, pooled: req.recycle !== undefined, sha: sha(req.payload) });
      const digest = Buffer.from(sha(req.payload));
      req.recycle?.();
      return { body: null, payload: digest };
    },
  });
  await connected(a.t, b.addr, b.creds.nodeId);
  const big = [randomBytes(POOLED_BODY_MIN_BYTES), randomBytes(POOLED_BODY_MIN_BYTES)];
  for (const p of big) assert.equal((await a.t.call(b.addr, 'chunk.put', null, p)).payload.toString(), sha(p));
  assert.ok(b.t.counters.bulkBytesIn >= 2 * POOLED_BODY_MIN_BYTES, 'both went on the bulk plane');
  assert.deepEqual(seen.map((s) => s.pooled), [true, true]);
  assert.deepEqual(seen.map((s) => s.sha), big.map(sha), 'each handler saw its own bytes');
  assert.equal(seen[1]!.buffer, seen[0]!.buffer, 'the second payload reused the buffer the first returned');
  const small = randomBytes(POOLED_BODY_MIN_BYTES / 2);
  await a.t.call(b.addr, 'chunk.put', null, small);
  assert.equal(seen[2]!.pooled, false, 'a body under the pooling size is its own buffer');
});

test('a peer without the bulk plane is served over TLS, in either direction', async () => {
  const a = await node({ bulkPlane: BULK });
  const b = await node();
  const payload = randomBytes(MIB);
  assert.equal(sha((await a.t.call(b.addr, 'chunk.put', null, payload)).payload), sha(payload));
  assert.equal(sha((await b.t.call(a.addr, 'chunk.put', null, payload)).payload), sha(payload));
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(a.t.hasBulkTo(b.creds.nodeId), false);
  assert.equal(a.t.counters.bulkBytesOut + b.t.counters.bulkBytesOut + a.t.counters.bulkBytesIn, 0);
});

/** A proxy tamper that flips one bit in the first transfer's bytes, once. */
function firstTransferFlip(): { tamper: (piece: Buffer, offset: number) => Buffer; flipped: () => number } {
  let flipped = 0;
  return {
    flipped: () => flipped,
    tamper: (piece, offset) => {
      // The first transfer's bytes start after the binding and its 8-byte header.
      const at = BIND_MESSAGE_BYTES + 8 + 5000;
      if (flipped > 0 || at < offset || at >= offset + piece.length) return piece;
      flipped++;
      const out = Buffer.from(piece);
      out[at - offset]! ^= 0x01;
      return out;
    },
  };
}

test('a bit flipped on the bulk connection fails that transfer; the handler never sees altered bytes, and the next call succeeds', async () => {
  const seen: string[] = [];
  const handler: RequestHandler = async (req) => {
    seen.push(sha(req.payload));
    return echo(req);
  };
  const b = await node({ bulkPlane: BULK, handler });
  const flip = firstTransferFlip();
  const p = await proxy({ target: b.addr, tamperBulk: flip.tamper });
  const a = await node({ bulkPlane: BULK });
  await a.t.call(p.addr, 'ping', null);
  assert.ok(await waitFor(() => a.t.hasBulkTo(b.creds.nodeId)));
  const payload = randomBytes(MIB);
  await assert.rejects(a.t.call(p.addr, 'chunk.put', null, payload), (e: unknown) => {
    assert.ok(e instanceof TesseraError);
    assert.ok(e.code === 'CORRUPT' || e.code === 'UNAVAILABLE', e.code);
    return true;
  });
  assert.equal(flip.flipped(), 1);
  assert.ok(b.t.counters.bulkRefused >= 1, 'the receiver counted the bad bulk connection');
  // Retried, as the files and volume layers do: a call that raced the bulk connection's close
  // fails the same way; then it goes over TLS, or on a new bulk connection once one is bound.
  let r;
  for (let attempt = 0; r === undefined && attempt < 5; attempt++) {
    r = await a.t.call(p.addr, 'chunk.put', null, payload).catch(async (e: TesseraError) => {
      assert.ok(e.code === 'UNAVAILABLE', e.message);
      await new Promise((res) => setTimeout(res, 50));
      return undefined;
    });
  }
  assert.ok(r !== undefined, 'the retried call succeeded');
  assert.equal(sha(r.payload), sha(payload));
  assert.ok(await waitFor(() => a.t.hasBulkTo(b.creds.nodeId), 5000), 'a new bulk connection is bound after the bad one');
  assert.equal(sha((await a.t.call(p.addr, 'chunk.put', null, payload)).payload), sha(payload));
  assert.ok(p.counts.bulk >= 2, 'the bulk connection was dialed again');
  assert.deepEqual(new Set(seen), new Set([sha(Buffer.alloc(0)), sha(payload)].filter((h) => seen.includes(h))));
  assert.ok(!seen.some((h) => h !== sha(payload) && h !== sha(Buffer.alloc(0))), 'no altered payload reached the handler');
});

/** A chunk.put handler as the files layer's: it keeps the payload only if its SHA-256 is the id the body names. */
function contentChecked(stored: Map<string, Buffer>): RequestHandler {
  return async (req) => {
    if (req.method !== 'chunk.put') return echo(req);
    const id = (req.body as { id: string }).id;
    if (sha(req.payload) !== id) throw new TesseraError('CORRUPT', `payload does not hash to ${id.slice(0, 12)}`);
    stored.set(id, Buffer.from(req.payload));
    req.recycle?.();
    return { body: null };
  };
}

test('a content-addressed payload goes untagged; a bit flipped on the way reaches only the hash check, which refuses it, and the bulk connection stays', async () => {
  const CONTENT = { ...BULK, contentAddressed: ['chunk.put'] };
  const stored = new Map<string, Buffer>();
  const b = await node({ bulkPlane: CONTENT, handler: contentChecked(stored) });
  const flip = firstTransferFlip();
  const p = await proxy({ target: b.addr, tamperBulk: flip.tamper });
  const a = await node({ bulkPlane: CONTENT });
  await a.t.call(p.addr, 'ping', null);
  assert.ok(await waitFor(() => a.t.hasBulkTo(b.creds.nodeId)));
  const payload = randomBytes(MIB);
  await assert.rejects(a.t.call(p.addr, 'chunk.put', { id: sha(payload) }, payload), (e: unknown) => e instanceof TesseraError && e.code === 'CORRUPT');
  assert.equal(flip.flipped(), 1);
  assert.equal(stored.size, 0, 'nothing was kept of the altered bytes');
  assert.equal(b.t.counters.bulkRefused, 0, 'no tag was checked, so the bulk connection was not refused');
  await a.t.call(p.addr, 'chunk.put', { id: sha(payload) }, payload);
  assert.deepEqual([...stored.keys()], [sha(payload)]);
  assert.equal(stored.get(sha(payload))!.equals(payload), true);
  assert.equal(p.counts.bulk, 1, 'the same bulk connection carried the retry');
  assert.ok(a.t.counters.bulkBytesOut >= 2 * MIB, 'both went on the bulk plane');
  // Methods not listed as content-addressed keep their tag: a reply is still checked by it.
  const r = await b.t.call(a.addr, 'chunk.get', null, payload);
  assert.equal(sha(r.payload), sha(payload));
});

test('a node that takes content-addressed payloads untagged and one that does not interoperate: tags are sent to the latter', async () => {
  const stored = new Map<string, Buffer>();
  const a = await node({ bulkPlane: { ...BULK, contentAddressed: ['chunk.put'] } });
  const b = await node({ bulkPlane: BULK, handler: contentChecked(stored) });
  await connected(a.t, b.addr, b.creds.nodeId);
  const payload = randomBytes(MIB);
  await a.t.call(b.addr, 'chunk.put', { id: sha(payload) }, payload);
  assert.ok(b.t.counters.bulkBytesIn >= MIB, 'it went on the bulk plane');
  assert.equal(b.t.counters.bulkRefused, 0, 'its tag verified');
  assert.deepEqual([...stored.keys()], [sha(payload)]);
});

/** Sends `bytes` on a fresh TCP connection to `addr`; resolves with what came back before it closed. */
function rawExchange(addr: string, bytes: Buffer): Promise<Buffer> {
  const i = addr.lastIndexOf(':');
  return new Promise((resolve) => {
    const got: Buffer[] = [];
    const s = net.connect({ host: addr.slice(0, i), port: Number(addr.slice(i + 1)) }, () => s.write(bytes));
    s.on('data', (b) => got.push(b));
    s.on('error', () => {});
    s.on('close', () => resolve(Buffer.concat(got)));
    setTimeout(() => s.destroy(), 3000).unref();
  });
}

test('a stranger, a binding for another session and a replayed binding are refused', async () => {
  const b = await node({ bulkPlane: BULK });
  const recA = await proxy({ target: b.addr, recordBytes: 1 << 20 });
  const recC = await proxy({ target: b.addr, recordBytes: 1 << 20 });
  const a = await node({ bulkPlane: BULK });
  const c = await node({ bulkPlane: BULK });
  await connected(a.t, recA.addr, b.creds.nodeId);
  await connected(c.t, recC.addr, b.creds.nodeId);
  const bindingOf = (rec: TcpProxy) => {
    const all = rec.recorded();
    const at = all.indexOf(BULK_MAGIC);
    assert.ok(at >= 0, 'binding recorded');
    return all.subarray(at, at + BIND_MESSAGE_BYTES);
  };
  const bindA = bindingOf(recA);
  const bindC = bindingOf(recC);
  const refused = () => b.t.counters.bulkRefused;
  const refusedAfter = async (bytes: Buffer, what: string) => {
    const before = refused();
    assert.equal((await rawExchange(b.addr, bytes)).length, 0, `no answer to ${what}`);
    assert.ok(await waitFor(() => refused() === before + 1), `${what} refused`);
  };
  // A stranger: random handle and proof.
  await refusedAfter(Buffer.concat([BULK_MAGIC, randomBytes(BIND_MESSAGE_BYTES - BULK_MAGIC.length)]), 'a stranger');
  // Session A's handle with session C's proof: the proof is keyed by the session it names.
  const crossed = Buffer.from(bindA);
  bindC.copy(crossed, BIND_MESSAGE_BYTES - 32, BIND_MESSAGE_BYTES - 32);
  await refusedAfter(crossed, 'a binding proved for another session');
  // A's own binding, replayed.
  await refusedAfter(bindA, 'a replayed binding');

  // The refusal log keeps one line per source and interval: the first one names its reason.
  const reasons = b.logs().filter((l) => l.msg === 'bulk connection refused').map((l) => String(l.reason));
  assert.match(reasons[0] ?? '', /names no TLS session/);
  // The real bulk connections are unharmed.
  const payload = randomBytes(MIB);
  assert.equal(sha((await a.t.call(recA.addr, 'chunk.put', null, payload)).payload), sha(payload));
  assert.ok(a.t.hasBulkTo(b.creds.nodeId));
});

test('bulk bytes are delivered only to the call that asked, and only for a method whose replies may use the plane', async () => {
  const a = await node({ bulkPlane: BULK });
  let release: () => void = () => {};
  const b = await node({
    bulkPlane: BULK,
    handler: async (req) => {
      if (req.method === 'name.get') await new Promise<void>((r) => (release = r));
      return echo(req);
    },
  });
  await connected(a.t, b.addr, b.creds.nodeId);
  // A hostile b: a bulk reply to a request id a never used, then one to a pending call of a method
  // whose replies must stay on TLS.
  type Hostile = { writeBulk(ch: unknown, kind: number, id: number, control: Buffer, payload: Buffer): void; bulk: unknown };
  const conns = (b.t as unknown as { connections: Set<Hostile> }).connections;
  const conn = [...conns][0]!;
  const { encodeControl, FrameKind } = await import('../../../src/wire/index.js');
  conn.writeBulk(conn.bulk, FrameKind.RESPONSE, 4001, encodeControl({ b: null }), randomBytes(64 << 10));
  const payload = randomBytes(MIB);
  assert.equal(sha((await a.t.call(b.addr, 'chunk.put', null, payload)).payload), sha(payload), 'the stream stays usable after an unrequested transfer');
  assert.equal(a.t.counters.protocolViolations, 0);
  const pending = a.t.call(b.addr, 'name.get', null);
  await new Promise((r) => setTimeout(r, 100));
  // Odd ids are a's (the dialer's); the name.get call is the latest one.
  const id = 1 + 2 * (a.t.counters.callsOk + 0);
  conn.writeBulk(conn.bulk, FrameKind.RESPONSE, id, encodeControl({ b: 'forged' }), randomBytes(64 << 10));
  await assert.rejects(pending, (e: unknown) => e instanceof TesseraError && e.code === 'UNAVAILABLE');
  assert.equal(a.t.counters.protocolViolations, 1);
  release();
});
