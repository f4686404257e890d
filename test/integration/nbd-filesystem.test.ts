/**
 * A real filesystem on an NBD export of the memory server (see ext4-over-nbd for the steps).
 * Needs root, /dev/fuse and loop devices; skips with the reason when the sandbox lacks them.
 */
import { describe, it, before, after } from 'node:test';
import { startMemoryServerProcess, type ServerProcess } from '../helpers/nbd-harness.js';
import { ext4RoundTrip, filesystemUnavailable, FuseExport } from '../helpers/ext4-over-nbd.js';

describe('ext4 on an NBD export through nbdfuse and a loop mount', { skip: filesystemUnavailable() }, () => {
  let srv: ServerProcess | undefined;
  let fx: FuseExport | undefined;

  before(async () => {
    srv = await startMemoryServerProcess(['--export', 'fs=128M']);
    fx = await FuseExport.open(srv.uri('fs'));
  });

  after(async () => {
    await fx?.close();
    await srv?.stop();
  });

  it('makes, fills, checks and remounts the filesystem with identical contents', (t) => ext4RoundTrip(t, fx!));
});
