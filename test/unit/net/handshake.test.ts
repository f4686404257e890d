import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import tls from 'node:tls';
import { randomBytes } from 'node:crypto';
import { TesseraError } from '../../../src/errors.js';
import { generateCredentials } from '../../../src/net/credentials.js';
import type { Transport } from '../../../src/net/transport.js';
import { FRAME_HEADER_BYTES, FrameKind } from '../../../src/wire/frame.js';
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

const refusals = (logs: () => Array<Record<string, unknown>>) =>
  logs().filter((l) => l.msg === 'handshake refused' || l.msg === 'TLS handshake refused');

test('a wrong cluster secret is refused in both directions, with the reason logged', async () => {
  const good = await node();
  const stranger = await node({ clusterSecret: Buffer.alloc(32, 1) });
  await assert.rejects(stranger.t.call(good.addr, 'm', null), isErr('AUTH', /cluster secret|admission/));
  await assert.rejects(good.t.call(stranger.addr, 'm', null), isErr('AUTH', /cluster secret|admission/));
  assert.ok(await waitFor(() => refusals(good.logs).some((l) => /cluster secret/.test(String(l.reason)))));
  assert.equal(good.t.peers.length, 0);
});

test('during a rotation of the cluster secret, rotated nodes admit old and new ones; old and new alone do not', async () => {
  const oldSecret = randomBytes(32);
  const newSecret = randomBytes(32);
  const old = await node({ clusterSecret: oldSecret });
  const rotated = await node({ clusterSecret: newSecret, previousClusterSecret: oldSecret });
  const finished = await node({ clusterSecret: newSecret });
  for (const [a, b] of [[old, rotated], [rotated, old], [rotated, finished], [finished, rotated]] as const) {
    assert.equal(((await a.t.call(b.addr, 'echo', { x: 1 })).body as { from: string }).from, a.creds.nodeId);
  }
  await assert.rejects(old.t.call(finished.addr, 'm', null), isErr('AUTH', /cluster secret|admission/));
  await assert.rejects(finished.t.call(old.addr, 'm', null), isErr('AUTH', /cluster secret|admission/));
  // A stranger holding neither secret gets nowhere with a rotated node either.
  const stranger = await node({ clusterSecret: randomBytes(32), previousClusterSecret: randomBytes(32) });
  await assert.rejects(stranger.t.call(rotated.addr, 'm', null), isErr('AUTH'));
});

test('a hello whose node id differs from the certificate is refused', async () => {
  const good = await node();
  const real = await generateCredentials();
  const other = await generateCredentials();
  const liar = await node({ credentials: { ...real, nodeId: other.nodeId } });
  await assert.rejects(liar.t.call(good.addr, 'm', null), isErr('AUTH', /claims node id .* certificate is for/));
  assert.ok(await waitFor(() => refusals(good.logs).some((l) => /claims node id/.test(String(l.reason)))));
});

test('a peer from another cluster is refused', async () => {
  const good = await node();
  const foreign = await node({ clusterId: 'other-cluster' });
  await assert.rejects(foreign.t.call(good.addr, 'm', null), isErr('AUTH', /belongs to cluster/));
});

test('a protocol version mismatch names both versions', async () => {
  const v1 = await node();
  const v2 = await node({ protocolVersion: 2 });
  await assert.rejects(v1.t.call(v2.addr, 'm', null), isErr('PROTOCOL', /peer .* runs protocol version 2, this node speaks 1/));
  await assert.rejects(v2.t.call(v1.addr, 'm', null), isErr('PROTOCOL', /runs protocol version 1, this node speaks 2/));
});

