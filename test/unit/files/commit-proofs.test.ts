import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import pino from 'pino';
import { AuthoritySigner, AuthorityVerifier, MAX_PROOF_FUTURE_MS } from '../../../src/content/authority.js';
import { AuthorityGate } from '../../../src/files/authority-gate.js';
import { openMetadata } from '../../../src/store/metadata.js';
import { RefStore } from '../../../src/files/refs.js';
import { proveLegacyCommits } from '../../../src/files/legacy-commits.js';
import type { Peers } from '../../../src/files/peers.js';
import { silentLogger } from '../../../src/log.js';
import { chunkIdOf } from '../../../src/content/index.js';
import { cluster } from '../../helpers/files-mesh.js';

const NOW = 1_800_000_000_000;
const signer = new AuthoritySigner(randomBytes(32));
const forger = new AuthoritySigner(randomBytes(32));
const U = 'a'.repeat(32);
const U2 = 'b'.repeat(32);
const ROOT = 'c'.repeat(64);
const chunk = (n: number) => Buffer.from(n.toString(16).padStart(64, '0'), 'hex');

function gate() {
  const lines: Record<string, unknown>[] = [];
  const log = pino({ level: 'warn' }, { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) });
  return { g: new AuthorityGate(new AuthorityVerifier(signer.publicKey), log, () => NOW), lines };
}

test('a pin proves one upload holds one chunk: no pin, a forged one, or one for another chunk or upload is refused', () => {
  const { g, lines } = gate();
  const pin = signer.prove({ kind: 'pin', upload: U, chunk: chunk(1) });
  assert.doesNotThrow(() => g.pins('chunk.put', U, [chunk(1)], [pin], 'p'));
  assert.throws(() => g.pins('chunk.put', U, [chunk(1)], undefined, 'p'), { code: 'AUTH', message: /no proof/ });
  assert.throws(() => g.pins('chunk.put', U, [chunk(1)], [randomBytes(64)], 'p'), { code: 'AUTH', message: /does not match/ });
  assert.throws(() => g.pins('chunk.put', U, [chunk(1)], [forger.prove({ kind: 'pin', upload: U, chunk: chunk(1) })], 'p'), { code: 'AUTH' });
  assert.throws(() => g.pins('chunk.put', U, [chunk(2)], [pin], 'p'), { code: 'AUTH' }, 'replayed on another chunk');
  assert.throws(() => g.pins('chunk.put', U2, [chunk(1)], [pin], 'p'), { code: 'AUTH' }, 'replayed for another upload');
  assert.throws(() => g.pins('chunk.claim', U, [chunk(1), chunk(2)], [pin], 'p'), { code: 'AUTH', message: /1 pins for 2 chunks/ });
  assert.equal(g.refused, 6);
  assert.equal(lines.length, 1, 'one line per sender per interval');
});

test('a commit proof binds upload, root and time, and may not be dated ahead; an abort proof binds its upload', () => {
  const { g } = gate();
  const proof = signer.prove({ kind: 'commit', upload: U, root: ROOT, at: NOW });
  assert.doesNotThrow(() => g.commit('file.commit', { upload: U, root: ROOT, at: NOW, proof }, 'p'));
  assert.throws(() => g.commit('file.commit', { upload: U, root: ROOT, at: NOW }, 'p'), { code: 'AUTH', message: /no proof/ });
  assert.throws(() => g.commit('file.commit', { upload: U, root: 'd'.repeat(64), at: NOW, proof }, 'p'), { code: 'AUTH' }, 'another root');
  assert.throws(() => g.commit('file.commit', { upload: U2, root: ROOT, at: NOW, proof }, 'p'), { code: 'AUTH' }, 'another upload');
  assert.throws(() => g.commit('file.commit', { upload: U, root: ROOT, at: NOW + 1, proof }, 'p'), { code: 'AUTH' }, 'another time');
  const ahead = NOW + MAX_PROOF_FUTURE_MS + 1;
  assert.throws(() => g.commit('file.commit', { upload: U, root: ROOT, at: ahead, proof: signer.prove({ kind: 'commit', upload: U, root: ROOT, at: ahead }) }, 'p'), { code: 'AUTH', message: /future/ });
  // Statements of different kinds never stand for each other.
  assert.throws(() => g.pins('chunk.put', U, [Buffer.from(ROOT, 'hex')], [proof], 'p'), { code: 'AUTH' });
  assert.doesNotThrow(() => g.abort(U, signer.prove({ kind: 'abort', upload: U }), 'p'));
  assert.throws(() => g.abort(U2, signer.prove({ kind: 'abort', upload: U }), 'p'), { code: 'AUTH' });
  assert.equal(g.allows(() => g.abort(U, undefined, 'p')), false);
});

