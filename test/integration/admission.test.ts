/**
 * Admission against real node processes: a node without the cluster secret, and raw TCP clients
 * sending garbage, are refused while the cluster keeps working.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { connect as tcpConnect } from 'node:net';
import { join } from 'node:path';
import { LocalCluster } from '../../src/cli/local-cluster.js';
import { parseHostPort } from '../../src/client/index.js';

/** Sends bytes on a raw TCP connection and resolves with how the server ended it. */
function rawExchange(addr: string, bytes: Buffer, timeoutMs = 15_000): Promise<{ closed: boolean; received: number }> {
  const { host, port } = parseHostPort(addr, 'addr');
  return new Promise((resolve, reject) => {
    const sock = tcpConnect({ host, port });
    let received = 0;
    const timer = setTimeout(() => {
      sock.destroy();
      resolve({ closed: false, received });
    }, timeoutMs);
    sock.on('connect', () => sock.write(bytes));
    sock.on('data', (d) => (received += d.length));
    sock.on('error', () => undefined);
    sock.on('close', () => {
      clearTimeout(timer);
      resolve({ closed: true, received });
    });
    sock.on('timeout', () => reject(new Error('socket timeout')));
  });
}

test('a node with the wrong cluster secret is refused; garbage on the peer port is closed; the cluster is unaffected', async (t) => {
  const cluster = await LocalCluster.create({ nodes: 3, logLevel: 'info', nodeArgs: ['--probe-interval', '300', '--suspicion-timeout', '1500'] });
  t.after(() => cluster.destroy());
  await cluster.waitForMembers({ alive: 3 });

  // Same cluster id, another secret: everything matches but the proof of the secret.
  const forged = { ...cluster.keys, clusterSecret: randomBytes(32) };
  const intruder = await cluster.addNode({ bootstrap: [0], keys: forged });

  // Garbage of several kinds straight at a member's peer port.
  const target = cluster.node(1).listen;
  const oversized = Buffer.alloc(16);
  oversized.writeUInt32BE(0xffffffff, 0);
  const results = await Promise.all([
    rawExchange(target, randomBytes(4096)),
    rawExchange(target, oversized),
    rawExchange(target, Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n')),
  ]);
  for (const r of results) assert.ok(r.closed, 'the server closed the connection');

  // Give the intruder several probe periods to try to join.
  await new Promise((r) => setTimeout(r, 3000));
  for (const i of [0, 1, 2]) {
    const peers = await cluster.node(i).client.peers();
    assert.equal(peers.length, 3, `node ${i} knows exactly the three members`);
    assert.ok(peers.every((p) => p.state === 'alive'), `node ${i} sees all alive`);
    assert.ok(!peers.some((p) => p.nodeId === intruder.nodeId), `node ${i} never admitted the intruder`);
  }
  const intruderView = await intruder.client.peers();
  assert.equal(intruderView.filter((p) => !p.self && p.state === 'alive').length, 0, 'the intruder sees no one alive');

  const log = await readFile(join(cluster.dir, 'node0.log'), 'utf8');
  assert.match(log, /secret|admission/i, 'node 0 logged why it refused the intruder');
});
