/**
 * Commit proofs against real node processes. A storage-only member (a harness identity that
 * completes the real handshake with a storage-only token's keys) tries to make its own junk
 * stay: references under uploads without the writer's pin, commits without proof or with a
 * proof for another root or upload, the owners of a "repaired" copy without proofs or replayed
 * from another chunk, and an abort of a committed upload. Each is refused with AUTH and logged at
 * a bounded rate, nothing it sent is pinned, and its junk is collected after the grace period.
 * Meanwhile puts, repair (with storage-only nodes as the only surviving holders of some chunks)
 * and rebalance work, their proofs passing through storage-only nodes.
 *
 * A second test starts from data directories in the previous format (no proofs anywhere): full
 * nodes prove their records, the storage-only node adopts their proofs, nothing is collected,
 * and repair still works.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { LocalCluster, waitFor } from '../../src/cli/local-cluster.js';
import type { ClusterKeys } from '../../src/cluster/identity.js';
import { AuthoritySigner, authorityPublicKey } from '../../src/content/index.js';
import { openMetadata } from '../../src/store/metadata.js';
import { admittedPeer } from '../helpers/admitted-peer.js';
import { collect, pieces, seededBuffer } from './files-support.js';
import { FAST_FAILURE, copyCounts, holdings } from './heal-support.js';

const CS = 16 << 10;
const GC_GRACE_MS = 3000;
const TIMING = [...FAST_FAILURE, '--repair-grace-ms', '2000', '--repair-interval-ms', '1500', '--gc-grace-ms', String(GC_GRACE_MS), '--anti-entropy-ms', '2000'];
const REFUSED = 'refused a destructive message from a member';

function storageOnlyKeys(keys: ClusterKeys): ClusterKeys {
  return { clusterId: keys.clusterId, clusterSecret: keys.clusterSecret, authorityKey: authorityPublicKey(keys.dataKey!) };
}

async function logLines(cluster: LocalCluster, i: number, needle: string): Promise<string[]> {
  return (await readFile(join(cluster.dir, `node${i}.log`), 'utf8')).split('\n').filter((l) => l.includes(needle));
}

/** Waits until every chunk of `before` has exactly `r` copies among `live`, and again once a grace period later. */
async function settledCopies(cluster: LocalCluster, live: number[], ids: Iterable<string>, r: number, what: string): Promise<void> {
  const want = [...ids];
  let counts = new Map<string, number>();
  const exact = async () => {
    counts = copyCounts(await holdings(cluster, live));
    return want.every((id) => counts.get(id) === r);
  };
  await waitFor(`${what}: every chunk at exactly ${r} live copies`, 120_000, exact).catch((err: unknown) => {
    const off = want.filter((id) => counts.get(id) !== r).map((id) => `${id.slice(0, 12)}: ${counts.get(id) ?? 0}`);
    throw new Error(`${(err as Error).message}; off: ${off.slice(0, 8).join(', ')} (${off.length} in all)`);
  });
  // The new copies are owned (their owners' proofs were accepted): none is collected as an orphan.
  // Rebalance may still be moving a copy (one more while it lands on its new home), never one less.
  await new Promise((res) => setTimeout(res, GC_GRACE_MS + 2000));
  counts = copyCounts(await holdings(cluster, live));
  const short = want.filter((id) => (counts.get(id) ?? 0) < r).map((id) => `${id.slice(0, 12)}: ${counts.get(id) ?? 0}`);
  assert.deepEqual(short, [], `${what}: no chunk below ${r} copies a grace period later`);
  await waitFor(`${what}: every chunk back at exactly ${r} live copies`, 60_000, exact);
}

