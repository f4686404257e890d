/**
 * A real filesystem on a raid5 volume striped over four storage nodes and served by the nbd
 * master: nbdfuse exposes the export as a file, ext4 is made on it, loop-mounted, filled,
 * unmounted, checked with e2fsck and remounted to compare every file; then `volume check`.
 * Needs root, /dev/fuse and loop devices; skips with the reason when the sandbox lacks them.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { missingTools, run } from '../helpers/nbd-harness.js';
import { VolumeCluster } from './volume-harness.js';

const TOOLS = ['nbdfuse', 'fusermount3', 'mkfs.ext4', 'e2fsck', 'mount', 'umount'];
const FILES = 24;
const FUSE_READY_TIMEOUT_MS = 10_000;

function unavailable(): string | false {
  const missing = missingTools(TOOLS);
  if (missing) return missing;
  if (process.getuid?.() !== 0) return 'loop mounts need root';
  if (!existsSync('/dev/fuse')) return 'no /dev/fuse in this sandbox';
  if (!existsSync('/dev/loop-control')) return 'no loop devices in this sandbox';
  return false;
}

describe('ext4 on a raid5 cluster volume through nbdfuse and a loop mount', { skip: unavailable() }, () => {
  let c: VolumeCluster;
  let dir: string;
  let fuse: ChildProcess | undefined;
  let fuseDir: string;
  let mnt: string;
  let image: string;
  let skipReason: string | false = false;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'vol-fs-'));
    fuseDir = join(dir, 'fuse');
    mnt = join(dir, 'mnt');
    image = join(fuseDir, 'nbd');
    await mkdir(fuseDir);
    await mkdir(mnt);
    c = await VolumeCluster.create({ storage: 4 });
    await c.createVolume('fs', 'raid5', 128 << 20, [0, 1, 2, 3]);
    await c.waitOpen('fs');
    const pidfile = join(dir, 'nbdfuse.pid');
    fuse = spawn('nbdfuse', ['-P', pidfile, fuseDir, c.uri('fs')], { stdio: 'ignore' });
    const deadline = Date.now() + FUSE_READY_TIMEOUT_MS;
    while (!existsSync(pidfile) && fuse.exitCode === null && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    if (!existsSync(pidfile)) skipReason = `nbdfuse could not mount (exit ${fuse.exitCode}); FUSE is unusable here`;
  });

  after(async () => {
    await run('umount', [mnt]).catch(() => {});
    if (fuse && fuse.exitCode === null) {
      const exited = new Promise((r) => fuse!.once('exit', r));
      await run('fusermount3', ['-u', fuseDir]).catch(() => fuse!.kill('SIGTERM'));
      await exited;
    }
    await c?.destroy();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('makes, fills, checks and remounts the filesystem with identical contents', async (t) => {
    if (skipReason) return t.skip(skipReason);
    await run('mkfs.ext4', ['-q', '-F', image]);
    try {
      await run('mount', ['-o', 'loop', image, mnt]);
    } catch (err) {
      return t.skip(`loop mount is not permitted here: ${(err as Error).message.split('\n')[0]}`);
    }
    const expected = new Map<string, string>();
    await mkdir(join(mnt, 'sub', 'deeper'), { recursive: true });
    for (let i = 0; i < FILES; i++) {
      const data = randomBytes(1 + ((i * 97_331) % (2 << 20)));
      const name = join(i % 2 ? 'sub' : i % 3 ? 'sub/deeper' : '.', `file-${i}.bin`);
      await writeFile(join(mnt, name), data);
      expected.set(name, createHash('sha256').update(data).digest('hex'));
    }
    await run('umount', [mnt]);
    // e2fsck exits non-zero (and run() rejects) on any inconsistency.
    const fsck = await run('e2fsck', ['-fn', image]);
    // A fresh ext4 uses 11 inodes (reserved ones and lost+found); then our files and two directories.
    assert.match(fsck.stdout + fsck.stderr, new RegExp(`\\b${11 + FILES + 2}/\\d+ files`), 'e2fsck sees every file and directory');

    await run('mount', ['-o', 'loop', image, mnt]);
    try {
      for (const [name, sum] of expected) {
        assert.equal(createHash('sha256').update(await readFile(join(mnt, name))).digest('hex'), sum, name);
      }
      assert.equal((await readdir(join(mnt, 'sub'))).filter((n) => n.endsWith('.bin')).length, FILES / 2);
    } finally {
      await run('umount', [mnt]);
    }
    const chk = await c.master.client.checkVolume('fs');
    assert.equal(chk.mismatches, 0, JSON.stringify(chk.firstMismatches));
    assert.ok(chk.stripesChecked > 0);
  });
});
