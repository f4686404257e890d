/**
 * Sealed volumes and NBD over TLS, end to end: four `tessera node` processes and a `tessera nbd`
 * master that requires TLS with a pre-shared key, driven by nbdinfo, nbdcopy and qemu-img.
 * Members' extent files are read and altered directly on disk.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { missingTools, run } from '../helpers/nbd-harness.js';
import { VolumeCluster } from './volume-harness.js';
import { Layout } from '../../src/block/volume/layout.js';
import { SEALED_SECTOR_BYTES, SECTOR_BYTES, sealedUnitBytes } from '../../src/block/volume/seal.js';
import type { VolumeView } from '../../src/block/volumes.js';
import { authorityPublicKey } from '../../src/content/index.js';

const MiB = 1 << 20;
const SIZE = 8 * MiB;
const UNIT = 64 << 10;
const TOOLS = ['nbdinfo', 'nbdcopy', 'qemu-img'];
const MARKER = Buffer.from('SEALED-VOLUME-PLAINTEXT-MARKER!!');
const LAYOUTS = [['raid0', [0, 1, 2, 3]], ['raid1', [0, 1]], ['raid5', [0, 1, 2, 3]], ['raid6', [0, 1, 2, 3]]] as const;

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('sealed volumes over NBD with TLS (real processes and clients)', { skip: missingTools(TOOLS) }, () => {
  let c: VolumeCluster;
  let dir: string;
  let pskFile: string;
  let wrongPskFile: string;
  const views = new Map<string, VolumeView>();
  const contents = new Map<string, Buffer>();

  const uri = (name: string, psk = pskFile) => `nbds://alice@127.0.0.1:${c.master.nbdPort}/${name}?tls-psk-file=${psk}`;
  const extentPath = (v: VolumeView, member: number) => {
    const node = c.storage.nodes.find((n) => n.nodeId === v.members[member]);
    assert.ok(node, `member ${member} of ${v.name} is one of the storage nodes`);
    return join(node.dataDir, 'extents', `${v.name}.${v.id}`, 'extent');
  };
  const readVolume = async (name: string): Promise<Buffer> => {
    const out = join(dir, `${name}.out`);
    await rm(out, { force: true });
    await run('nbdcopy', [uri(name), out]);
    return readFile(out);
  };

  /** Reads bytes [offset, offset+length) as one client request, through qemu's raw offset driver. */
  const readRange = async (name: string, offset: number, length: number): Promise<Buffer> => {
    const out = join(dir, `${name}.range`);
    await rm(out, { force: true });
    await run('qemu-img', ['convert', '--object', `tls-creds-psk,id=tls0,endpoint=client,dir=${dir},username=alice`, '--image-opts',
      `driver=raw,offset=${offset},size=${length},file.driver=nbd,file.host=127.0.0.1,file.port=${c.master.nbdPort},file.export=${name},file.tls-creds=tls0`, '-O', 'raw', out]);
    return readFile(out);
  };

  before(async () => {
    c = await VolumeCluster.create({ storage: 4 });
    dir = join(c.storage.dir, 'tls');
    await mkdir(dir, { recursive: true });
    pskFile = join(dir, 'keys.psk');
    wrongPskFile = join(dir, 'wrong', 'keys.psk');
    await mkdir(join(dir, 'wrong'));
    await writeFile(pskFile, `alice:${randomBytes(32).toString('hex')}\n`, { mode: 0o600 });
    await writeFile(wrongPskFile, `alice:${randomBytes(32).toString('hex')}\n`, { mode: 0o600 });
    // The master now requires TLS with the key above.
    await c.killMaster('SIGTERM');
    c.masterArgs = ['--tls-psk', pskFile];
    await c.startMaster();
    for (const [layout, nodes] of LAYOUTS) {
      const name = `s-${layout}`;
      views.set(name, await c.createVolume(name, layout, SIZE, [...nodes], UNIT));
      await c.waitOpen(name);
    }
  });
  after(async () => { await c?.destroy(); });

  it('nbdinfo over nbds:// with the PSK reports each volume at exactly its size', async () => {
    for (const [layout] of LAYOUTS) {
      const { stdout } = await run('nbdinfo', ['--size', uri(`s-${layout}`)]);
      assert.equal(Number(stdout.trim()), SIZE, layout);
    }
  });

  it('a client without TLS, or with the wrong key, is refused', async () => {
    await assert.rejects(run('nbdinfo', ['--size', `nbd://127.0.0.1:${c.master.nbdPort}/s-raid0`]), /TLS|tls|refused|not allowed|handshake/i);
    // libnbd reports NBD_REP_ERR_TLS_REQD as "not supported"; nothing about the volumes is said.
    await assert.rejects(run('nbdinfo', ['--list', `nbd://127.0.0.1:${c.master.nbdPort}/`]), (e: Error) => /not supported|TLS/i.test(e.message) && !e.message.includes('s-raid'));
    await assert.rejects(run('nbdinfo', ['--size', uri('s-raid0', wrongPskFile)]), /TLS|tls|handshake|decrypt|key/i);
  });

  it('data written through NBD never reaches a member in plaintext (raid0, raid1, raid5, raid6)', async () => {
    for (const [layout] of LAYOUTS) {
      const name = `s-${layout}`;
      const data = Buffer.alloc(SIZE);
      for (let at = 0; at < SIZE; at += MARKER.length) MARKER.copy(data, at);
      const src = join(dir, `${name}.in`);
      await writeFile(src, data);
      await run('nbdcopy', ['--flush', src, uri(name)]);
      contents.set(name, data);
      const v = views.get(name)!;
      for (let m = 0; m < v.members.length; m++) {
        const raw = await readFile(extentPath(v, m));
        assert.ok(raw.length >= (v.memberSize / UNIT) * sealedUnitBytes(UNIT), 'the extent holds sealed units');
        assert.equal(raw.includes(MARKER), false, `${layout} member ${m} holds the plaintext marker`);
        assert.equal(raw.includes(MARKER.subarray(0, 16)), false, `${layout} member ${m} holds half the marker`);
      }
      assert.equal(sha(await readVolume(name)), sha(data), `${layout} reads back what was written`);
    }
  });

  it('a storage-only node (no data key) serves as a member and holds only ciphertext', async () => {
    const { dataKey, ...withoutDataKey } = c.storage.keys;
    // As `tessera token --storage-only` gives it: the public half of the authority key, to check volume records with.
    const node = await c.storage.addNode({ keys: { ...withoutDataKey, authorityKey: authorityPublicKey(dataKey!) } });
    const cluster = JSON.parse(await readFile(join(node.dataDir, 'cluster.json'), 'utf8')) as Record<string, unknown>;
    assert.equal(cluster.dataKey, undefined, 'the node was made without the data key');
    const v = await c.createVolume('s-storage-only', 'raid1', SIZE, [node.index, 0], UNIT);
    views.set(v.name, v);
    await c.waitOpen(v.name);
    const data = Buffer.alloc(SIZE);
    for (let at = 0; at < SIZE; at += MARKER.length) MARKER.copy(data, at);
    const src = join(dir, 'storage-only.in');
    await writeFile(src, data);
    await run('nbdcopy', ['--flush', src, uri(v.name)]);
    assert.equal(sha(await readVolume(v.name)), sha(data));
    const raw = await readFile(extentPath(v, 0));
    assert.equal(raw.includes(MARKER.subarray(0, 16)), false, 'the storage-only member holds no plaintext');
    assert.equal((await c.master.client.checkVolume(v.name)).mismatches, 0);
  });

  it('qemu-img with tls-creds-psk round-trips an image', async () => {
    const img = join(dir, 'qemu.raw');
    const data = randomBytes(SIZE);
    await writeFile(img, data);
    const creds = `tls-creds-psk,id=tls0,endpoint=client,dir=${dir},username=alice`;
    const target = `driver=nbd,host=127.0.0.1,port=${c.master.nbdPort},export=s-raid5,tls-creds=tls0`;
    await run('qemu-img', ['convert', '-n', '--object', creds, '-f', 'raw', '--target-image-opts', img, target]);
    const back = join(dir, 'qemu.back');
    await run('qemu-img', ['convert', '--object', creds, '--image-opts', target, '-O', 'raw', back]);
    assert.equal(sha(await readFile(back)), sha(data));
    contents.set('s-raid5', data);
  });

  /** Flips one byte of the sealed record holding volume offset `at`; returns the member and the record's offset in its extent. */
  async function flipByte(name: string, at: number, member?: number): Promise<{ member: number; record: number; path: string }> {
    const v = views.get(name)!;
    const layout = new Layout({ kind: v.layout, members: v.members.length, memberSize: v.memberSize, unitSize: v.unitSize, size: v.size });
    const e = layout.mapRange(at, 1)[0]!;
    const m = member ?? e.member;
    const inUnit = Math.floor((e.memberOffset % v.unitSize) / SECTOR_BYTES);
    const record = e.stripe * sealedUnitBytes(v.unitSize) + inUnit * SEALED_SECTOR_BYTES;
    const path = extentPath(v, m);
    const fh = await open(path, 'r+');
    try {
      const b = Buffer.alloc(1);
      await fh.read(b, 0, 1, record + 100);
      b[0] = (b[0] as number) ^ 0x20;
      await fh.write(b, 0, 1, record + 100);
      await fh.sync();
    } finally {
      await fh.close();
    }
    return { member: m, record, path };
  }

  const recordOf = async (path: string, record: number) => (await readFile(path)).subarray(record, record + SEALED_SECTOR_BYTES);

  for (const [layout, flipMember] of [['raid1', 0], ['raid5', undefined]] as const) {
    it(`${layout}: a byte flipped in a member's extent is read correctly from redundancy and the unit is rewritten`, async () => {
      const name = `s-${layout}`;
      const data = contents.get(name)!;
      const at = 3 * UNIT + 5000;
      const { path, record } = await flipByte(name, at, flipMember);
      const altered = await recordOf(path, record);
      assert.equal(sha(await readVolume(name)), sha(data), 'the whole volume reads back as written');
      // raid1 reads alternate between mirrors: read the altered sector alone until that mirror was asked (bounded).
      let repaired = (await c.master.client.volume(name)).status?.repairedUnits ?? 0;
      for (let i = 0; i < 4 && repaired === 0; i++) {
        const sector = Math.floor(at / SECTOR_BYTES) * SECTOR_BYTES;
        assert.equal(sha(await readRange(name, sector, SECTOR_BYTES)), sha(data.subarray(sector, sector + SECTOR_BYTES)), `read ${i} returned the written bytes`);
        repaired = (await c.master.client.volume(name)).status?.repairedUnits ?? 0;
      }
      assert.ok(repaired >= 1, 'the master rewrote the unit that failed authentication');
      const now = await recordOf(path, record);
      assert.equal(now.equals(altered), false, 'the altered record on the member was replaced');
      const check = await c.master.client.checkVolume(name);
      assert.equal(check.mismatches, 0);
    });
  }

  /** Writes `data` at `offset` as one client request (qemu's raw offset driver), flushed. */
  const writeRange = async (name: string, offset: number, data: Buffer): Promise<void> => {
    const src = join(dir, `${name}.patch`);
    await writeFile(src, data);
    await run('qemu-img', ['convert', '-n', '--object', `tls-creds-psk,id=tls0,endpoint=client,dir=${dir},username=alice`, '-f', 'raw', src, '--target-image-opts',
      `driver=raw,offset=${offset},size=${data.length},file.driver=nbd,file.host=127.0.0.1,file.port=${c.master.nbdPort},file.export=${name},file.tls-creds=tls0`]);
  };

  const captureUnit = (name: string, at: number, member?: number) => c.captureUnit(views.get(name)!, at, member);

  for (const [layout, replayMember] of [['raid1', 1], ['raid5', undefined]] as const) {
    it(`${layout}: a member that puts back an older unit is caught; the client reads the new data and the unit is rewritten`, async () => {
      const name = `s-${layout}`;
      const data = contents.get(name)!;
      const at = 5 * UNIT + 3 * SECTOR_BYTES;
      const replay = await captureUnit(name, at, replayMember);
      const next = randomBytes(SECTOR_BYTES);
      await writeRange(name, at, next);
      next.copy(data, at);
      await replay();
      const before = (await c.master.client.volume(name)).status?.repairedUnits ?? 0;
      let repaired = before;
      // raid1 reads alternate between mirrors: read the sector alone until the replaying one was asked (bounded).
      for (let i = 0; i < 4 && repaired === before; i++) {
        assert.equal(sha(await readRange(name, at, SECTOR_BYTES)), sha(next), `read ${i} returned the new bytes, not the replayed ones`);
        repaired = (await c.master.client.volume(name)).status?.repairedUnits ?? 0;
      }
      assert.ok(repaired > before, 'the master rewrote the replayed unit');
      assert.equal(sha(await readVolume(name)), sha(data), 'the whole volume reads back as last written');
      assert.equal((await c.master.client.checkVolume(name)).mismatches, 0);
    });
  }

  it('raid0: a member that puts back an older unit gives the client an I/O error, never the old data', async () => {
    const name = 's-raid0';
    const at = 5 * UNIT + 3 * SECTOR_BYTES;
    const replay = await captureUnit(name, at);
    await writeRange(name, at, randomBytes(SECTOR_BYTES));
    await replay();
    await assert.rejects(readRange(name, at, SECTOR_BYTES), /Input\/output error|EIO|I\/O/i);
    assert.equal(sha(await readRange(name, 0, UNIT)), sha(contents.get(name)!.subarray(0, UNIT)), 'the rest of the volume still reads');
  });

  it('raid0: a byte flipped in a member\'s extent gives the client an I/O error, never wrong data', async () => {
    const name = 's-raid0';
    await flipByte(name, 2 * UNIT + 10);
    await assert.rejects(readVolume(name), /Input\/output error|EIO|I\/O/i);
    await assert.rejects(readRange(name, 2 * UNIT, SECTOR_BYTES), /Input\/output error|EIO|I\/O/i);
    // The rest of the volume still reads: the first stripe is untouched.
    assert.equal(sha(await readRange(name, 0, UNIT)), sha(contents.get(name)!.subarray(0, UNIT)));
  });
});
