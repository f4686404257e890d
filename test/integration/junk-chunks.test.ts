/**
 * A member that stores junk, against real node processes with a 64 MiB quota each: a storage-only
 * identity (real handshake) pushes chunks nobody will commit. The
 * victim takes them only up to the sender's share of uncommitted bytes, refuses the rest with
 * NO_SPACE and logs it at a bounded rate; its store stays far from full, and a full node's put
 * afterwards succeeds and reads back intact from it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { LocalCluster } from '../../src/cli/local-cluster.js';
import type { ClusterKeys } from '../../src/cluster/identity.js';
import { authorityPublicKey } from '../../src/content/index.js';
import { UNCOMMITTED_SHARE_PER_PEER } from '../../src/files/uncommitted-ledger.js';
import { admittedPeer } from '../helpers/admitted-peer.js';
import { readAll } from '../helpers/read-all.js';

const MiB = 1 << 20;
const QUOTA = 64 * MiB;
const CHUNK = MiB;
const SHARE = QUOTA * UNCOMMITTED_SHARE_PER_PEER;
/** Bounded: the whole quota and then some, were nothing refused. */
const MAX_PUSHES = QUOTA / CHUNK + 8;
const LEGIT_BYTES = 6 * MiB;

test('a member pushing junk chunks cannot fill another node, and puts still succeed', async (t) => {
  const cluster = await LocalCluster.create({ nodes: 3, logLevel: 'info', nodeArgs: ['--quota', String(QUOTA)] });
  t.after(() => cluster.destroy({ keep: process.env.KEEP === '1' }));
  await cluster.waitForMembers({ alive: 3 });
  const victim = cluster.node(1);
  const keys = cluster.keys;
  const storageKeys: ClusterKeys = { clusterId: keys.clusterId, clusterSecret: keys.clusterSecret, authorityKey: authorityPublicKey(keys.dataKey!) };
  const attacker = await admittedPeer(join(cluster.dir, 'attacker'), storageKeys);
  const rpc = await attacker.rpc(victim.listen);

  const usedBefore = (await victim.client.status()).store.used;
  let stored = 0;
  let refusals = 0;
  for (let i = 0; i < MAX_PUSHES; i++) {
    const data = randomBytes(CHUNK);
    const id = createHash('sha256').update(data).digest();
    // Chunks with no upload: a reference under an upload needs the writer's pin, which this member
    // cannot make (commit-proofs.test.ts), so an orphan is all the junk it can store.
    const body = { id };
    try {
      await rpc.call('chunk.put', body, data);
      stored += CHUNK;
    } catch (e) {
      assert.equal((e as { code?: string }).code, 'NO_SPACE', (e as Error).message);
      assert.match((e as Error).message, /uncommitted/);
      refusals++;
    }
  }
  rpc.close('done');
  assert.ok(stored <= SHARE, `the victim took ${stored / MiB} MiB of junk from one member, its share is ${SHARE / MiB} MiB`);
  assert.ok(stored >= SHARE - CHUNK, `the victim took junk up to the share (${stored / MiB} MiB), not less`);
  assert.equal(refusals, MAX_PUSHES - stored / CHUNK);
  const status = await victim.client.status();
  assert.ok(status.store.used - usedBefore <= SHARE, `the victim's store grew by ${(status.store.used - usedBefore) / MiB} MiB`);

  const log = await readFile(join(cluster.dir, 'node1.log'), 'utf8');
  const lines = log.split('\n').filter((l) => l.includes("refused a chunk over the sender's share of uncommitted bytes"));
  assert.ok(lines.length >= 1 && lines.length <= 2, `${lines.length} log lines for ${refusals} refusals from one sender`);
  assert.ok(lines[0]!.includes(attacker.identity.credentials.nodeId), 'the line names the sender');

  // A full node's put lands on every node, the victim included, and reads back intact from it.
  const data = randomBytes(LEGIT_BYTES);
  const put = await cluster.node(0).client.put(Readable.from([data]), { name: 'legit.bin', replicas: 3, quorum: 3 });
  assert.ok((await readAll(victim.client, put.fileId)).equals(data), 'the put reads back intact');
  // A second put of the same size: the first one's commit gave its share back.
  const again = randomBytes(LEGIT_BYTES);
  const put2 = await cluster.node(2).client.put(Readable.from([again]), { name: 'legit2.bin', replicas: 3, quorum: 3 });
  assert.ok((await readAll(victim.client, put2.fileId)).equals(again));
});
