/**
 * The NBD server (memory volumes, own process) against real clients: nbdinfo, nbdcopy,
 * qemu-img and fio. Each test skips with the reason when its tool is not installed.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdtemp, rm, open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { missingTools, run, startMemoryServerProcess, type ServerProcess } from '../helpers/nbd-harness.js';

const MiB = 1 << 20;
const COPY_BYTES = 128 * MiB;

async function sha256File(path: string, limit?: number): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path, limit === undefined ? {} : { end: limit - 1 })) h.update(chunk as Buffer);
  return h.digest('hex');
}

/** Random file written in pieces so the test never holds all of it in memory. */
async function randomFile(path: string, bytes: number): Promise<void> {
  const fh = await open(path, 'w');
  try {
    for (let done = 0; done < bytes; done += 4 * MiB) await fh.write(randomBytes(Math.min(4 * MiB, bytes - done)));
  } finally {
    await fh.close();
  }
}

describe('NBD server with real clients', () => {
  let srv: ServerProcess;
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'nbd-clients-'));
    srv = await startMemoryServerProcess(['--export', 'disk=256M', '--export', 'img=64M', '--export', 'fio=64M', '--min-block', '512']);
  });
  after(async () => {
    await srv?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('nbdinfo reports size, flags and block sizes', { skip: missingTools(['nbdinfo']) }, async () => {
    const { stdout } = await run('nbdinfo', ['--json', srv.uri('disk')]);
    const info = JSON.parse(stdout) as { protocol: string; exports: Array<Record<string, unknown>> };
    assert.equal(info.protocol, 'newstyle-fixed');
    const e = info.exports[0]!;
    assert.equal(e['export-size'], 256 * MiB);
    assert.equal(e['block_size_minimum'], 512);
    assert.equal(e['block_size_preferred'], 4096);
    assert.equal(e['block_size_maximum'], 32 * MiB);
    for (const k of ['can_flush', 'can_fua', 'can_trim', 'can_zero', 'can_multi_conn', 'can_cache', 'can_df']) assert.equal(e[k], true, k);
    assert.equal(e['is_read_only'], false);
    assert.deepEqual(e['contexts'], ['base:allocation']);
  });

  it('nbdinfo --list shows every export', { skip: missingTools(['nbdinfo']) }, async () => {
    const { stdout } = await run('nbdinfo', ['--list', '--json', srv.uri()]);
    const info = JSON.parse(stdout) as { exports: Array<{ 'export-name': string; 'export-size': number }> };
    assert.deepEqual(
      info.exports.map((e) => [e['export-name'], e['export-size']]),
      [['disk', 256 * MiB], ['img', 64 * MiB], ['fio', 64 * MiB]],
    );
  });

  it('nbdcopy moves 128 MiB of random data in and back out unchanged', { skip: missingTools(['nbdcopy']) }, async () => {
    const src = join(dir, 'src.img');
    const back = join(dir, 'back.img');
    await randomFile(src, COPY_BYTES);
    await run('nbdcopy', ['--flush', src, srv.uri('disk')]);
    await run('nbdcopy', [srv.uri('disk'), back]);
    assert.equal(await sha256File(back, COPY_BYTES), await sha256File(src));
    // The rest of the export was never written and reads as zeroes.
    await run('nbdcopy', ['--no-extents', srv.uri('disk'), back]);
    const h = createHash('sha256');
    for await (const c of createReadStream(src)) h.update(c as Buffer);
    for (let i = 0; i < (256 * MiB - COPY_BYTES) / MiB; i++) h.update(Buffer.alloc(MiB));
    assert.equal(await sha256File(back), h.digest('hex'));
    await rm(src);
    await rm(back);
  });

  it('qemu-img converts a raw image in and compares it identical', { skip: missingTools(['qemu-img']) }, async () => {
    const img = join(dir, 'q.img');
    await randomFile(img, 64 * MiB);
    await run('qemu-img', ['convert', '-n', '-f', 'raw', '-O', 'raw', img, srv.uri('img')]);
    const { stdout } = await run('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', img, srv.uri('img')]);
    assert.match(stdout, /Images are identical/);
    // compare must be able to fail: flip one sector and expect a difference.
    const fh = await open(img, 'r+');
    await fh.write(Buffer.alloc(512, 0x42), 0, 512, 10 * MiB);
    await fh.close();
    await assert.rejects(run('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', img, srv.uri('img')]), /Content mismatch|differ/);
    await rm(img);
  });

  it('fio random writes verify with crc32c', { skip: missingTools(['fio']) }, async () => {
    const { stdout: eng } = await run('fio', ['--enghelp']);
    if (!/\bnbd\b/.test(eng)) return assert.ok(true, 'this fio has no nbd engine');
    const { stdout } = await run(
      'fio',
      ['--name=verify', '--thread', '--ioengine=nbd', `--uri=${srv.uri('fio')}`, '--rw=randwrite', '--bs=4k', '--iodepth=16', '--size=32M',
        '--verify=crc32c', '--do_verify=1', '--verify_fatal=1', '--runtime=60', '--output-format=json'],
      180_000,
    );
    const out = JSON.parse(stdout.slice(stdout.indexOf('{'))) as { jobs: Array<{ error: number; write: { io_bytes: number }; read: { io_bytes: number } }> };
    const job = out.jobs[0]!;
    assert.equal(job.error, 0);
    assert.equal(job.write.io_bytes, 32 * MiB);
    assert.equal(job.read.io_bytes, 32 * MiB, 'every written block was read back and verified');
  });
});
