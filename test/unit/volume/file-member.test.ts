import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { isTesseraError } from '../../../src/errors.js';
import { FileMember } from '../../helpers/file-member.js';
import { Layout } from '../../../src/block/volume/layout.js';
import { MAX_MEMBER_IO_BYTES } from '../../../src/block/volume/member.js';
import { FileBlobStorage, FileLogStorage } from '../../../src/block/volume/storage.js';
import { IntentLog } from '../../../src/block/volume/intent-log.js';
import { StripedVolume } from '../../../src/block/volume/striped-volume.js';

const UNIT = 4096;

async function tmp(): Promise<string> { return mkdtemp(join(tmpdir(), 'tessera-vol-')); }

test('file member: positional I/O, generations, stale writes fenced', async () => {
  const dir = await tmp();
  try {
    const m = await FileMember.open({ path: join(dir, 'm0'), size: 16 * UNIT, unitSize: UNIT });
    assert.equal((await stat(join(dir, 'm0'))).size, 16 * UNIT);
    assert.ok((await m.read(0, UNIT)).equals(Buffer.alloc(UNIT)), 'unwritten reads as zeroes');
    const d = randomBytes(UNIT + 100);
    await m.write(UNIT - 50, d, { generation: 7, durable: true });
    assert.ok((await m.read(UNIT - 50, d.length)).equals(d));
    assert.deepEqual(await m.generations(0, 4), [7, 7, 7, 0]);
    await assert.rejects(m.write(UNIT, Buffer.alloc(10), { generation: 6 }), (e: unknown) => isTesseraError(e, 'CONFLICT'));
    await m.write(UNIT, Buffer.alloc(10), { generation: 8 });
    await m.close();
    const again = await FileMember.open({ path: join(dir, 'm0'), size: 16 * UNIT, unitSize: UNIT });
    assert.deepEqual(await again.generations(0, 3), [7, 8, 7]);
    assert.ok((await again.read(UNIT + 10, 50)).equals(d.subarray(60, 110)));
    await assert.rejects(again.read(16 * UNIT - 1, 2), (e: unknown) => isTesseraError(e, 'BAD_INPUT'));
    await assert.rejects(again.read(0, MAX_MEMBER_IO_BYTES + 1), (e: unknown) => isTesseraError(e, 'TOO_LARGE'));
    await assert.rejects(again.generations(0, 17), (e: unknown) => isTesseraError(e, 'BAD_INPUT'));
    await again.close();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('raid5 on file members: data, dirty set and intents survive closing and reopening', async () => {
  const dir = await tmp();
  try {
    const layout = new Layout({ kind: 'raid5', members: 3, unitSize: UNIT, memberSize: 8 * UNIT });
    const open = () => Promise.all([0, 1, 2].map((i) => FileMember.open({ path: join(dir, `m${i}`), size: layout.memberSize, unitSize: UNIT, id: `m${i}` })));
    const healthStorage = new FileBlobStorage(join(dir, 'health'));
    const intentStorage = new FileLogStorage(join(dir, 'intents'));
    const ref = randomBytes(layout.size);
    let members = await open();
    let v = await StripedVolume.open({ layout, members, healthStorage, intentStorage });
    await v.write(0, ref, { fua: true });
    await v.close();

    members = await open();
    const gone = members[2] as FileMember;
    // Member 2 is unreachable for this master: close it so every call fails.
    await gone.close();
    v = await StripedVolume.open({ layout, members, healthStorage, intentStorage });
    const patch = randomBytes(3000);
    await v.write(UNIT * 3 + 10, patch);
    patch.copy(ref, UNIT * 3 + 10);
    assert.ok((await v.read(0, layout.size)).equals(ref));
    const dirty = v.status().members[2]?.dirtyUnits ?? 0;
    assert.ok(dirty >= 1, 'the missed stripe is recorded');
    await v.close();

    members = await open();
    v = await StripedVolume.open({ layout, members, healthStorage, intentStorage });
    assert.equal(v.status().members[2]?.state, 'down', 'a restarted master remembers the member is stale');
    const rep = await v.resync(2);
    assert.equal(rep.unitsCopied, dirty);
    assert.equal((await v.check()).mismatches, 0);
    assert.ok((await v.read(0, layout.size)).equals(ref));
    await v.close();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('intent log refuses a damaged file', async () => {
  const { MemoryBlobStorage } = await import('../../../src/block/volume/storage.js');
  const s = new MemoryBlobStorage();
  await s.save(Buffer.from('TIL1\xff\xff\xff\x7fxx', 'latin1'));
  await assert.rejects(IntentLog.open(s), (e: unknown) => isTesseraError(e, 'TOO_LARGE'));
  await s.save(Buffer.from('nope'));
  await assert.rejects(IntentLog.open(s), (e: unknown) => isTesseraError(e, 'CORRUPT'));
});
