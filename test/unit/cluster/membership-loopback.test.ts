/**
 * Membership over real loopback sockets and the real clock, with default settings: the same code
 * the simulator drives, through a minimal newline-delimited JSON transport (a stand-in for the TLS
 * RPC layer, which adapts to MembershipNet the same way).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import { realClock, mathRandom } from '../../../src/cluster/clock.js';
import { Membership, type MembershipNet } from '../../../src/cluster/membership.js';
import { TesseraError, isTesseraError } from '../../../src/errors.js';

/** Largest line this stand-in transport accepts; a full-state sync of a few members is far below. */
const MAX_LINE_BYTES = 1 << 20;

interface Node {
  nodeId: string;
  addr: string;
  server: net.Server;
  sockets: Set<net.Socket>;
  membership: Membership;
}

function lines(sock: net.Socket, onLine: (line: string) => void): void {
  let buf = '';
  sock.setEncoding('utf8');
  sock.on('data', (d: string) => {
    buf += d;
    if (buf.length > MAX_LINE_BYTES) sock.destroy();
    let i: number;
    while ((i = buf.indexOf('\n')) >= 0) {
      onLine(buf.slice(0, i));
      buf = buf.slice(i + 1);
    }
  });
  sock.on('error', () => {});
}

const jsonNet: MembershipNet = {
  call(addr, method, body, opts) {
    return new Promise((resolve, reject) => {
      const [host, port] = addr.split(':');
      const sock = net.connect({ host: host!, port: Number(port) });
      const timer = setTimeout(() => {
        sock.destroy();
        reject(new TesseraError('TIMEOUT', `${method} to ${addr} timed out`));
      }, opts.timeoutMs);
      const fail = (e: TesseraError) => {
        clearTimeout(timer);
        sock.destroy();
        reject(e);
      };
      sock.on('error', (e) => fail(new TesseraError('UNAVAILABLE', `${addr}: ${e.message}`)));
      sock.on('connect', () => sock.write(JSON.stringify({ method, body }) + '\n'));
      lines(sock, (line) => {
        clearTimeout(timer);
        sock.end();
        const r = JSON.parse(line) as { nodeId: string; ok: boolean; result?: unknown; code?: string; message?: string };
        if (opts.expectNodeId !== undefined && r.nodeId !== opts.expectNodeId) fail(new TesseraError('AUTH', `${addr} is ${r.nodeId}`));
        else if (r.ok) resolve(r.result);
        else fail(new TesseraError('BAD_INPUT', r.message ?? 'remote error'));
      });
    });
  },
};

async function startNode(nodeId: string, seeds: string[], port = 0, incarnation?: number): Promise<Node> {
  const sockets = new Set<net.Socket>();
  let membership: Membership | undefined;
  const server = net.createServer((sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    lines(sock, (line) => {
      const req = JSON.parse(line) as { method: string; body: unknown };
      membership!.handle(req.method, req.body).then(
        (result) => sock.end(JSON.stringify({ nodeId, ok: true, result }) + '\n'),
        (e: unknown) => sock.end(JSON.stringify({ nodeId, ok: false, message: String(e) }) + '\n'),
      );
    });
  });
  server.listen(port, '127.0.0.1');
  await once(server, 'listening');
  const addr = `127.0.0.1:${(server.address() as net.AddressInfo).port}`;
  membership = new Membership({
    self: { nodeId, addr },
    net: jsonNet,
    clock: realClock,
    random: mathRandom,
    seeds,
    incarnation,
    localStats: () => ({ capacity: 1 << 30, used: 0 }),
  });
  membership.start();
  return { nodeId, addr, server, sockets, membership };
}

async function kill(n: Node): Promise<void> {
  n.membership.stop();
  for (const s of n.sockets) s.destroy();
  await new Promise((r) => n.server.close(r));
}

async function waitFor(pred: () => boolean, limitMs: number): Promise<boolean> {
  const end = Date.now() + limitMs;
  while (Date.now() < end) {
    if (pred()) return true;
    await new Promise((r) => setTimeout(r, 25));
  }
  return pred();
}

test('over loopback sockets with default settings: join, detect a killed node, take it back after restart', async (t) => {
  const seed = await startNode('lb-0', []);
  const nodes = [seed];
  for (let i = 1; i < 4; i++) nodes.push(await startNode(`lb-${i}`, [seed.addr]));
  try {
    const allAlive = () => nodes.every((a) => nodes.every((b) => a.membership.get(b.nodeId)?.state === 'alive'));
    assert.ok(await waitFor(allAlive, 5_000), 'nodes did not see each other over loopback');

    const victim = nodes[3]!;
    await kill(victim);
    const t0 = Date.now();
    const others = nodes.slice(0, 3);
    const seenDead = () => others.every((n) => n.membership.get(victim.nodeId)?.state === 'dead');
    // Generous wall-clock ceiling for a loaded machine; the simulator checks the 5 s bound exactly.
    assert.ok(await waitFor(seenDead, 15_000), 'killed node not declared dead');
    t.diagnostic(`killed node declared dead everywhere after ${Date.now() - t0} ms`);

    const port = Number(victim.addr.split(':')[1]);
    const back = await startNode(victim.nodeId, [seed.addr], port, victim.membership.incarnation + 1);
    nodes[3] = back;
    assert.ok(await waitFor(allAlive, 5_000), 'restarted node not alive everywhere');
    assert.ok(others.every((n) => n.membership.get(back.nodeId)!.incarnation >= victim.membership.incarnation + 1));
  } finally {
    for (const n of nodes) if (n.membership.isRunning) await kill(n);
  }
});

test('over loopback: a malformed message is answered with an error and the node keeps running', async () => {
  const n = await startNode('lb-solo', []);
  try {
    await assert.rejects(jsonNet.call(n.addr, 'member.ping', { from: { nodeId: '' }, updates: [] }, { timeoutMs: 2_000 }), (e) => isTesseraError(e) && /malformed member\.ping/.test(e.message));
    const ok = await jsonNet.call(n.addr, 'member.ping', { from: { nodeId: 'x', addr: '127.0.0.1:1', state: 'alive', incarnation: 0, capacity: 0, used: 0, statsVersion: 0 }, updates: [] }, { timeoutMs: 2_000, expectNodeId: 'lb-solo' });
    assert.equal((ok as { from: { nodeId: string } }).from.nodeId, 'lb-solo');
  } finally {
    await kill(n);
  }
});
