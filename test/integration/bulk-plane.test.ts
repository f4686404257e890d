/**
 * The bulk plane between real node processes: sealed payloads leave TLS, nothing readable crosses
 * the loopback wire (tcpdump on the peer ports), and a node started with --no-bulk-plane works
 * with the others over TLS alone.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { request } from 'node:http';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { LocalCluster } from '../../src/cli/local-cluster.js';
import { captureLoopback, missingTcpdump } from '../helpers/loopback-capture.js';
import { missingTools, run } from '../helpers/nbd-harness.js';
import { collect, pieces } from './files-support.js';
import { VolumeCluster } from './volume-harness.js';

const MARKER = Buffer.from('BULK-PLANE-PLAINTEXT-MARKER-32B!');
const TIMING = ['--probe-interval', '300', '--suspicion-timeout', '1500'];
const MiB = 1 << 20;

/** Random bytes with the marker every 4 KiB. */
function markedData(size: number): Buffer {
  const b = randomBytes(size);
  for (let at = 0; at + MARKER.length <= size; at += 4096) MARKER.copy(b, at);
  return b;
}

const portOf = (addr: string) => Number(addr.slice(addr.lastIndexOf(':') + 1));

function metric(api: string, token: string, name: string, direction: string): Promise<number> {
  const [host, port] = [api.slice(0, api.lastIndexOf(':')), portOf(api)];
  return new Promise((resolve, reject) => {
    const req = request({ host, port, path: '/metrics', headers: { authorization: `Bearer ${token}` } }, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => (text += c.toString()));
      res.on('end', () => {
        const m = new RegExp(`^${name}\\{[^}]*direction="${direction}"[^}]*\\} (\\S+)$`, 'm').exec(text);
        resolve(m ? Number(m[1]) : 0);
      });
    });
    req.on('error', reject);
    req.end();
  });
}

test('files: chunk payloads go on the bulk plane, the wire never shows plaintext, and a --no-bulk-plane node interoperates', { skip: missingTcpdump() }, async (t) => {
  const cluster = await LocalCluster.create({ nodes: 3, memory: true, nodeArgs: TIMING, logLevel: 'warn', argsFor: (i) => (i === 2 ? ['--no-bulk-plane'] : []) });
  t.after(() => cluster.destroy());
  await cluster.waitForMembers({ alive: 3 });
  const [n0, n1, n2] = [cluster.node(0), cluster.node(1), cluster.node(2)];
  const capture = await captureLoopback(join(cluster.dir, 'peers.pcap'), [n0, n1, n2].map((n) => portOf(n.listen)));
  const data = markedData(3 * MiB);
  let stopped = false;
  try {
    const put = await n0.client.put(pieces(data), { name: 'marked.bin', chunkSize: 256 << 10 });
    assert.ok((await collect((await n1.client.get(put.fileId)).stream)).equals(data), 'read back through a bulk-plane node');
    assert.ok((await collect((await n2.client.get(put.fileId)).stream)).equals(data), 'read back through the --no-bulk-plane node');
    const { bytes, dropped } = await capture.stop();
    stopped = true;
    assert.equal(dropped, 0, 'tcpdump dropped no packet, so the capture is complete');
    assert.ok(bytes.length > 3 * MiB, `the capture holds the copies that crossed the wire (${bytes.length} bytes)`);
    assert.equal(bytes.indexOf(MARKER), -1, 'no plaintext marker on the wire between nodes');
  } finally {
    if (!stopped) await capture.stop();
  }
  const out0 = await metric(n0.api, n0.apiToken, 'tessera_peer_bulk_bytes_total', 'out');
  assert.ok(out0 >= 3 * MiB, `node 0 sent its copies for node 1 on the bulk plane (${out0} bytes)`);
  assert.equal(await metric(n2.api, n2.apiToken, 'tessera_peer_bulk_bytes_total', 'out'), 0, 'the --no-bulk-plane node sent nothing on it');
  assert.equal(await metric(n2.api, n2.apiToken, 'tessera_peer_bulk_bytes_total', 'in'), 0, 'and received nothing on it');
});

test('volumes: an NBD write and read move sealed sectors on the bulk plane, never plaintext', { skip: missingTcpdump() || missingTools(['nbdcopy']) }, async (t) => {
  const c = await VolumeCluster.create({ storage: 2 });
  t.after(() => c.destroy());
  await c.createVolume('bulkvol', 'raid1', 8 * MiB, [0, 1]);
  await c.waitOpen('bulkvol');
  const ports = [...c.storage.nodes.map((n) => portOf(n.listen)), portOf(c.master.peer)];
  const capture = await captureLoopback(join(c.storage.dir, 'volume.pcap'), ports);
  const data = markedData(4 * MiB);
  const src = join(c.storage.dir, 'marked.img');
  const back = join(c.storage.dir, 'back.img');
  await writeFile(src, data);
  let stopped = false;
  try {
    await run('nbdcopy', [src, c.uri('bulkvol')]);
    await run('nbdcopy', [c.uri('bulkvol'), back]);
    const { bytes, dropped } = await capture.stop();
    stopped = true;
    assert.equal(dropped, 0, 'tcpdump dropped no packet');
    assert.ok(bytes.length > 2 * 4 * MiB, `the capture holds both mirrored copies (${bytes.length} bytes)`);
    assert.equal(bytes.indexOf(MARKER), -1, 'no plaintext marker between master and members');
  } finally {
    if (!stopped) await capture.stop();
  }
  assert.ok((await readFile(back)).subarray(0, data.length).equals(data), 'the volume reads back what was written');
  for (const n of c.storage.nodes) {
    const got = await metric(n.api, n.apiToken, 'tessera_peer_bulk_bytes_total', 'in');
    assert.ok(got >= 4 * MiB, `member ${n.index} received its copy on the bulk plane (${got} bytes)`);
  }
});

test('volumes: batches of 4K random writes stay on TLS; whole sealed units go on the bulk plane', { skip: missingTools(['fio', 'nbdcopy']) }, async (t) => {
  const c = await VolumeCluster.create({ storage: 4 });
  t.after(() => c.destroy());
  await c.createVolume('smallio', 'raid0', 8 * MiB, [0, 1, 2, 3]);
  await c.waitOpen('smallio');
  const bulkIn = () => Promise.all(c.storage.nodes.map((n) => metric(n.api, n.apiToken, 'tessera_peer_bulk_bytes_total', 'in')));
  // Eight 4 KiB writes in flight over four members: a member's batch holds a few 4,160-byte
  // records, always under BULK_PLANE_MIN_BYTES (src/node.ts), though often over 16 KiB.
  await run('fio', ['--name=small', '--ioengine=nbd', `--uri=${c.uri('smallio')}`, '--rw=randwrite', '--bs=4k', '--iodepth=8',
    '--size=8M', '--number_ios=2000', '--randrepeat=0']);
  assert.deepEqual(await bulkIn(), [0, 0, 0, 0], 'no member received a 4K batch on the bulk plane');
  const src = join(c.storage.dir, 'whole.img');
  await writeFile(src, randomBytes(4 * MiB));
  await run('nbdcopy', [src, c.uri('smallio')]);
  for (const [i, got] of (await bulkIn()).entries()) {
    assert.ok(got >= MiB, `member ${i} received its whole units on the bulk plane (${got} bytes)`);
  }
});
