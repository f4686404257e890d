/**
 * Files through real node processes (memory stores): edge sizes, ranges across chunk borders,
 * dedup, names visible from every node, stat, and the errors a client can provoke.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { LocalCluster, freePort } from '../../src/cli/local-cluster.js';
import { connect } from '../../src/client/index.js';
import { TesseraError } from '../../src/errors.js';
import { formatFileId } from '../../src/content/ids.js';
import { apiStatus, collect, pieces, seededBuffer } from './files-support.js';

const CS = 64 << 10;
const TIMING = ['--probe-interval', '300', '--suspicion-timeout', '1500'];

async function rejectsWith(p: Promise<unknown>, code: string, re?: RegExp): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof TesseraError, `expected a TesseraError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    if (re) assert.match(e.message, re);
    return true;
  });
}

test('files through a three-node cluster: sizes, ranges, dedup, names, stat, errors', async (t) => {
  const cluster = await LocalCluster.create({ nodes: 3, memory: true, nodeArgs: TIMING, logLevel: 'warn' });
  t.after(() => cluster.destroy());
  await cluster.waitForMembers({ alive: 3 });
  const [a, b, c] = [cluster.node(0).client, cluster.node(1).client, cluster.node(2).client];

  await t.test('edge sizes round-trip through another node, by id and by name', async () => {
    for (const size of [0, 1, CS - 1, CS, CS + 1, 3 * CS + 17]) {
      const data = await seededBuffer(`size-${size}`, size);
      const put = await a.put(pieces(data), { name: `edge/${size}.bin`, chunkSize: CS });
      assert.equal(put.size, size);
      assert.equal(put.chunks, Math.ceil(size / CS));
      assert.equal(put.name, `edge/${size}.bin`);
      assert.equal(put.policy, 'replicas:3/2');
      const byId = await b.get(put.fileId);
      assert.equal(byId.totalSize, size);
      assert.equal(byId.size, size);
      assert.ok((await collect(byId.stream)).equals(data), `size ${size} by id`);
      const byName = await c.get(`edge/${size}.bin`);
      assert.equal(byName.fileId, put.fileId);
      assert.ok((await collect(byName.stream)).equals(data), `size ${size} by name`);
    }
  });

  await t.test('byte ranges across chunk borders', async () => {
    const size = 3 * CS + 17;
    const data = await seededBuffer(`size-${size}`, size);
    const cases: [number, number | undefined][] = [
      [CS - 10, 2 * CS + 5],
      [0, 0],
      [CS, CS],
      [size - 1, undefined],
      [2 * CS - 1, size - 1],
      [5, 3 * CS],
    ];
    for (const [start, end] of cases) {
      const r = await c.get(`edge/${size}.bin`, { start, ...(end !== undefined ? { end } : {}) });
      const want = data.subarray(start, (end ?? size - 1) + 1);
      assert.equal(r.size, want.length);
      assert.equal(r.totalSize, size);
      assert.ok((await collect(r.stream)).equals(want), `range ${start}-${end}`);
    }
    const node = cluster.node(1);
    const outside = await apiStatus(node.api, `/api/v1/files/${encodeURIComponent(`edge/${size}.bin`)}`, { token: node.apiToken, headers: { range: `bytes=${size}-` } });
    assert.equal(outside.status, 416);
    assert.equal(outside.headers.get('content-range'), `bytes */${size}`);
    const empty = await apiStatus(node.api, `/api/v1/files/${encodeURIComponent('edge/0.bin')}`, { token: node.apiToken, headers: { range: 'bytes=0-' } });
    assert.equal(empty.status, 416);
    await rejectsWith(b.get(`edge/${size}.bin`, { start: size + 5 }), 'BAD_INPUT', /outside/);
    const head = await fetch(`http://${node.api}/api/v1/files/${encodeURIComponent(`edge/${size}.bin`)}`, { method: 'HEAD', headers: { authorization: `Bearer ${node.apiToken}` } });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get('content-length'), String(size));
  });

  await t.test('the same content stored again is deduplicated', async () => {
    const data = await seededBuffer('dedup', 5 * CS);
    const first = await a.put(pieces(data), { chunkSize: CS });
    assert.equal(first.newChunks, 5);
    const again = await b.put(pieces(data.subarray(0, 2 * CS), data.subarray(2 * CS)), { chunkSize: CS, name: 'dedup-again' });
    // The manifest records the creation time, so only the data chunks are shared.
    assert.equal(again.chunks, 5);
    assert.equal(again.newChunks, 0, 'every chunk was already stored');
    const shifted = await c.put(pieces(data.subarray(0, 3 * CS), randomBytes(CS)), { chunkSize: CS });
    assert.equal(shifted.newChunks, 1, 'only the new fourth chunk is sent');
  });

  await t.test('ls lists the names through every node; stat shows holders and health', async () => {
    for (const client of [a, b, c]) {
      const list = (await client.ls()).files;
      const names = list.map((e) => e.name);
      for (const size of [0, 1, CS - 1, CS, CS + 1]) assert.ok(names.includes(`edge/${size}.bin`), `${client.address} lists edge/${size}.bin`);
      const e = list.find((x) => x.name === `edge/${CS + 1}.bin`)!;
      assert.equal(e.size, CS + 1);
      assert.match(e.etag, /^[0-9a-f]{32}$/, 'the ETag is the MD5 of the contents');
      assert.ok(Date.now() - Date.parse(e.createdAt) < 600_000);
    }
    const st = await b.stat(`edge/${3 * CS + 17}.bin`);
    assert.equal(st.chunks, 4);
    assert.equal(st.chunkSize, CS);
    assert.equal(st.size, 3 * CS + 17);
    assert.deepEqual(st.health, { fullRedundancy: 4, degraded: 0, lost: 0 });
    assert.equal(st.chunkHealth.length, 4);
    const all = cluster.nodes.map((n) => n.nodeId).sort();
    for (const ch of st.chunkHealth) {
      assert.deepEqual(ch.holders, all);
      assert.deepEqual([...ch.expected].sort(), all);
    }
  });

  await t.test('a name put through one node again points at the newer file everywhere', async () => {
    const one = await a.put(pieces(Buffer.from('first version')), { name: 'versioned.txt' });
    const two = await c.put(pieces(Buffer.from('second version!')), { name: 'versioned.txt' });
    assert.notEqual(one.fileId, two.fileId);
    for (const client of [a, b, c]) {
      const r = await client.get('versioned.txt');
      assert.equal(r.fileId, two.fileId);
      assert.equal((await collect(r.stream)).toString(), 'second version!');
    }
  });

  await t.test('bad references, bad options and missing tokens are refused with the right code and status', async () => {
    const unknownId = formatFileId(randomBytes(32), randomBytes(32));
    await rejectsWith(a.get(unknownId), 'NOT_FOUND', /not stored/);
    await rejectsWith(a.stat(unknownId), 'NOT_FOUND');
    await rejectsWith(a.rm(unknownId), 'NOT_FOUND');
    await rejectsWith(a.get('tsr1abc'), 'BAD_INPUT', /not a valid file id/);
    await rejectsWith(a.get(unknownId.slice(0, -1) + '!'), 'BAD_INPUT');
    await rejectsWith(a.get('no such file.txt'), 'NOT_FOUND', /no file is named/);
    await rejectsWith(a.put(pieces(Buffer.from('x')), { replicas: 0 }), 'BAD_INPUT', /replicas/);
    await rejectsWith(a.put(pieces(Buffer.from('x')), { replicas: 2, quorum: 3 }), 'BAD_INPUT', /quorum/);
    await rejectsWith(a.put(pieces(Buffer.from('x')), { chunkSize: 100 }), 'BAD_INPUT', /chunk size/);
    await rejectsWith(a.put(pieces(Buffer.from('x')), { replicas: 5, quorum: 4 }), 'UNAVAILABLE', /live node/);
    await rejectsWith(a.put(pieces(Buffer.from('x')), { name: 'bad\u0001name' }), 'BAD_INPUT', /control character/);
    const n0 = cluster.node(0);
    assert.equal((await apiStatus(n0.api, `/api/v1/files/${unknownId}`, { token: n0.apiToken })).status, 404);
    assert.equal((await apiStatus(n0.api, '/api/v1/files/tsr1abc', { token: n0.apiToken })).status, 400);
    assert.equal((await apiStatus(n0.api, `/api/v1/files/nothing-here`, { token: n0.apiToken })).status, 404);
    assert.equal((await apiStatus(n0.api, `/api/v1/files/nothing-here`)).status, 401, 'reads need the token on loopback too');
    const noToken = await apiStatus(n0.api, '/api/v1/files?name=x', { method: 'PUT', body: 'hello' });
    assert.equal(noToken.status, 401);
    assert.equal((await apiStatus(n0.api, `/api/v1/files/${unknownId}`, { method: 'DELETE' })).status, 401);
    const badQuery = await apiStatus(n0.api, '/api/v1/files?replicas=-1', { method: 'PUT', body: 'hello', token: n0.apiToken });
    assert.equal(badQuery.status, 400);
    const names = (await a.ls()).files.map((e) => e.name);
    assert.ok(!names.includes('x') && !names.some((n) => n.startsWith('bad')), 'refused puts recorded no name');
    const nobody = connect({ api: `127.0.0.1:${await freePort()}`, token: n0.apiToken });
    await rejectsWith(nobody.put(pieces(Buffer.from('x'))), 'UNAVAILABLE', /no tessera node answers/);
    await rejectsWith(nobody.get(unknownId), 'UNAVAILABLE');
  });
});
