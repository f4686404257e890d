/**
 * A real filesystem on a raid5 volume striped over four storage nodes and served by the nbd
 * master (see ext4-over-nbd for the steps); then `volume check` finds parity consistent.
 * Needs root, /dev/fuse and loop devices; skips with the reason when the sandbox lacks them.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { ext4RoundTrip, filesystemUnavailable, FuseExport } from '../helpers/ext4-over-nbd.js';
import { VolumeCluster } from './volume-harness.js';

describe('ext4 on a raid5 cluster volume through nbdfuse and a loop mount', { skip: filesystemUnavailable() }, () => {
  let c: VolumeCluster | undefined;
  let fx: FuseExport | undefined;

  before(async () => {
    c = await VolumeCluster.create({ storage: 4 });
    await c.createVolume('fs', 'raid5', 128 << 20, [0, 1, 2, 3]);
    await c.waitOpen('fs');
    fx = await FuseExport.open(c.uri('fs'));
  });

  after(async () => {
    await fx?.close();
    await c?.destroy();
  });

  it('makes, fills, checks and remounts the filesystem with identical contents', async (t) => {
    await ext4RoundTrip(t, fx!);
    if (fx!.skipReason) return;
    const chk = await c!.master.client.checkVolume('fs');
    assert.equal(chk.mismatches, 0, JSON.stringify(chk.firstMismatches));
    assert.ok(chk.stripesChecked > 0);
  });
});
