import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Layout } from '../../../src/block/volume/layout.js';
import { MemoryMember } from '../../../src/block/volume/memory-member.js';
import {
  BAD_RECORD, deriveVolumeKey, SectorSealer, SECTOR_BYTES, SEALED_SECTOR_BYTES, SEAL_OFFLOAD_MIN_BYTES, sealedUnitBytes, type OpenedRun,
} from '../../../src/block/volume/seal.js';
import { MAX_WORKER_RESTARTS, SealingFailed, SealPool } from '../../../src/block/volume/seal-pool.js';
import { SealVersions } from '../../../src/block/volume/seal-versions.js';
import { SealedMember } from '../../../src/block/volume/sealed-member.js';
import { memoryVersionStorage } from './helpers.js';
import { StripedVolume } from '../../../src/block/volume/striped-volume.js';
import { isTesseraError } from '../../../src/errors.js';
import { sealWorkersFromEnv } from '../../../src/block/master.js';

const VOLUME_ID = '0123456789abcdef';
const RUN_SECTORS = SEAL_OFFLOAD_MIN_BYTES / SECTOR_BYTES;
/** Fresh pools tried before a worker kill must have landed mid-job. */
const KILL_ATTEMPTS = 20;
const pools: SealPool[] = [];
after(async () => { await Promise.all(pools.map((p) => p.close())); });

function pooled(opts: ConstructorParameters<typeof SealPool>[0] = {}) {
  const pool = new SealPool({ workers: 2, ...opts });
  pools.push(pool);
  const key = deriveVolumeKey(randomBytes(32), VOLUME_ID);
  const sealer = new SectorSealer(key, VOLUME_ID);
  sealer.offload(pool.lane(sealer));
  // The same sealer working in line: what every pooled result must equal byte for byte.
  const inline = new SectorSealer(key, VOLUME_ID, sealer.spec().nonceRandom);
  return { pool, sealer, inline };
}

/** Records of `n` sectors as they come back from a member: a slice of a larger buffer. */
function asRead(rec: Buffer): Buffer {
  const big = Buffer.alloc(rec.length + 100);
  rec.copy(big, 50);
  return big.subarray(50, 50 + rec.length);
}

const resolved = async (r: Buffer | Promise<Buffer>) => r instanceof Promise ? await r : r;

