/**
 * A storage-only member turned hostile, against real node processes. One node joins with the
 * token `tessera token --storage-only` prints; a test harness with another storage-only identity
 * completes the real handshake and sends every destructive files message it can make without the
 * data key: removals, name records that would shadow real ones, drain orders. Each must be
 * refused with AUTH and logged, and every file must read back intact, while a removal by a full
 * node still reaches the storage-only node.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { CLI_PATH, LocalCluster } from '../../src/cli/local-cluster.js';
import { parseJoinToken } from '../../src/cluster/identity.js';
import { AuthoritySigner, parseFileId } from '../../src/content/index.js';
import type { TesseraClient } from '../../src/client/index.js';
import { admittedPeer } from '../helpers/admitted-peer.js';

const FILE_BYTES = 300_000;
const FUTURE_MS = 30_000;
const REMOVAL_POLLS = 120;

async function readAll(client: TesseraClient, ref: string): Promise<Buffer> {
  const { stream } = await client.get(ref);
  const parts: Buffer[] = [];
  for await (const p of stream) parts.push(p as Buffer);
  return Buffer.concat(parts);
}

function storageOnlyToken(dataDir: string): string {
  const r = spawnSync(process.execPath, [CLI_PATH, 'token', '--data', dataDir, '--storage-only'], { encoding: 'utf8', timeout: 30_000, env: { ...process.env, TESSERA_API: '' } });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.trim();
}

test('a storage-only member cannot remove files, shadow names or drain other nodes', async (t) => {
  const cluster = await LocalCluster.create({ nodes: 3, logLevel: 'info' });
  t.after(() => cluster.destroy({ keep: process.env.KEEP === '1' }));
  const storageKeys = parseJoinToken(storageOnlyToken(cluster.node(0).dataDir));
  assert.equal(storageKeys.dataKey, undefined, 'the storage-only token carries no data key');
  assert.equal(storageKeys.authorityKey?.length, 32, 'it carries the public key that checks destructive messages');
  const storage = await cluster.addNode({ keys: storageKeys });
  await cluster.waitForMembers({ alive: 4 });

  const writer = cluster.node(0).client;
  const contents = new Map<string, Buffer>();
  const ids = new Map<string, string>();
  for (const name of ['a.txt', 'b.txt', 'c.txt']) {
    const data = randomBytes(FILE_BYTES);
    contents.set(name, data);
    // Four copies: every node, the storage-only one included, holds every file.
    ids.set(name, (await writer.put(Readable.from([data]), { name, replicas: 4, quorum: 4 })).fileId);
  }

  const attacker = await admittedPeer(join(cluster.dir, 'attacker'), storageKeys);
  const forger = new AuthoritySigner(randomBytes(32));
  for (const target of [cluster.node(1), storage]) {
    const rpc = await attacker.rpc(target.listen);
    const refuse = (method: string, body: unknown, why: string) => assert.rejects(rpc.call(method, body, undefined), { code: 'AUTH' }, `${method} (${why}) to node ${target.index}`);
    const root = parseFileId(ids.get('a.txt')!).rootId.toString('hex');
    const now = Date.now();

    await refuse('file.rm', { root, at: now }, 'no proof');
    await refuse('file.rm', { root, at: now, proof: randomBytes(64) }, 'random proof');
    await refuse('file.rm', { root, at: now, proof: forger.prove({ kind: 'fileRm', root, at: now }) }, 'proof from another data key');

    // The attacker can list the sealed records and so knows every lookup key it could shadow.
    const listed = (await rpc.call('name.list', { limit: 100 }, undefined)).body as { records: { key: Uint8Array; hlc: { wall: number; logical: number; node: string }; box: Uint8Array; proof?: Uint8Array }[] };
    assert.equal(listed.records.length, 3);
    for (const rec of listed.records) {
      const hlc = { wall: now + FUTURE_MS, logical: 0, node: attacker.identity.credentials.nodeId };
      await refuse('name.put', { key: rec.key, hlc, box: randomBytes(rec.box.length) }, 'made-up record, no proof');
      await refuse('name.put', { key: rec.key, hlc, box: rec.box, proof: rec.proof }, 'real record re-dated with its old proof');
      await refuse('name.put', { key: rec.key, hlc: rec.hlc, box: randomBytes(rec.box.length), proof: rec.proof }, 'real proof, box swapped');
    }

    await refuse('heal.drain', { on: true }, 'no proof');
    await refuse('heal.drain', { on: true, at: now, proof: randomBytes(64) }, 'random proof');
    await refuse('heal.drain', { on: true, at: now, proof: forger.prove({ kind: 'drain', target: target.nodeId, on: true, at: now }) }, 'proof from another data key');
    rpc.close('done');
  }

  for (const i of [1, storage.index]) {
    const log = await readFile(join(cluster.dir, `node${i}.log`), 'utf8');
    const refusals = log.split('\n').filter((l) => l.includes('refused a destructive message from a member'));
    assert.ok(refusals.length >= 1, `node ${i} logged the refusals`);
    // Fifteen refusals from one sender within seconds: rate-limited to one line.
    assert.ok(refusals.length <= 2, `node ${i} logged ${refusals.length} lines for one sender`);
    assert.ok(refusals.some((l) => l.includes(attacker.identity.credentials.nodeId)), 'the line names the sender');
    const state = await cluster.node(i).client.drainState();
    assert.equal(state.draining, false, `node ${i} is not draining`);
  }

  // Every file reads back intact through a full node that was attacked and one that was not.
  for (const reader of [cluster.node(1).client, cluster.node(2).client]) {
    const names = (await reader.ls()).files.map((e) => e.name).sort();
    assert.deepEqual(names, ['a.txt', 'b.txt', 'c.txt']);
    for (const [name, data] of contents) assert.ok((await readAll(reader, name)).equals(data), `${name} reads back intact`);
  }

  // A removal by a full node carries its proof and is applied everywhere, the storage-only node included.
  await writer.rm('c.txt');
  const cRoot = parseFileId(ids.get('c.txt')!).rootId.toString('hex');
  // The removal needs only a quorum at once; the rest hear it by anti-entropy, so wait a bounded time.
  let applied = false;
  for (let i = 0; i < REMOVAL_POLLS && !applied; i++) {
    const storageLog = await readFile(join(cluster.dir, `node${storage.index}.log`), 'utf8');
    applied = storageLog.split('\n').some((l) => l.includes('file removed') && l.includes(cRoot));
    if (!applied) await new Promise((r) => setTimeout(r, 250));
  }
  assert.ok(applied, 'the storage-only node applied the proven removal');
  assert.deepEqual((await cluster.node(2).client.ls()).files.map((e) => e.name).sort(), ['a.txt', 'b.txt']);
});
