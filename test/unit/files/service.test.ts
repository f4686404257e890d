/** Files layers (composeFiles) wired to each other in one process through a fake network. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { composeFiles } from '../../../src/files/index.js';
import { MemoryChunkStore } from '../../../src/store/memory-store.js';
import { LOCAL_CHUNKS_AHEAD, LOCAL_LOADS_IN_FLIGHT } from '../../../src/files/reader.js';
import { openMetadata } from '../../../src/store/metadata.js';
import { parseFileId } from '../../../src/content/index.js';
import { silentLogger } from '../../../src/log.js';
import { cluster } from '../../helpers/files-mesh.js';

async function* pieces(...parts: Buffer[]) {
  for (const p of parts) yield p;
}

async function collect(s: AsyncIterable<Buffer>): Promise<Buffer> {
  const out: Buffer[] = [];
  for await (const p of s) out.push(p);
  return Buffer.concat(out);
}

test('a put through one service reads back through another; one node down still meets W=2', async (t) => {
  const c = await cluster(3);
  t.after(() => c.close());
  const data = randomBytes(10 * 4096 + 7);
  const a = c.services.get('node0')!;
  const b = c.services.get('node1')!;
  const put = await a.put(pieces(data), { chunkSize: 4096 });
  assert.equal(put.chunks, 11);
  assert.equal(put.newChunks, 11);
  const opened = await b.open(put.fileId);
  assert.ok((await collect(opened.read())).equals(data));
  assert.ok((await collect(opened.read(4090, 8200))).equals(data.subarray(4090, 8200)));

  c.down.add('node2');
  const other = randomBytes(3 * 4096);
  const put2 = await a.put(pieces(other), { chunkSize: 4096 });
  assert.ok((await collect((await b.open(put2.fileId)).read())).equals(other));
  c.down.add('node1');
  await assert.rejects(a.put(pieces(randomBytes(100))), { code: 'UNAVAILABLE' });
});

test('puts and reads complete with windows smaller than a claim batch', { timeout: 20_000 }, async (t) => {
  for (const window of [1, 2, 3]) {
    const c = await cluster(3, window);
    t.after(() => c.close());
    const data = randomBytes(9 * 4096 + 5);
    const put = await c.services.get('node0')!.put(pieces(data), { chunkSize: 4096 });
    assert.equal(put.chunks, 10, `window ${window}`);
    assert.ok((await collect((await c.services.get('node1')!.open(put.fileId)).read())).equals(data), `window ${window}`);
    const ec = await c.services.get('node0')!.put(pieces(data), { chunkSize: 4096, ec: { k: 2, m: 1 } });
    assert.ok((await collect((await c.services.get('node2')!.open(ec.fileId)).read())).equals(data), `window ${window}, ec 2+1`);
  }
});

test("a read takes few chunks from the node's own store at once, whatever the window", async (t) => {
  const c = await cluster(3, 8);
  t.after(() => c.close());
  const data = randomBytes(20 * 4096);
  // Three replicas on three nodes: every chunk is local to every node.
  const put = await c.services.get('node0')!.put(pieces(data), { chunkSize: 4096, replicas: 3 });
  const reader = c.stores.get('node1')!;
  reader.maxReadsInFlight = 0;
  assert.ok((await collect((await c.services.get('node1')!.open(put.fileId)).read())).equals(data));
  assert.ok(reader.maxReadsInFlight >= 1);
  assert.ok(reader.maxReadsInFlight <= LOCAL_LOADS_IN_FLIGHT, `${reader.maxReadsInFlight} local reads at once`);
});

test('a read with reuse yields the same bytes, each piece valid until the next is asked for', async (t) => {
  const c = await cluster(3);
  t.after(() => c.close());
  const data = randomBytes(9 * 4096 + 5);
  const put = await c.services.get('node0')!.put(pieces(data), { chunkSize: 4096 });
  for (const reader of ['node0', 'node1']) {
    const opened = await c.services.get(reader)!.open(put.fileId);
    const copy = async (s: AsyncIterable<Buffer>) => {
      const out: Buffer[] = [];
      for await (const p of s) out.push(Buffer.from(p));
      return Buffer.concat(out);
    };
    assert.ok((await copy(opened.read(0, data.length, undefined, { reuse: true }))).equals(data));
    assert.ok((await copy(opened.read(4000, 20000, undefined, { reuse: true }))).equals(data.subarray(4000, 20000)));
  }
});

test('ranged reads at once share the node\'s buffers, each yielding its own bytes; a read holds few local chunks ahead of its consumer', async (t) => {
  const c = await cluster(3, 16);
  t.after(() => c.close());
  const data = randomBytes(40 * 4096);
  const put = await c.services.get('node0')!.put(pieces(data), { chunkSize: 4096, replicas: 3 });
  const svc = c.services.get('node1')!;
  const opened = await svc.open(put.fileId);
  // Ten ranges of eight chunks read at once, as aws-cli downloads; each piece is copied only
  // after a turn of the event loop, so a buffer handed to another read meanwhile would show.
  const range = async (i: number) => {
    const out: Buffer[] = [];
    for await (const p of opened.read(i * 4 * 4096, Math.min(data.length, (i * 4 + 8) * 4096), undefined, { reuse: true })) {
      await new Promise((r) => setImmediate(r));
      out.push(Buffer.from(p));
    }
    return Buffer.concat(out);
  };
  for (let round = 0; round < 2; round++) {
    const got = await Promise.all(Array.from({ length: 10 }, (_, i) => range(i)));
    got.forEach((g, i) => assert.ok(g.equals(data.subarray(i * 4 * 4096, Math.min(data.length, (i * 4 + 8) * 4096))), `range ${i}, round ${round}`));
  }
  // A consumer that takes one piece and waits: the read loads at most LOCAL_CHUNKS_AHEAD more.
  const store = c.stores.get('node1')!;
  const before = store.gets.length;
  const it = opened.read(0, data.length, undefined, { reuse: true })[Symbol.asyncIterator]();
  assert.ok((await it.next()).value.equals(data.subarray(0, 4096)));
  await new Promise((r) => setTimeout(r, 100));
  const loaded = store.gets.length - before;
  assert.ok(loaded >= 2 && loaded <= LOCAL_CHUNKS_AHEAD + 1, `${loaded} chunks loaded while the consumer held the first`);
  await it.return?.(undefined);
});

test('the same bytes stored twice send no chunk payload the second time', async (t) => {
  const c = await cluster(3);
  t.after(() => c.close());
  const data = randomBytes(6 * 4096);
  const a = c.services.get('node0')!;
  await a.put(pieces(data), { chunkSize: 4096 });
  c.calls.length = 0;
  const again = await a.put(pieces(data), { chunkSize: 4096 });
  assert.equal(again.newChunks, 0);
  const dataPuts = c.calls.filter((x) => x.endsWith('chunk.put')).length;
  assert.ok(dataPuts <= 2, `only the new manifest root travels (${dataPuts} chunk.put calls)`);
});

test("only the writer's own copy skips the store's hash; copies from peers are verified", async (t) => {
  const c = await cluster(3);
  t.after(() => c.close());
  await c.services.get('node0')!.put(pieces(randomBytes(5 * 4096)), { chunkSize: 4096 });
  const own = c.stores.get('node0')!.puts;
  assert.ok(own.length > 0 && own.every((p) => p.verified), 'node0 hashed these chunks itself');
  for (const peer of ['node1', 'node2']) {
    const got = c.stores.get(peer)!.puts;
    assert.ok(got.length > 0 && got.every((p) => !p.verified), `${peer} received its copies over the network`);
  }
  // A peer cannot claim the shortcut: a request from the network never carries it.
  await assert.rejects(c.nodes.get('node1')!.peer.handle('chunk.put', { id: Buffer.alloc(32), verified: true }, Buffer.from('x')), { code: 'BAD_INPUT' });
  await assert.rejects(c.nodes.get('node1')!.peer.handle('chunk.put', { id: Buffer.alloc(32) }, Buffer.from('not matching')), { code: 'CORRUPT' });
});

test("a read decrypts this node's own copies without hashing them first; a rotten copy is still caught, quarantined and read elsewhere", async (t) => {
  const c = await cluster(3);
  t.after(() => c.close());
  const data = randomBytes(10 * 4096);
  const put = await c.services.get('node0')!.put(pieces(data), { chunkSize: 4096, replicas: 3 });
  const store = c.stores.get('node1')!;
  const root = parseFileId(put.fileId).rootId.toString('hex');
  const dataIds = new Set(store.puts.map((p) => p.id).filter((id) => id !== root));
  assert.equal(dataIds.size, 10);
  store.gets.length = 0;
  assert.ok((await collect((await c.services.get('node1')!.open(put.fileId)).read())).equals(data));
  const dataGets = store.gets.filter((g) => dataIds.has(g.id));
  assert.equal(dataGets.length, 10, 'each local data chunk is read once');
  assert.ok(dataGets.every((g) => g.unverified), 'and authenticated by its GCM tag, not hashed by the store');

  for (const hex of dataIds) await store.rot(Buffer.from(hex, 'hex'));
  store.gets.length = 0;
  assert.ok((await collect((await c.services.get('node1')!.open(put.fileId)).read())).equals(data), 'the rotten copies are read elsewhere');
  const quarantined = new Set<string>();
  for await (const id of store.listQuarantined()) quarantined.add(id.toString('hex'));
  assert.deepEqual([...dataIds].filter((id) => !quarantined.has(id)), [], 'every rotten copy was caught by the verified re-read and quarantined');
  assert.ok(store.gets.some((g) => !g.unverified && dataIds.has(g.id)), 'a copy that failed its tag was read again with the hash check');
});

test('malformed peer requests are refused with BAD_INPUT, never a crash', async (t) => {
  const c = await cluster(1);
  t.after(() => c.close());
  const s = c.nodes.get('node0')!.peer;
  const bad: [string, unknown][] = [
    ['chunk.put', { id: Buffer.alloc(3) }],
    ['chunk.claim', { upload: 'x', ids: [] }],
    ['chunk.has', { ids: Array.from({ length: 2000 }, () => Buffer.alloc(32)) }],
    ['file.rm', { root: 'zz', at: 1 }],
    ['name.put', { key: Buffer.alloc(32), hlc: { wall: -1, logical: 0, node: 'x' }, box: Buffer.alloc(40) }],
    ['name.list', { limit: 1_000_000 }],
    ['chunk.nope', {}],
    ['chunk.get', null],
  ];
  for (const [m, body] of bad) await assert.rejects(s.handle(m, body, Buffer.alloc(0)), { code: 'BAD_INPUT' }, m);
  await assert.rejects(s.handle('chunk.put', { id: Buffer.alloc(32) }, Buffer.from('not matching')), { code: 'CORRUPT' });
});

test('a storage-only service refuses puts and reads with AUTH', async () => {
  const meta = await openMetadata(null);
  try {
    const { service: s } = composeFiles({
      net: { selfId: 'n', live: () => [{ nodeId: 'n', capacity: 1 }], caller: { selfId: 'n', isHeldDown: () => false, call: async () => ({ body: {}, payload: Buffer.alloc(0) }) } },
      store: new MemoryChunkStore(),
      meta,
      log: silentLogger,
    });
    await assert.rejects(s.put(pieces(Buffer.from('x'))), { code: 'AUTH', message: /storage-only/ });
    await assert.rejects(s.open('anything'), { code: 'AUTH' });
  } finally {
    await meta.close();
  }
});

test('composeFiles refuses tuning out of range before it builds anything', async () => {
  const meta = await openMetadata(null);
  try {
    const base = {
      net: { selfId: 'n', live: () => [{ nodeId: 'n', capacity: 1 }], caller: { selfId: 'n', isHeldDown: () => false, call: async () => ({ body: {}, payload: Buffer.alloc(0) }) } },
      store: new MemoryChunkStore(),
      meta,
      log: silentLogger,
    };
    assert.throws(() => composeFiles({ ...base, gcGraceMs: -1 }), { code: 'BAD_INPUT', message: /gc grace period/ });
    assert.throws(() => composeFiles({ ...base, windowChunks: 0 }), { code: 'BAD_INPUT', message: /window must be/ });
    assert.throws(() => composeFiles({ ...base, defaultPolicy: { kind: 'replicas', r: 2, w: 3 } }), { code: 'BAD_INPUT', message: /redundancy policy/ });
    assert.equal(composeFiles({ ...base, windowChunks: 1 }).service.defaultPolicy.kind, 'replicas');
  } finally {
    await meta.close();
  }
});

test('a member without the data key cannot remove a file through anti-entropy', async (t) => {
  const c = await cluster(3);
  t.after(() => c.close());
  const data = randomBytes(3 * 4096);
  const a = c.services.get('node0')!;
  const put = await a.put(pieces(data), { chunkSize: 4096 });
  const root = parseFileId(put.fileId).rootId.toString('hex');
  c.forged.set('node2', (method) => (method === 'file.tombstones' ? { items: [{ root, at: Date.now() }], more: false } : undefined));
  const aNode = c.nodes.get('node0')!;
  const refusedBefore = aNode.authorityGate.refused;
  aNode.peerUp('node2');
  for (let i = 0; i < 100 && !c.calls.includes('node2 file.tombstones'); i++) await new Promise((r) => setTimeout(r, 10));
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(aNode.authorityGate.refused - refusedBefore, 1, 'the unproven tombstone was refused');
  assert.equal(((await aNode.peer.handle('file.tombstones', { limit: 10 }, Buffer.alloc(0))).body as { items: unknown[] }).items.length, 0, 'no tombstone was stored');
  assert.ok((await collect((await a.open(put.fileId)).read())).equals(data));
});

test('a composite file is stitched from its parts without copying them, reads across part boundaries, and removing it removes the parts', async (t) => {
  const c = await cluster(3, 4, { gcGraceMs: 0 });
  t.after(() => c.close());
  const a = c.services.get('node0')!;
  const b = c.services.get('node1')!;
  const datas = [randomBytes(3 * 4096 + 11), randomBytes(4096), randomBytes(2 * 4096 + 1)];
  const parts = [];
  for (const d of datas) parts.push((await a.put(pieces(d), { chunkSize: 4096 })).fileId);
  const chunksBefore = c.stores.get('node0')!.puts.length;
  const composite = await a.putComposite(parts);
  assert.equal(c.stores.get('node0')!.puts.length - chunksBefore, 1, 'only the composite root was stored');
  const whole = Buffer.concat(datas);
  assert.equal(composite.size, whole.length);
  assert.equal(composite.chunks, 4 + 1 + 3);
  const opened = await b.open(composite.fileId);
  assert.equal(opened.totalSize, whole.length);
  assert.ok((await collect(opened.read())).equals(whole));
  for (const [s, e] of [[3 * 4096 + 5, 4 * 4096 + 20], [0, 1], [whole.length - 3, whole.length], [4096, 6 * 4096]] as const) {
    assert.ok((await collect(opened.read(s, e))).equals(whole.subarray(s, e)), `${s}-${e}`);
  }
  assert.equal((await b.stat(composite.fileId)).chunks, 8);
  await assert.rejects(a.putComposite([composite.fileId]), { code: 'BAD_INPUT', message: /itself a composite/ });
  await assert.rejects(a.putComposite([]), { code: 'BAD_INPUT' });

  await a.removeFile(composite.fileId);
  await assert.rejects(b.open(composite.fileId), { code: 'NOT_FOUND' });
  for (const p of parts) await assert.rejects(b.open(p), { code: 'NOT_FOUND' }, 'each part went with the composite');
  // With no grace period, the sweep deletes every chunk the parts and the composite held.
  for (const s of c.services.values()) await s.host.sweep();
  for (const [id, store] of c.stores) assert.equal((await c.services.get(id)!.listChunks(100)).ids.length, 0, `${id} holds no chunk (${store.puts.length} were stored)`);
});

test('a put with unique gets a file id of its own for the same bytes; removing one leaves the other readable', async (t) => {
  const c = await cluster(3, 4);
  t.after(() => c.close());
  const a = c.services.get('node0')!;
  const data = randomBytes(3 * 4096 + 1);
  const one = await a.put(pieces(data), { chunkSize: 4096, unique: true });
  const two = await a.put(pieces(data), { chunkSize: 4096, unique: true });
  assert.notEqual(one.fileId, two.fileId);
  assert.equal(two.newChunks, 0, 'the data chunks are still shared');
  await a.removeFile(one.fileId);
  assert.ok((await collect((await c.services.get('node1')!.open(two.fileId)).read())).equals(data));
});