test('records of the previous format: a full node proves its own, every reference once, then marks the store done', async (t) => {
  const meta = await openMetadata(null);
  t.after(() => meta.close());
  const refs = new RefStore(meta);
  // As the previous version stored them: references and commits without any proof.
  const n = 2500;
  const ids = Array.from({ length: n }, (_, i) => chunk(i + 1).toString('hex'));
  await refs.addRefs(U, ids, NOW);
  await refs.commit(U, ROOT, NOW, 1000, NOW);
  await refs.addRefs(U2, [ids[0]!], NOW); // pending: not proven, not a commit
  assert.equal(refs.unproven(undefined, 10_000).length, n);
  assert.equal(refs.committedOwners(ids[0]!, 10)[0]?.proof, undefined);

  const stopped = () => false;
  const peers = {} as Peers;
  const g = gate().g;
  assert.deepEqual(await proveLegacyCommits({ refs, meta, log: silentLogger, stopped, signer, peers, gate: g }), { proven: n, left: 0 });
  assert.equal(refs.unproven(undefined, 10_000).length, 0);
  for (const hex of [ids[0]!, ids[n - 1]!]) {
    const [o] = refs.committedOwners(hex, 10);
    assert.ok(o?.proof && o.pin, 'both proofs held');
    assert.doesNotThrow(() => g.commit('heal.owners', o, 'p'));
    assert.doesNotThrow(() => g.pins('heal.owners', o.upload, [Buffer.from(hex, 'hex')], [o.pin], 'p'));
  }
  assert.equal(refs.committedOwners(ids[0]!, 10).length, 1, 'the pending upload is no owner to hand on');
  // Done once: a later start does not scan again.
  await refs.addRefs(U, [chunk(n + 5).toString('hex')], NOW);
  assert.deepEqual(await proveLegacyCommits({ refs, meta, log: silentLogger, stopped, signer, peers, gate: g }), { proven: 0, left: 0 });
});

test('a storage-only node cannot sign: with no member to answer, its unproven records are left as they are', async (t) => {
  const meta = await openMetadata(null);
  t.after(() => meta.close());
  const refs = new RefStore(meta);
  await refs.addRefs(U, [chunk(1).toString('hex')], NOW);
  await refs.commit(U, ROOT, NOW, 1000, NOW);
  const peers = { selfId: 'me', live: () => [] } as unknown as Peers;
  const r = await proveLegacyCommits({ refs, meta, log: silentLogger, stopped: () => false, peers, gate: gate().g });
  assert.deepEqual(r, { proven: 0, left: 1 });
  assert.equal(refs.hasRefs(chunk(1).toString('hex')), true, 'the reference still holds its chunk');
  assert.equal(refs.unproven(undefined, 10).length, 1, 'and is still unproven, to be asked about again');
});

test('a member that says an upload committed (file.uploads) must show the writer\'s proof, or the upload is given up here', async (t) => {
  const dataKey = randomBytes(32);
  const c = await cluster(3, 4, { dataKey, gcGraceMs: 0, pendingUploadTtlMs: 0 });
  t.after(() => c.close());
  const writer = new AuthoritySigner(dataKey);
  const node = c.nodes.get('node1')!;
  const holder = node.service;
  const uploads = { forged: 'e'.repeat(32), proven: 'f'.repeat(32) };
  const data = new Map<string, Buffer>();
  for (const upload of Object.values(uploads)) {
    const bytes = randomBytes(1000);
    const id = chunkIdOf(bytes);
    data.set(upload, id);
    // The writer stored a chunk here and its commit never arrived.
    await node.peer.handle('chunk.put', { upload, id, pin: writer.prove({ kind: 'pin', upload, chunk: id }) }, bytes, false, undefined, 'node0');
  }
  const at = Date.now();
  const RF = 'd'.repeat(64);
  c.forged.set('node2', (method) =>
    method === 'file.uploads'
      ? { committed: [{ upload: uploads.forged, root: RF, at }, { upload: uploads.proven, root: RF, at, proof: writer.prove({ kind: 'commit', upload: uploads.proven, root: RF, at }) }] }
      : undefined,
  );
  const refusedBefore = node.authorityGate.refused;
  await new Promise((r) => setTimeout(r, 5));
  await holder.host.sweep();
  assert.equal(node.authorityGate.refused - refusedBefore, 1, 'the unproven answer was refused');
  const committed = (await node.peer.handle('file.uploads', { ids: Object.values(uploads) }, Buffer.alloc(0))).body as { committed: { upload: string; proof?: Uint8Array }[] };
  assert.deepEqual(committed.committed.map((x) => x.upload), [uploads.proven], 'only the proven commit was taken');
  assert.equal(committed.committed[0]!.proof?.length, 64, 'with its proof, to hand on');
  await holder.host.sweep();
  const store = c.stores.get('node1')!;
  assert.equal(await store.has(data.get(uploads.forged)!), false, 'the unproven upload was given up and its chunk collected');
  assert.equal(await store.has(data.get(uploads.proven)!), true);
});