test('a storage-only member cannot make its junk stay; puts, repair and rebalance carry proofs through storage-only nodes', { timeout: 300_000 }, async (t) => {
  const cluster = await LocalCluster.create({ nodes: 3, memory: true, logLevel: 'info', nodeArgs: TIMING });
  t.after(() => cluster.destroy({ keep: process.env.KEEP === '1' }));
  const storageKeys = storageOnlyKeys(cluster.keys);
  const s1 = await cluster.addNode({ keys: storageKeys });
  const s2 = await cluster.addNode({ keys: storageKeys });
  await cluster.waitForMembers({ alive: 5 });

  const data = await seededBuffer('commit-proofs', 200 * CS + 77);
  const put = await cluster.node(0).client.put(pieces(data), { name: 'f.bin', chunkSize: CS, replicas: 3 });
  const before = copyCounts(await holdings(cluster, [0, 1, 2, 3, 4]));
  assert.ok(before.size > 200);
  // At least 3: a holder slow to answer makes the writer go on to the next-ranked node, and repair trims the extra copy later.
  for (const [id, n] of before) assert.ok(n >= 3, `chunk ${id.slice(0, 12)} starts with ${n} copies, at least 3`);

  // What a full node sends (the harness holds the data key here): one chunk under an upload, committed.
  const signer = new AuthoritySigner(cluster.keys.dataKey!);
  const forger = new AuthoritySigner(randomBytes(32));
  const full = await admittedPeer(join(cluster.dir, 'full-peer'), cluster.keys);
  const attacker = await admittedPeer(join(cluster.dir, 'attacker'), storageKeys);
  const attackerId = attacker.identity.credentials.nodeId;
  const chunk = () => {
    const bytes = randomBytes(CS);
    return { bytes, id: createHash('sha256').update(bytes).digest() };
  };
  const hex = (b: Buffer) => b.toString('hex');
  const junk = new Map<number, { kept: Buffer; refused: Buffer[]; legit: Buffer }>();

  for (const victim of [cluster.node(1), s1]) {
    const legit = chunk();
    const UL = randomBytes(16).toString('hex');
    const RL = randomBytes(32).toString('hex');
    const at = Date.now();
    const pinL = signer.prove({ kind: 'pin', upload: UL, chunk: legit.id });
    const proofL = signer.prove({ kind: 'commit', upload: UL, root: RL, at });
    const honest = await full.rpc(victim.listen);
    await honest.call('chunk.put', { upload: UL, id: legit.id, pin: pinL }, legit.bytes);
    await honest.call('file.commit', { upload: UL, root: RL, at, proof: proofL }, undefined);
    honest.close('done');

    // The attacker saw those proofs (repair hands them to every holder) and replays them.
    const rpc = await attacker.rpc(victim.listen);
    const refuse = async (method: string, body: unknown, payload: Buffer | undefined, why: string) =>
      assert.rejects(rpc.call(method, body, payload), { code: 'AUTH' }, `${method} (${why}) to node ${victim.index}`);
    const kept = chunk();
    const j1 = chunk();
    const j2 = chunk();
    const UA = randomBytes(16).toString('hex');
    const RF = randomBytes(32).toString('hex');
    // An orphan is all it can store: charged to it, and collected after the grace period.
    await rpc.call('chunk.put', { id: kept.id }, kept.bytes);

    await refuse('chunk.put', { upload: UA, id: j1.id }, j1.bytes, 'no pin');
    await refuse('chunk.put', { upload: UA, id: j1.id, pin: randomBytes(64) }, j1.bytes, 'random pin');
    await refuse('chunk.put', { upload: UA, id: j1.id, pin: forger.prove({ kind: 'pin', upload: UA, chunk: j1.id }) }, j1.bytes, 'pin from another data key');
    await refuse('chunk.put', { upload: UL, id: j1.id, pin: pinL }, j1.bytes, 'pin replayed on another chunk');
    await refuse('chunk.claim', { upload: UA, ids: [kept.id] }, undefined, 'no pins');
    await refuse('chunk.claim', { upload: UL, ids: [kept.id], pins: [pinL] }, undefined, 'pin replayed on another chunk');

    await refuse('file.commit', { upload: UA, root: RF, at }, undefined, 'no proof');
    await refuse('file.commit', { upload: UA, root: RF, at, proof: randomBytes(64) }, undefined, 'random proof');
    await refuse('file.commit', { upload: UA, root: RF, at, proof: forger.prove({ kind: 'commit', upload: UA, root: RF, at }) }, undefined, 'proof from another data key');
    await refuse('file.commit', { upload: UL, root: RF, at, proof: proofL }, undefined, 'proof for another root');
    await refuse('file.commit', { upload: UA, root: RL, at, proof: proofL }, undefined, 'proof for another upload');

    const owner = { upload: UL, root: RL, at };
    await refuse('chunk.put', { id: j2.id, heal: { owners: [{ upload: UA, root: RF, at }] } }, j2.bytes, 'owner without proofs');
    await refuse('chunk.put', { id: j2.id, heal: { owners: [{ upload: UA, root: RF, at, proof: randomBytes(64), pin: randomBytes(64) }] } }, j2.bytes, 'owner with random proofs');
    await refuse('chunk.put', { id: j2.id, heal: { owners: [{ ...owner, proof: proofL, pin: pinL }] } }, j2.bytes, 'owner replayed on another chunk');
    await refuse('chunk.put', { id: j2.id, heal: { owners: [{ ...owner, proof: proofL, pin: pinL }], of: { d: legit.id, i: 0 } } }, j2.bytes, 'owner replayed as a shard of a chunk that is no stripe');
    await refuse('file.abort', { upload: UL }, undefined, 'abort of a committed upload without proof');
    await refuse('file.abort', { upload: UL, proof: forger.prove({ kind: 'abort', upload: UL }) }, undefined, 'abort with a forged proof');
    rpc.close('done');
    junk.set(victim.index, { kept: kept.id, refused: [j1.id, j2.id], legit: legit.id });
  }

  // A proven chunk may already have moved to its placement homes (rebalance hands on its proofs),
  // so it is looked for on every node; the orphan cannot move (no owner to hand on) and stays put.
  const provenHeld = copyCounts(await holdings(cluster, [0, 1, 2, 3, 4]));
  for (const [i, j] of junk) {
    const ids = new Set((await cluster.node(i).client.chunks()).ids);
    assert.ok(ids.has(hex(j.kept)), `node ${i} holds the orphan`);
    assert.ok((provenHeld.get(hex(j.legit)) ?? 0) >= 1, `the proven chunk put to node ${i} is held`);
    for (const r of j.refused) assert.ok(!ids.has(hex(r)), `node ${i} did not store a refused chunk`);
    const lines = await logLines(cluster, i, REFUSED);
    assert.ok(lines.length >= 1 && lines.length <= 2, `node ${i} logged ${lines.length} lines for one sender's refusals`);
    assert.ok(lines.every((l) => l.includes(attackerId)), 'each line names the sender');
  }
  // After the grace period the orphan is gone; the proven commit keeps its chunk.
  await waitFor('the orphan junk collected', 30_000, async () => {
    for (const [i, j] of junk) if ((await cluster.node(i).client.chunks()).ids.includes(hex(j.kept))) return false;
    return true;
  });
  // Nor is the proven chunk collected then.
  const afterGrace = copyCounts(await holdings(cluster, [0, 1, 2, 3, 4]));
  for (const [i, j] of junk) assert.ok((afterGrace.get(hex(j.legit)) ?? 0) >= 1, `the proven chunk put to node ${i} is still held`);
  assert.ok((await collect((await cluster.node(2).client.get(put.fileId)).stream)).equals(data), 'the file is intact');

  // Repair: a full node dies for good. Chunks it held with the two storage-only nodes can only be
  // copied by them, handing on the proofs they received.
  const held = await holdings(cluster, [0, 1, 2, 3, 4]);
  const onlyStorage = [...before.keys()].filter((id) => held.get(2)!.has(id) && held.get(3)!.has(id) && held.get(4)!.has(id));
  assert.ok(onlyStorage.length > 0, 'some chunks are held by node 2 and the storage-only nodes alone');
  await cluster.kill(2, 'SIGKILL');
  await settledCopies(cluster, [0, 1, 3, 4], before.keys(), 3, 'after a holder died');
  const storageCopies = (await s1.client.repair()).totals.copiesMade + (await s2.client.repair()).totals.copiesMade;
  assert.ok(storageCopies >= onlyStorage.length, `storage-only nodes made ${storageCopies} copies for the ${onlyStorage.length} chunks only they held`);

  // Rebalance: a new full node takes its share, surplus copies go.
  const newcomer = await cluster.addNode();
  await cluster.waitForMembers({ alive: 5 });
  await settledCopies(cluster, [0, 1, 3, 4, newcomer.index], before.keys(), 3, 'after a node joined');
  assert.ok((await holdings(cluster, [newcomer.index])).get(newcomer.index)!.size > 0, 'the new node took a share');
  assert.ok((await collect((await newcomer.client.get(put.fileId)).stream)).equals(data), 'the file reads back through the new node');

  // No honest message was refused anywhere.
  for (const i of [0, 1, 3, 4, newcomer.index]) {
    const stray = (await logLines(cluster, i, REFUSED)).filter((l) => !l.includes(attackerId));
    assert.deepEqual(stray, [], `node ${i} refused nothing an honest node sent`);
  }
});

