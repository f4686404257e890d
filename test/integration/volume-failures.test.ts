/**
 * Failures under load with real processes: kill -9 of minions during an fio crc32c verify run
 * (raid1, raid5), resync of only the dirty units when the node returns, a second, different
 * minion lost afterwards, raid6 with two minions down, and kill -9 of the master during writes
 * (also with a member rolling a flushed sector back while the master is down: the version log).
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { missingTools, run } from '../helpers/nbd-harness.js';
import { waitFor } from '../../src/cli/local-cluster.js';
import type { VolumeView } from '../../src/api/volume-routes.js';
import { VolumeCluster } from './volume-harness.js';
import { SECTOR_BYTES } from '../../src/block/volume/seal.js';

const TOOLS = ['nbdcopy', 'fio', 'qemu-img'];
const MiB = 1 << 20;
const VOLUME_BYTES = 128 * MiB;
/** Known data written and flushed before any failure; must survive all of them. */
const KNOWN_BYTES = 16 * MiB;
const FIO_OFFSET = '64M';
const FIO_BYTES = '32M';
/** Paces fio so its write phase outlasts the moment a node is killed (8192 writes ≥ 5 s). */
const FIO_RATE_IOPS = '1500';
const FIO_TIMEOUT_MS = 300_000;
/** How long fio gets to notice its server died before it is killed: its nbd engine sometimes keeps retrying instead of exiting. */
const FIO_LOST_SERVER_MS = 20_000;
const RESYNC_TIMEOUT_MS = 90_000;
/** Lets fio get going before a node is killed; not an assertion. */
const KILL_AFTER_MS = 1_500;

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function fioArgs(uri: string, verifyOnly: boolean): string[] {
  return [
    // --thread: fio's job runs inside the process the timeout kills; a forked job outlived that
    // SIGKILL once, spinning on a dead server and holding the test's pipes open.
    '--name=load', '--thread', '--ioengine=nbd', `--uri=${uri}`, '--rw=randwrite', '--bs=4k', '--iodepth=16',
    `--offset=${FIO_OFFSET}`, `--size=${FIO_BYTES}`, '--verify=crc32c', '--verify_fatal=1', '--output=/dev/null',
    ...(verifyOnly ? ['--verify_only'] : ['--do_verify=1', `--rate_iops=${FIO_RATE_IOPS}`]),
  ];
}

