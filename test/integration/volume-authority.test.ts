/**
 * Volume records and extent changes bound to the authority and the fenced master, against real
 * processes: three `tessera node` storage nodes and a `tessera nbd` master. A storage-only member
 * (a real handshake with a storage-only identity) pushes forged and re-dated volume records and
 * writes, batches, creates and deletes extents; a full node that is not the master writes
 * extents. Each is refused with AUTH and logged at a bounded rate. Then the master is killed, a
 * second master takes the volume over, and the old master's identity is refused too, while the
 * data written before reads back identical through the new master.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { missingTools, run } from '../helpers/nbd-harness.js';
import { admittedPeer } from '../helpers/admitted-peer.js';
import { VolumeCluster } from './volume-harness.js';
import { connect } from '../../src/client/index.js';
import { freePort, waitFor } from '../../src/cli/local-cluster.js';
import { initDataDir, loadDataDir, type ClusterKeys } from '../../src/cluster/identity.js';
import { AuthoritySigner, authorityPublicKey } from '../../src/content/index.js';
import { MAX_VOLUME_VERSION, MAX_VOLUME_VERSION_STEP, volumeRecordBytes } from '../../src/block/volume-authority.js';
import type { VolumeRecord } from '../../src/block/volumes.js';

const MiB = 1 << 20;
const SIZE = 4 * MiB;
const UNIT = 64 << 10;
const TOOLS = ['nbdcopy'];
const TAKEOVER_MS = 60_000;

describe('volume records and extent writes are bound to the authority and the fenced master', { skip: missingTools(TOOLS) }, () => {
  let c: VolumeCluster;
  let data: Buffer;
  let rec: VolumeRecord;
  const extent = () => `${rec.name}.${rec.id}`;

  const readVolume = async (name: string): Promise<Buffer> => {
    const out = join(c.storage.dir, `${name}.out`);
    await run('nbdcopy', [c.uri(name), out]);
    return readFile(out);
  };

  before(async () => {
    c = await VolumeCluster.create({ storage: 3, logLevel: 'info' });
    await c.createVolume('v', 'raid1', SIZE, [0, 1], UNIT);
    await c.waitOpen('v');
    data = randomBytes(SIZE);
    const file = join(c.storage.dir, 'v.in');
    await writeFile(file, data);
    await run('nbdcopy', [file, c.uri('v')]);
  });
  after(async () => { await c?.destroy(); });

  it('a storage-only member can neither push volume records nor touch extents', async () => {
    const keys = c.storage.keys;
    const storageKeys: ClusterKeys = { clusterId: keys.clusterId, clusterSecret: keys.clusterSecret, authorityKey: authorityPublicKey(keys.dataKey!) };
    const attacker = await admittedPeer(join(c.storage.dir, 'attacker'), storageKeys);
    const member = c.storage.node(0);
    const rpc = await attacker.rpc(member.listen);
    const all = (await rpc.call('vol.all', {}, undefined)).body as { records: VolumeRecord[] };
    rec = all.records.find((r) => r.name === 'v')!;
    assert.equal(rec.master, c.master.nodeId, 'the record names the master that serves the volume');
    assert.equal(rec.proof?.length, 64, 'the record carries its proof');

    const refuse = (method: string, body: unknown, why: string, payload?: Buffer, code = 'AUTH') =>
      assert.rejects(rpc.call(method, body, payload), { code }, `${method}: ${why}`);
    const forger = new AuthoritySigner(randomBytes(32));
    const hijack: VolumeRecord = { ...rec, master: attacker.identity.credentials.nodeId, members: [attacker.identity.credentials.nodeId, rec.members[1]!], version: rec.version + 1, updatedAt: Date.now() };
    const { proof: _p, ...unsigned } = hijack;
    await refuse('vol.put', { records: [{ ...hijack, version: Number.MAX_SAFE_INTEGER }] }, 'version at 2^53', undefined, 'BAD_INPUT');
    await refuse('vol.put', { records: [{ ...hijack, version: MAX_VOLUME_VERSION + 1 }] }, 'version past the bound', undefined, 'BAD_INPUT');
    await refuse('vol.put', { records: [unsigned] }, 'no proof');
    await refuse('vol.put', { records: [{ ...hijack, proof: randomBytes(64) }] }, 'random proof');
    await refuse('vol.put', { records: [{ ...hijack, proof: forger.prove({ kind: 'volume', record: volumeRecordBytes(hijack) }) }] }, 'proof from another data key');
    await refuse('vol.put', { records: [{ ...hijack, proof: rec.proof }] }, 'the real record changed, with its old proof');
    await refuse('vol.put', { records: [{ ...rec, version: rec.version + MAX_VOLUME_VERSION_STEP + 1, proof: rec.proof }] }, 'version jump');

    const sector = randomBytes(4096);
    await refuse('extent.write', { name: extent(), offset: 0 }, 'overwrite a sector', sector);
    await refuse('extent.batch', { name: extent(), ops: [[1, 0, 4096]] }, 'overwrite in a batch', sector);
    await refuse('extent.delete', { name: extent() }, 'delete a live extent');
    await refuse('extent.create', { name: 'junk.0123456789abcdef', units: 1, unitSize: 4096 }, 'create an extent no record places');
    await refuse('extent.create', { name: 'junk.0123456789abcdef', units: 1, unitSize: 4096, record: { ...unsigned, name: 'junk', id: '0123456789abcdef' } }, 'create with an unproven record');
    // Reads stay open: every extent holds only sectors sealed at the master.
    const read = await rpc.call('extent.read', { name: extent(), offset: 0, length: 4096 }, undefined);
    assert.equal(read.payload.length, 4096);
    rpc.close('done');

    // A full node that is not the master may sign records, but not write a volume's extents.
    const full = await admittedPeer(join(c.storage.dir, 'other-full-node'), keys);
    const rpc2 = await full.rpc(member.listen);
    await assert.rejects(rpc2.call('extent.write', { name: extent(), offset: 0 }, sector), (e: Error & { code?: string }) => e.code === 'AUTH' && /only the volume's master/.test(e.message));
    await assert.rejects(rpc2.call('extent.delete', { name: extent() }, undefined), { code: 'AUTH' });
    rpc2.close('done');

    const log = await readFile(join(c.storage.dir, 'node0.log'), 'utf8');
    const lines = log.split('\n').filter((l) => l.includes('refused a volume change from a member'));
    const fromAttacker = lines.filter((l) => l.includes(attacker.identity.credentials.nodeId));
    assert.ok(fromAttacker.length >= 1, 'the refusals are logged with the sender');
    // Twelve refusals from one sender within seconds: one line (two if an interval boundary fell between).
    assert.ok(fromAttacker.length <= 2, `${fromAttacker.length} lines for one sender`);
    assert.ok(lines.some((l) => l.includes(full.identity.credentials.nodeId)), 'the non-master full node is logged too');

    const held = (await member.client.volume('v'));
    assert.equal(held.version, rec.version, 'the member still holds the real record');
    assert.deepEqual(held.members, rec.members);
    assert.ok((await readVolume('v')).equals(data), 'the volume reads back intact');
  });

  it('after a failover the old master is fenced and the new one serves the data', async () => {
    const old = await loadDataDir(c.master.dataDir);
    await c.killMaster('SIGKILL');
    const dataDir = join(c.storage.dir, 'master2');
    const id = await initDataDir(dataDir, c.storage.keys);
    const api = `127.0.0.1:${await freePort()}`;
    Object.assign(c.master, { dataDir, api, peer: `127.0.0.1:${await freePort()}`, nbdPort: await freePort(), nodeId: id.credentials.nodeId, client: connect({ api, token: id.apiToken, timeoutMs: 120_000 }) });
    await c.startMaster();
    const taken = await waitFor('the new master to take the volume over', TAKEOVER_MS, async () => {
      const v = await c.storage.node(0).client.volume('v').catch(() => undefined);
      return v !== undefined && v.version > rec.version ? v : undefined;
    });
    assert.equal(taken.version, rec.version + 1, 'the takeover moved the version by one');
    await c.waitOpen('v');
    assert.ok((await readVolume('v')).equals(data), 'the new master serves the data written through the old one');

    const stale = await admittedPeer(join(c.storage.dir, 'unused'), c.storage.keys, old);
    for (const i of [0, 1]) {
      const rpc = await stale.rpc(c.storage.node(i).listen);
      await assert.rejects(rpc.call('extent.write', { name: extent(), offset: 0 }, randomBytes(4096)), (e: Error & { code?: string }) => e.code === 'AUTH' && /only the volume's master/.test(e.message), `member ${i} refuses the old master`);
      rpc.close('done');
    }
    assert.ok((await readVolume('v')).equals(data), 'the volume still reads back intact');
  });
});