describe('sealing pool', () => {
  it('seals a large run in a worker into the very records sealing in line gives, and leaves small runs in line', async () => {
    const { sealer, inline } = pooled();
    const plain = randomBytes(4 * SEAL_OFFLOAD_MIN_BYTES);
    const run = sealer.sealRun(plain, 40, () => 1000);
    assert.ok(run.rec instanceof Promise, 'a 256 KiB run goes to a worker');
    const rec = await run.rec;
    const want = inline.sealRun(Buffer.from(plain), 40, () => 1000);
    assert.deepEqual(rec, want.rec, 'same key, nonce half and versions: the same records');
    const small = sealer.sealRun(randomBytes(SECTOR_BYTES), 3, () => 5000);
    assert.ok(Buffer.isBuffer(small.rec), 'a 4 KiB run stays in line');
  });

  it('opens a large run in a worker: plaintext compacted, the version of every record, a bad one marked', async () => {
    const { sealer, inline } = pooled();
    const n = 2 * RUN_SECTORS;
    const plain = randomBytes(n * SECTOR_BYTES);
    const rec = inline.sealRun(plain, 7, () => 300).rec as Buffer;
    rec[5 * SEALED_SECTOR_BYTES + 99] = (rec[5 * SEALED_SECTOR_BYTES + 99] as number) ^ 1;
    const opened = sealer.openRun(asRead(rec), 7, n);
    assert.ok(opened instanceof Promise);
    const { plain: out, versions } = await opened;
    assert.equal(versions.length, n);
    for (let i = 0; i < n; i++) {
      if (i === 5) { assert.equal(versions[i], BAD_RECORD); continue; }
      assert.equal(versions[i], 300 + i);
      assert.deepEqual(out.subarray(i * SECTOR_BYTES, (i + 1) * SECTOR_BYTES), plain.subarray(i * SECTOR_BYTES, (i + 1) * SECTOR_BYTES), `sector ${i}`);
    }
  });

  it('answers each of many concurrent jobs with its own run, whatever order the workers finish in', async () => {
    const { sealer, inline } = pooled({ workers: 3 });
    const jobs = Array.from({ length: 40 }, (_, i) => ({ plain: randomBytes((1 + (i % 4)) * SEAL_OFFLOAD_MIN_BYTES), sector: i * 100, version: 10_000 * (i + 1) }));
    const runs = jobs.map((j) => sealer.sealRun(j.plain, j.sector, () => j.version));
    const recs = await Promise.all(runs.map((r) => resolved(r.rec)));
    recs.forEach((rec, i) => {
      const j = jobs[i]!;
      const n = j.plain.length / SECTOR_BYTES;
      const versions = new Float64Array(n);
      inline.openInPlace(rec, j.sector, n, versions);
      assert.deepEqual([...versions], Array.from({ length: n }, (_, k) => j.version + k), `job ${i}'s versions`);
      assert.deepEqual(rec.subarray(0, j.plain.length), j.plain, `job ${i}'s bytes`);
    });
  });

  it('hands over no more than its job and byte bounds; the rest is sealed in line', async () => {
    const { pool, sealer } = pooled({ workers: 1, maxJobs: 2 });
    const runs = Array.from({ length: 5 }, (_, i) => sealer.sealRun(randomBytes(SEAL_OFFLOAD_MIN_BYTES), i * RUN_SECTORS, () => 1 + i * RUN_SECTORS));
    assert.deepEqual(runs.map((r) => r.rec instanceof Promise), [true, true, false, false, false]);
    assert.equal(pool.load().jobs, 2);
    await Promise.all(runs.map((r) => r.rec));
    assert.equal(pool.load().jobs, 0);
    assert.equal(pool.load().bytes, 0);

    const byBytes = pooled({ workers: 1, maxBytes: 3 * SEAL_OFFLOAD_MIN_BYTES });
    const big = Array.from({ length: 3 }, (_, i) => byBytes.sealer.sealRun(randomBytes(SEAL_OFFLOAD_MIN_BYTES), i * RUN_SECTORS, () => 1 + i * RUN_SECTORS));
    // Records are 64 bytes a sector larger than the plaintext: two runs fit in three runs' bytes, not three.
    assert.deepEqual(big.map((r) => r.rec instanceof Promise), [true, true, false]);
    assert.ok(byBytes.pool.load().bytes <= 3 * SEAL_OFFLOAD_MIN_BYTES);
    await Promise.all(big.map((r) => r.rec));
    assert.throws(() => new SealPool({ workers: 0 }), (e: unknown) => isTesseraError(e, 'BAD_INPUT'));
  });

  it('takes a worker count from the environment only within its bounds', () => {
    assert.equal(sealWorkersFromEnv(undefined), undefined);
    assert.equal(sealWorkersFromEnv(''), undefined);
    assert.equal(sealWorkersFromEnv('0'), 0);
    assert.equal(sealWorkersFromEnv('16'), 16);
    for (const bad of ['17', '-1', '1.5', 'two']) assert.throws(() => sealWorkersFromEnv(bad), (e: unknown) => isTesseraError(e, 'BAD_INPUT'), bad);
  });

  it('fails an open whose worker dies with an I/O error, re-seals a seal in line, and starts another worker', async () => {
    // The kill races the worker: on a busy machine a worker may answer before it dies, which is
    // right too. So the case is tried on fresh pools until a kill lands mid-job.
    for (let attempt = 0; attempt < KILL_ATTEMPTS; attempt++) {
      const { pool, sealer, inline } = pooled({ workers: 1 });
      const n = 1024;
      const plain = randomBytes(n * SECTOR_BYTES);
      const rec = inline.sealRun(plain, 0, () => 1).rec as Buffer;
      const opening = sealer.openRun(asRead(rec), 0, n) as Promise<OpenedRun>;
      const sealing = sealer.sealRun(randomBytes(n * SECTOR_BYTES), n, () => 1 + n);
      await pool.killWorker(0);
      const outcome = await opening.then((r) => r, (e: unknown) => e);
      const sealed = await resolved(sealing.rec);
      const versions = new Float64Array(n);
      inline.openInPlace(sealed, n, n, versions);
      assert.deepEqual([...versions], Array.from({ length: n }, (_, k) => 1 + n + k), 'the seal has its own versions, done by the worker or redone in line');
      if (!(outcome instanceof Error)) {
        assert.deepEqual((outcome as OpenedRun).plain.subarray(0, plain.length), plain, 'an open answered before the kill is right');
        continue;
      }
      assert.ok(outcome instanceof SealingFailed && isTesseraError(outcome, 'IO'), `the open failed with ${String(outcome)}`);
      assert.equal(pool.load().workers, 1, 'another worker took its place');
      assert.equal(pool.load().jobs, 0);
      const again = await sealer.openRun(asRead(rec), 0, n);
      assert.deepEqual(again.plain.subarray(0, plain.length), plain);
      return;
    }
    assert.fail(`in ${KILL_ATTEMPTS} attempts no kill landed before its worker answered`);
  });

  it('stops replacing workers after MAX_WORKER_RESTARTS deaths and seals in line from then on', async () => {
    const { pool, sealer } = pooled({ workers: 1 });
    for (let i = 0; i <= MAX_WORKER_RESTARTS; i++) {
      await pool.killWorker(0);
      // The exit event reaches the pool in a later turn.
      for (let t = 0; t < 100 && pool.load().workers === 1 && pool.hasRoom() && i === MAX_WORKER_RESTARTS; t++) await new Promise((r) => setTimeout(r, 10));
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.equal(pool.load().workers, 0);
    assert.equal(pool.hasRoom(), false);
    const run = sealer.sealRun(randomBytes(SEAL_OFFLOAD_MIN_BYTES), 0, () => 1);
    assert.ok(Buffer.isBuffer(run.rec));
  });
});

describe('sealed volumes with a sealing pool', () => {
  const UNIT = 256 << 10;
  const STRIPES = 8;
  async function sealedVolume(pool: SealPool) {
    const layout = new Layout({ kind: 'raid5', members: 4, unitSize: UNIT, memberSize: STRIPES * UNIT });
    const su = sealedUnitBytes(UNIT);
    const raw = Array.from({ length: 4 }, (_, i) => new MemoryMember({ id: `m${i}`, size: STRIPES * su, unitSize: su }));
    const versions = await SealVersions.open(memoryVersionStorage(), 4, (STRIPES * UNIT) / SECTOR_BYTES);
    const sealer = new SectorSealer(deriveVolumeKey(randomBytes(32), VOLUME_ID), VOLUME_ID);
    sealer.offload(pool.lane(sealer));
    const members = raw.map((m, index) => new SealedMember(m, sealer, UNIT, STRIPES, { table: versions, index }));
    return { layout, raw, volume: await StripedVolume.open({ layout, members }) };
  }

  it('round-trips large and small writes, mixed, and stores no plaintext', async () => {
    const pool = new SealPool({ workers: 2 });
    pools.push(pool);
    const { layout, raw, volume } = await sealedVolume(pool);
    const ref = Buffer.alloc(layout.size);
    const marker = Buffer.from('tessera-plaintext-marker-32bytes');
    const big = Buffer.alloc(layout.size);
    for (let i = 0; i < big.length; i += marker.length) marker.copy(big, i);
    await volume.write(0, big);
    big.copy(ref);
    for (let i = 0; i < 64; i++) {
      const len = i % 3 === 0 ? UNIT : 4096;
      const off = Math.floor(Math.random() * ((layout.size - len) / 4096)) * 4096;
      const data = randomBytes(len);
      await volume.write(off, data);
      data.copy(ref, off);
    }
    assert.deepEqual(await volume.read(0, layout.size), ref);
    for (const m of raw) assert.equal(m.raw().includes(marker), false);
  });

  it('fails a read whose sealing worker dies with an I/O error and keeps every member up', async () => {
    const pool = new SealPool({ workers: 1 });
    pools.push(pool);
    const { layout, volume } = await sealedVolume(pool);
    const data = randomBytes(layout.size);
    await volume.write(0, data);
    const reading = volume.read(0, layout.size);
    // The members answer in a later turn; the worker dies while it opens their records.
    await new Promise((r) => setImmediate(r));
    await pool.killWorker(0);
    await reading.then(
      (got) => assert.deepEqual(got, data, 'a read that finished before the worker died is right'),
      (e: unknown) => assert.ok(isTesseraError(e, 'IO'), `an I/O error, got ${String(e)}`),
    );
    assert.deepEqual(volume.status().members.map((m) => m.state), ['up', 'up', 'up', 'up']);
    assert.deepEqual(await volume.read(0, layout.size), data);
  });
});