/** Runs fio in the background; resolves with its exit code and output. */
function startFio(args: string[]): { done: Promise<{ code: number | null; out: string }>; running: () => boolean; kill: () => void } {
  const p = spawn('fio', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  p.stdout.on('data', (d: Buffer) => { out = (out + d.toString()).slice(-8192); });
  p.stderr.on('data', (d: Buffer) => { out = (out + d.toString()).slice(-8192); });
  const timer = setTimeout(() => p.kill('SIGKILL'), FIO_TIMEOUT_MS);
  const done = new Promise<{ code: number | null; out: string }>((resolve) => p.once('exit', (code) => { clearTimeout(timer); resolve({ code, out }); }));
  return { done, running: () => p.exitCode === null && p.signalCode === null, kill: () => p.kill('SIGKILL') };
}

describe('volume failures with real processes', { skip: missingTools(TOOLS) }, () => {
  let c: VolumeCluster;
  let dir: string;
  let known: Buffer;
  let knownFile: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'vol-fail-'));
    c = await VolumeCluster.create({ storage: 4 });
    known = randomBytes(KNOWN_BYTES);
    knownFile = join(dir, 'known');
    await writeFile(knownFile, known);
  });

  after(async () => {
    await c?.destroy();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  async function knownIntact(name: string): Promise<void> {
    const back = join(dir, `${name}.back`);
    await run('nbdcopy', ['--no-extents', c.uri(name), back], 300_000);
    const got = await readFile(back);
    await rm(back);
    assert.equal(sha(got.subarray(0, KNOWN_BYTES)), sha(known), `volume ${name}: data flushed before the failures reads back identical`);
  }

  /** Stops the master with kill -9 while fio writes (asserting it was writing), and waits for fio to end. */
  async function killMasterMidWrite(name: string): Promise<void> {
    const fio = startFio(fioArgs(c.uri(name), false));
    await sleep(KILL_AFTER_MS);
    assert.ok(fio.running(), 'fio is still writing when the master is killed');
    await c.killMaster('SIGKILL');
    let gaveUp = false;
    const giveUp = setTimeout(() => {
      gaveUp = true;
      fio.kill();
    }, FIO_LOST_SERVER_MS);
    const r = await fio.done;
    clearTimeout(giveUp);
    if (gaveUp) t_diag(`fio still running ${FIO_LOST_SERVER_MS} ms after its server died; killed. Its last words: ${JSON.stringify(r.out.slice(-600))}`);
    assert.notEqual(r.code, 0, 'fio lost its server');
  }

  async function memberIndex(v: VolumeView, storageIndex: number): Promise<number> {
    const i = v.members.indexOf(c.storage.node(storageIndex).nodeId);
    assert.ok(i >= 0);
    return i;
  }

  /** Waits until no member is down; with `resynced`, also until that node's resync has been reported. */
  async function waitHealthy(name: string, resynced?: { nodeId: string; after: string | undefined }): Promise<VolumeView> {
    return waitFor(`volume ${name} to be whole again`, RESYNC_TIMEOUT_MS, async () => {
      const v = await c.master.client.volume(name);
      if (!v.status || v.status.degraded) return undefined;
      // A member is marked up just before its resync report is recorded.
      const last = v.status.lastResync;
      if (resynced && (last?.nodeId !== resynced.nodeId || last.at === resynced.after)) return undefined;
      return v;
    });
  }

  for (const layout of ['raid5', 'raid1'] as const) {
    it(`${layout}: kill -9 of a minion during fio verify, resync of only the dirty units, then another minion lost`, async () => {
      const name = `f-${layout}`;
      const nodes = layout === 'raid1' ? [1, 2] : [0, 1, 2, 3];
      await c.createVolume(name, layout, VOLUME_BYTES, nodes);
      await c.waitOpen(name);
      await run('nbdcopy', ['--flush', knownFile, c.uri(name)], 300_000);

      const victim = nodes[1] as number;
      const fio = startFio(fioArgs(c.uri(name), false));
      await sleep(KILL_AFTER_MS);
      assert.ok(fio.running(), 'fio is still writing when the minion is killed (the test would prove nothing otherwise)');
      await c.storage.kill(victim, 'SIGKILL');
      const r = await fio.done;
      assert.equal(r.code, 0, `fio saw no I/O error and its crc32c verify passed:\n${r.out}`);

      const down = await c.master.client.volume(name);
      const idx = await memberIndex(down, victim);
      const st = down.status!;
      assert.equal(st.degraded, true);
      assert.equal(st.members[idx]?.state, 'down');
      const dirty = st.members[idx]!.dirtyUnits;
      const stripes = down.memberSize / down.unitSize;
      assert.ok(dirty > 0, 'the writes made while the member was down are remembered');
      assert.ok(dirty < stripes, `only some units are dirty (${dirty} of ${stripes})`);
      t_diag(`${layout}: ${dirty} of ${stripes} units dirty while member ${idx} was down`);

      await c.storage.start(victim);
      const healed = await waitHealthy(name, { nodeId: c.storage.node(victim).nodeId, after: st.lastResync?.at });
      const last = healed.status!.lastResync;
      assert.equal(last?.member, idx);
      assert.equal(last?.dirtyBefore, dirty);
      assert.equal(last?.unitsCopied, dirty, 'resync copied exactly the dirty units');

      const second = nodes[0] as number;
      await c.storage.kill(second, 'SIGKILL');
      const verify = await startFio(fioArgs(c.uri(name), true)).done;
      assert.equal(verify.code, 0, `fio verify-only after losing a different minion:\n${verify.out}`);
      await knownIntact(name);

      await c.storage.start(second);
      await waitHealthy(name);
      const chk = await c.master.client.checkVolume(name);
      assert.equal(chk.mismatches, 0, JSON.stringify(chk.firstMismatches));
      assert.equal(chk.stripesSkipped, 0);
    });
  }

  it('raid6: two minions down during fio, data still correct', async () => {
    const name = 'f-raid6';
    await c.createVolume(name, 'raid6', VOLUME_BYTES, [0, 1, 2, 3]);
    await c.waitOpen(name);
    await run('nbdcopy', ['--flush', knownFile, c.uri(name)], 300_000);
    const fio = startFio(fioArgs(c.uri(name), false));
    await sleep(KILL_AFTER_MS);
    await c.storage.kill(1, 'SIGKILL');
    await c.storage.kill(3, 'SIGKILL');
    const r = await fio.done;
    assert.equal(r.code, 0, `fio with two minions down:\n${r.out}`);
    const v = await c.master.client.volume(name);
    assert.equal(v.status?.members.filter((m) => m.state === 'down').length, 2);
    assert.equal(v.status?.failed, false);
    await knownIntact(name);

    await c.storage.start(1);
    await c.storage.start(3);
    await waitHealthy(name);
    const chk = await c.master.client.checkVolume(name);
    assert.equal(chk.mismatches, 0, JSON.stringify(chk.firstMismatches));
  });

  it('volume replace rebuilds a member onto another node', async () => {
    const name = 'f-replace';
    await c.createVolume(name, 'raid5', VOLUME_BYTES, [0, 1, 2]);
    await c.waitOpen(name);
    await run('nbdcopy', ['--flush', knownFile, c.uri(name)], 300_000);
    const old = c.storage.node(2).nodeId;
    const fresh = c.storage.node(3).nodeId;
    const r = await c.master.client.replaceVolumeMember(name, old.slice(0, 12), fresh.slice(0, 12));
    assert.equal(r.member, 2);
    assert.equal(r.unitsCopied, r.volume.memberSize / r.volume.unitSize, 'a replacement is rebuilt whole');
    assert.deepEqual(r.volume.members, [c.storage.node(0).nodeId, c.storage.node(1).nodeId, fresh]);
    for (const n of [0, 1, 3]) {
      await waitFor(`node ${n} to hold the new record`, 30_000, async () => (await c.storage.node(n).client.volume(name)).members[2] === fresh);
    }
    // The old node is out: losing it changes nothing, and the new member carries its share.
    await c.storage.kill(2, 'SIGKILL');
    await knownIntact(name);
    const chk = await c.master.client.checkVolume(name);
    assert.equal(chk.mismatches, 0, JSON.stringify(chk.firstMismatches));
    assert.equal(chk.stripesSkipped, 0);
    await c.storage.start(2);
  });

  /** Starts the master again: recovery leaves no parity mismatch, no skipped stripe, and the flushed data in place. */
  async function restartCleanAndIntact(name: string): Promise<void> {
    await c.startMaster();
    await c.waitOpen(name);
    const chk = await c.master.client.checkVolume(name);
    assert.equal(chk.mismatches, 0, JSON.stringify(chk.firstMismatches));
    assert.equal(chk.stripesSkipped, 0);
    await knownIntact(name);
  }

  it('kill -9 of the master during writes: after restart, check finds no mismatch and flushed data is present', async () => {
    const name = 'f-master';
    await c.createVolume(name, 'raid5', VOLUME_BYTES, [0, 1, 2, 3]);
    await c.waitOpen(name);
    await run('nbdcopy', ['--flush', knownFile, c.uri(name)], 300_000);
    await killMasterMidWrite(name);
    await restartCleanAndIntact(name);
  });

  /** Target options for qemu-img: bytes [offset, offset+length) of the volume as one image. */
  const rangeOpts = (name: string, offset: number, length: number) =>
    `driver=raw,offset=${offset},size=${length},file.driver=nbd,file.host=127.0.0.1,file.port=${c.master.nbdPort},file.export=${name}`;
  /** Writes `data` at `offset` as one client request; qemu-img flushes before it exits. */
  async function writeRange(name: string, offset: number, data: Buffer): Promise<void> {
    const src = join(dir, `${name}.patch`);
    await writeFile(src, data);
    await run('qemu-img', ['convert', '-n', '-f', 'raw', src, '--target-image-opts', rangeOpts(name, offset, data.length)]);
  }
  async function readRange(name: string, offset: number, length: number): Promise<Buffer> {
    const out = join(dir, `${name}.range`);
    await rm(out, { force: true });
    await run('qemu-img', ['convert', '--image-opts', rangeOpts(name, offset, length), '-O', 'raw', out]);
    return readFile(out);
  }

  it('kill -9 of the master mid-write, twice: check is clean, and a sector a member rolled back meanwhile is still caught (version log)', async () => {
    const name = 'f-versions';
    await c.createVolume(name, 'raid5', VOLUME_BYTES, [0, 1, 2, 3]);
    const v = await c.waitOpen(name);
    await run('nbdcopy', ['--flush', knownFile, c.uri(name)], 300_000);
    // Outside the known data and fio's range.
    const at = 40 * MiB + 3 * SECTOR_BYTES;
    await writeRange(name, at, randomBytes(SECTOR_BYTES));
    const rollBack = await c.captureUnit(v, at);
    const latest = randomBytes(SECTOR_BYTES);
    await writeRange(name, at, latest);

    await killMasterMidWrite(name);
    await restartCleanAndIntact(name);

    // While the master is down again, the member puts back the unit it held before the last flushed write.
    await killMasterMidWrite(name);
    await rollBack();
    await c.startMaster();
    await c.waitOpen(name);
    assert.equal(sha(await readRange(name, at, SECTOR_BYTES)), sha(latest), 'the last flushed write, never the rolled-back one');
    const status = (await c.master.client.volume(name)).status;
    assert.ok((status?.repairedUnits ?? 0) >= 1, 'the rolled-back unit failed its version check and was rewritten from parity');
    const after = await c.master.client.checkVolume(name);
    assert.equal(after.mismatches, 0, JSON.stringify(after.firstMismatches));
    await knownIntact(name);
  });
});

function t_diag(msg: string): void {
  process.stdout.write(`# ${msg}\n`);
}
