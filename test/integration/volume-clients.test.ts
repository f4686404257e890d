/**
 * Volumes striped over four real storage nodes, served by a real `tessera nbd` master, driven by
 * real NBD clients: nbdinfo, nbdcopy, qemu-img and fio (nbd engine, crc32c verify), per layout.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { missingTools, run } from '../helpers/nbd-harness.js';
import { VolumeCluster } from './volume-harness.js';

const TOOLS = ['nbdinfo', 'nbdcopy', 'qemu-img', 'fio'];
const MiB = 1 << 20;
const VOLUME_BYTES = 128 * MiB;
const COPY_BYTES = 64 * MiB;
const QEMU_BYTES = 16 * MiB;
const FIO_BYTES = 16 * MiB;
const LAYOUTS = ['raid0', 'raid1', 'raid5', 'raid6'] as const;

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('volumes over a cluster with real NBD clients', { skip: missingTools(TOOLS) }, () => {
  let c: VolumeCluster;
  let dir: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'vol-clients-'));
    c = await VolumeCluster.create({ storage: 4 });
    for (const layout of LAYOUTS) {
      const nodes = layout === 'raid1' ? [0, 1] : [0, 1, 2, 3];
      await c.createVolume(`v-${layout}`, layout, VOLUME_BYTES, nodes);
    }
    for (const layout of LAYOUTS) await c.waitOpen(`v-${layout}`);
  });

  after(async () => {
    await c?.destroy();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('nbdinfo --list lists every volume, and every node lists the same records', async () => {
    const { stdout } = await run('nbdinfo', ['--list', '--json', c.uri()]);
    const names = (JSON.parse(stdout) as { exports: Array<{ 'export-name': string }> }).exports.map((e) => e['export-name']).sort();
    assert.deepEqual(names, LAYOUTS.map((l) => `v-${l}`));
    for (const n of c.storage.nodes) {
      assert.deepEqual((await n.client.volumes()).map((v) => v.name), names, `node ${n.index} holds every volume record`);
    }
  });

  for (const layout of LAYOUTS) {
    describe(layout, () => {
      it('nbdinfo reports the volume size', async () => {
        const v = await c.master.client.volume(`v-${layout}`);
        assert.ok(v.size >= VOLUME_BYTES, `size ${v.size} covers the ${VOLUME_BYTES} asked for`);
        const { stdout } = await run('nbdinfo', ['--size', c.uri(`v-${layout}`)]);
        assert.equal(Number(stdout.trim()), v.size);
      });

      it(`nbdcopy ${COPY_BYTES / MiB} MiB of random data in and back out identical`, async () => {
        const src = join(dir, `${layout}.src`);
        const back = join(dir, `${layout}.back`);
        const data = randomBytes(COPY_BYTES);
        await writeFile(src, data);
        await run('nbdcopy', ['--flush', src, c.uri(`v-${layout}`)], 300_000);
        // Reads only the prefix written: the rest of the volume is zeroes.
        await run('nbdcopy', ['--no-extents', c.uri(`v-${layout}`), back], 300_000);
        const got = await readFile(back);
        assert.equal(sha(got.subarray(0, COPY_BYTES)), sha(data));
        assert.ok(got.subarray(COPY_BYTES).every((b) => b === 0), 'the unwritten tail reads as zeroes');
        await rm(back);
        await rm(src);
      });

      it('qemu-img convert of a raw image in, then qemu-img compare', async () => {
        const img = join(dir, `${layout}.raw`);
        await writeFile(img, randomBytes(QEMU_BYTES));
        await run('qemu-img', ['convert', '-n', '-f', 'raw', '-O', 'raw', img, c.uri(`v-${layout}`)], 300_000);
        // compare -s fails on the size difference; compare the image's length of the volume instead.
        const back = join(dir, `${layout}.qemu`);
        await run('qemu-img', ['convert', '-O', 'raw', '--image-opts', `driver=raw,size=${QEMU_BYTES},file.driver=nbd,file.host=127.0.0.1,file.port=${c.master.nbdPort},file.export=v-${layout}`, back], 300_000);
        await run('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', img, back]);
        await rm(back);
        await rm(img);
      });

      it('fio random writes verified with crc32c', async () => {
        await run('fio', [
          '--name=verify', '--thread', '--ioengine=nbd', `--uri=${c.uri(`v-${layout}`)}`, '--rw=randwrite', '--bs=4k', '--iodepth=16',
          `--size=${FIO_BYTES}`, '--offset=96M', '--verify=crc32c', '--do_verify=1', '--verify_fatal=1', '--output=/dev/null',
        ], 300_000);
      });
    });
  }

  it('volume check finds no mismatch on any layout after all that I/O', async () => {
    for (const layout of LAYOUTS) {
      const r = await c.master.client.checkVolume(`v-${layout}`);
      assert.equal(r.mismatches, 0, `${layout}: ${JSON.stringify(r.firstMismatches)}`);
      assert.equal(r.stripesSkipped, 0);
      assert.ok(r.stripesChecked > 0);
    }
  });
});
