/**
 * Exhaustion from the network, against real node processes: many idle sockets from one address
 * must not lock other peers out, and the refusals must not flood the log.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { connect as tcpConnect, type Socket } from 'node:net';
import { join } from 'node:path';
import { LocalCluster } from '../../src/cli/local-cluster.js';
import { parseHostPort } from '../../src/client/index.js';

const IDLE_SOCKETS = 96;
/** Sockets reopened as the node times idle ones out, so the pressure lasts through the join. */
const MAX_REOPENS = 2000;
/** Another loopback address, so the idle sockets come from a source other than the real peer's. */
const IDLE_SOURCE = '127.0.0.2';

function idleSocket(addr: string): Promise<Socket> {
  const { host, port } = parseHostPort(addr, 'addr');
  return new Promise((resolve, reject) => {
    const s = tcpConnect({ host, port, localAddress: IDLE_SOURCE });
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
}

test(`${IDLE_SOCKETS} idle sockets from one address do not stop a real peer from joining`, async (t) => {
  const cluster = await LocalCluster.create({ nodes: 1, logLevel: 'info' });
  const sockets: Socket[] = [];
  t.after(async () => {
    for (const s of sockets) s.destroy();
    await cluster.destroy();
  });
  const target = cluster.node(0).listen;
  let reopens = 0;
  let pressing = true;
  const open = async (): Promise<void> => {
    const s = await idleSocket(target);
    s.on('error', () => undefined);
    sockets.push(s);
    s.once('close', () => {
      if (pressing && reopens++ < MAX_REOPENS) setTimeout(() => void open().catch(() => undefined), 50);
    });
  };
  for (let i = 0; i < IDLE_SOCKETS; i++) await open();
  // The node refuses beyond its per-source cap at once; the rest stay idle in their handshakes.
  await new Promise((r) => setTimeout(r, 500));
  const stillOpen = sockets.filter((s) => !s.destroyed && s.readyState === 'open').length;
  assert.ok(stillOpen < IDLE_SOCKETS, `the node refused some of the ${IDLE_SOCKETS} idle sockets (${stillOpen} still open)`);

  await cluster.addNode({ bootstrap: [0] });
  await cluster.waitForMembers({ alive: 2 });
  pressing = false;

  const log = await readFile(join(cluster.dir, 'node0.log'), 'utf8');
  const lines = log.split('\n').filter((l) => l.includes('too many handshakes in progress'));
  assert.ok(lines.length >= 1, 'the refusal is logged');
  assert.ok(lines.length <= 2, `refusals are logged once per source per interval, got ${lines.length} lines`);
  assert.ok(lines.every((l) => l.includes(IDLE_SOURCE)), 'the line names the source');
});