test('raw TCP garbage, an oversized length prefix and a plaintext hello are closed; good peers keep working', async () => {
  const server = await node();
  const client = await node();
  const port = Number(server.addr.split(':')[1]);
  const oversized = Buffer.alloc(FRAME_HEADER_BYTES);
  oversized.writeUInt32BE(0xffff_ffff, 0);
  oversized.writeUInt8(FrameKind.REQUEST, 4);
  const inputs = [randomBytes(4096), oversized, Buffer.from('{"hello":"tessera","version":1}\n'), Buffer.from('GET / HTTP/1.1\r\n\r\n')];
  const before = server.t.counters.handshakesFailed;
  for (const bytes of inputs) {
    const closed = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => s.write(bytes));
      s.on('error', () => {});
      s.on('close', () => resolve(true));
      s.resume();
      setTimeout(() => {
        s.destroy();
        resolve(false);
      }, 5000).unref();
    });
    assert.ok(closed, `server must close a connection that sent ${bytes.subarray(0, 8).toString('hex')}`);
  }
  assert.ok(await waitFor(() => server.t.counters.handshakesFailed >= before + inputs.length));
  // Every refusal is counted; from one source they share one log line per interval.
  const lines = refusals(server.logs);
  assert.ok(lines.length >= 1 && lines.length < inputs.length, `refusals from one address are logged once per interval, got ${lines.length} lines`);
  assert.ok(lines.every((l) => l.source === '127.0.0.1' && typeof l.reason === 'string'), 'the line names the source and a reason');
  const r = await client.t.call(server.addr, 'still-there', 1);
  assert.equal((r.body as { body: number }).body, 1);
});

test('an admitted-looking TLS client sending an oversized frame before admission is closed', async () => {
  const server = await node();
  const creds = await generateCredentials();
  const port = Number(server.addr.split(':')[1]);
  const frame = Buffer.alloc(FRAME_HEADER_BYTES);
  frame.writeUInt32BE(0xffff_ffff, 0);
  frame.writeUInt8(FrameKind.ADMIT, 4);
  const closed = await new Promise<boolean>((resolve) => {
    const s = tls.connect({ host: '127.0.0.1', port, key: creds.privateKeyPem, cert: creds.certificatePem, rejectUnauthorized: false, minVersion: 'TLSv1.3' }, () =>
      s.write(frame),
    );
    s.on('error', () => {});
    s.on('close', () => resolve(true));
    s.resume();
    setTimeout(() => resolve(false), 5000).unref();
  });
  assert.ok(closed);
  assert.ok(await waitFor(() => refusals(server.logs).some((l) => /exceeds the limit/.test(String(l.reason)))));
});

test('a TLS client without a certificate is refused', async () => {
  const server = await node();
  const port = Number(server.addr.split(':')[1]);
  const closed = await new Promise<boolean>((resolve) => {
    const s = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false, minVersion: 'TLSv1.3' });
    s.on('error', () => {});
    s.on('close', () => resolve(true));
    s.resume();
    setTimeout(() => resolve(false), 5000).unref();
  });
  assert.ok(closed);
  assert.ok(await waitFor(() => refusals(server.logs).some((l) => /no certificate/.test(String(l.reason)))));
});

test('a silent client is dropped at the handshake timeout', async () => {
  const server = await node({ handshakeTimeoutMs: 300 });
  const port = Number(server.addr.split(':')[1]);
  const closed = await new Promise<boolean>((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.on('error', () => {});
    s.on('close', () => resolve(true));
    setTimeout(() => resolve(false), 5000).unref();
  });
  assert.ok(closed);
});

test('dialing an address where nothing listens is UNAVAILABLE, then backs off', async () => {
  const a = await node();
  const probe = net.createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
  const port = (probe.address() as net.AddressInfo).port;
  await new Promise<void>((r) => probe.close(() => r()));
  await assert.rejects(a.t.call(`127.0.0.1:${port}`, 'm', null), isErr('UNAVAILABLE', /cannot connect/));
  // Inside the backoff window with no time to wait, the call fails fast and says why.
  await assert.rejects(a.t.call(`127.0.0.1:${port}`, 'm', null, undefined, { timeoutMs: 1 }), isErr('UNAVAILABLE', /unreachable|cannot connect/));
});
