/**
 * A real filesystem on an NBD export, shared by the NBD server and cluster volume tests:
 * nbdfuse exposes the export as a file, ext4 is made on it, loop-mounted, filled, unmounted,
 * checked with e2fsck and remounted to compare every file.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { missingTools, run } from './nbd-harness.js';

const TOOLS = ['nbdfuse', 'fusermount3', 'mkfs.ext4', 'e2fsck', 'mount', 'umount'];
const FILES = 24;
const FUSE_READY_TIMEOUT_MS = 10_000;

/** Why this sandbox cannot run the filesystem test, or false when it can. */
export function filesystemUnavailable(): string | false {
  const missing = missingTools(TOOLS);
  if (missing) return missing;
  if (process.getuid?.() !== 0) return 'loop mounts need root';
  if (!existsSync('/dev/fuse')) return 'no /dev/fuse in this sandbox';
  if (!existsSync('/dev/loop-control')) return 'no loop devices in this sandbox';
  return false;
}

/** An NBD export mounted as a file by nbdfuse, with an empty mount point beside it. */
export class FuseExport {
  private constructor(
    private readonly dir: string,
    private readonly fuseDir: string,
    private readonly fuse: ChildProcess,
    readonly image: string,
    readonly mnt: string,
    readonly skipReason: string | false,
  ) {}

  static async open(uri: string): Promise<FuseExport> {
    const dir = await mkdtemp(join(tmpdir(), 'nbd-fs-'));
    const fuseDir = join(dir, 'fuse');
    const mnt = join(dir, 'mnt');
    await mkdir(fuseDir);
    await mkdir(mnt);
    const pidfile = join(dir, 'nbdfuse.pid');
    const fuse = spawn('nbdfuse', ['-P', pidfile, fuseDir, uri], { stdio: 'ignore' });
    const deadline = Date.now() + FUSE_READY_TIMEOUT_MS;
    while (!existsSync(pidfile) && fuse.exitCode === null && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    const skip = existsSync(pidfile) ? false : `nbdfuse could not mount (exit ${fuse.exitCode}); FUSE is unusable here`;
    return new FuseExport(dir, fuseDir, fuse, join(fuseDir, 'nbd'), mnt, skip);
  }

  async close(): Promise<void> {
    await run('umount', [this.mnt]).catch(() => {});
    if (this.fuse.exitCode === null) {
      const exited = new Promise((r) => this.fuse.once('exit', r));
      await run('fusermount3', ['-u', this.fuseDir]).catch(() => this.fuse.kill('SIGTERM'));
      await exited;
    }
    await rm(this.dir, { recursive: true, force: true });
  }
}

/** Makes, fills, checks and remounts ext4 on the export; skips `t` when the sandbox forbids it. */
export async function ext4RoundTrip(t: TestContext, fx: FuseExport): Promise<void> {
  if (fx.skipReason) return t.skip(fx.skipReason);
  const { image, mnt } = fx;
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
}