test('data directories of the previous format: full nodes prove their records, the storage-only node adopts their proofs, nothing is collected', { timeout: 300_000 }, async (t) => {
  const cluster = await LocalCluster.create({ nodes: 3, logLevel: 'info', nodeArgs: TIMING });
  t.after(() => cluster.destroy({ keep: process.env.KEEP === '1' }));
  const storage = await cluster.addNode({ keys: storageOnlyKeys(cluster.keys) });
  await cluster.waitForMembers({ alive: 4 });
  const data = await seededBuffer('commit-proofs-legacy', 120 * CS + 5);
  const put = await cluster.node(0).client.put(pieces(data), { name: 'old.bin', chunkSize: CS, replicas: 3, quorum: 3 });
  const all = [0, 1, 2, storage.index];
  const before = await holdings(cluster, all);
  const ids = [...copyCounts(before).keys()];
  for (const i of all) await cluster.kill(i, 'SIGTERM');

  // As the previous version wrote them: references without pins, commits without proofs.
  let stripped = 0;
  for (const i of all) {
    const meta = await openMetadata(join(cluster.node(i).dataDir, 'meta'));
    for (const name of ['refs', 'commit-proofs', 'legacy-commits']) meta.table(name);
    for (const { key } of [...meta.range('refs')]) {
      await meta.put('refs', key, 1);
      stripped++;
    }
    for (const { key } of [...meta.range('commit-proofs')]) await meta.remove('commit-proofs', key);
    await meta.remove('legacy-commits', 'proven');
    await meta.close();
  }
  assert.ok(stripped >= ids.length * 3, `every reference stripped of its pin (${stripped})`);

  await Promise.all(all.map((i) => cluster.start(i)));
  await cluster.waitForMembers({ alive: 4 });
  const doneLine = async (i: number) => (await logLines(cluster, i, 'references stored before commits carried proofs')).map((l) => JSON.parse(l) as { proven: number; left: number });
  for (const i of [0, 1, 2]) {
    // One pass proves every reference the node holds (one upload: one per chunk).
    await waitFor(`node ${i} to prove its records`, 30_000, async () => (await doneLine(i)).some((l) => l.left === 0 && l.proven === before.get(i)!.size));
    assert.equal((await doneLine(i)).length, 1, `node ${i} needed one pass`);
  }
  await waitFor('the storage-only node to adopt proofs for every record', 60_000, async () => (await doneLine(storage.index)).some((l) => l.left === 0));
  const adopted = (await doneLine(storage.index)).reduce((a, l) => a + l.proven, 0);
  assert.equal(adopted, before.get(storage.index)!.size, 'it adopted one pin per chunk it holds');

  // Nothing was collected meanwhile, nor after the grace period.
  await new Promise((r) => setTimeout(r, GC_GRACE_MS + 2000));
  assert.deepEqual(await holdings(cluster, all), before, 'every node still holds what it held');
  assert.ok((await collect((await cluster.node(1).client.get(put.fileId)).stream)).equals(data));

  // The proven records travel: a full node dies and every chunk is back at 3 copies.
  await cluster.kill(2, 'SIGKILL');
  await settledCopies(cluster, [0, 1, storage.index], ids, 3, 'after a holder died');
  assert.ok((await collect((await cluster.node(0).client.get(put.fileId)).stream)).equals(data), 'the file reads back');
});
