/** The minion side of block volumes refuses malformed and oversized requests with a clear error and changes nothing. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isTesseraError } from '../../../src/errors.js';
import type { IncomingRequest } from '../../../src/net/transport.js';
import { ExtentStore, MAX_EXTENT_UNITS } from '../../../src/store/extent-store.js';
import { MAX_EXTENT_NAME_CHARS, Minion } from '../../../src/block/minion.js';
import { openExtentGuard } from '../../helpers/open-extent-guard.js';
import { MAX_BATCH_BYTES, MAX_BATCH_OPS } from '../../../src/block/remote-member.js';
import { MAX_MEMBER_IO_BYTES } from '../../../src/block/volume/member.js';

const UNIT = 4096;

function req(method: string, body: unknown, payload = Buffer.alloc(0)): IncomingRequest {
  return { method, body, payload, peer: { nodeId: 'master' } } as unknown as IncomingRequest;
}

/** A minion over a fresh store holding extent 'v.1' of 16 units; removed afterwards. */
async function withMinion(fn: (store: ExtentStore, minion: Minion) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'tessera-minion-'));
  const store = await ExtentStore.open(join(dir, 'x'));
  try {
    await store.create('v.1', { units: 16, unitSize: UNIT });
    await fn(store, new Minion(store, openExtentGuard));
  } finally {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  }
}

test('minion: malformed, unknown and oversized requests are refused and nothing is written', async () => {
  await withMinion(async (store, minion) => {
    const refused = async (r: IncomingRequest, code: string, pattern: RegExp) => {
      await assert.rejects(minion.handle(r), (e: unknown) => isTesseraError(e) && e.code === code && pattern.test(e.message));
    };
    await refused(req('extent.nope', {}), 'BAD_INPUT', /unknown method 'extent\.nope'/);
    await refused(req('extent.read', { name: 'v.1', offset: -1, length: 10 }), 'BAD_INPUT', /extent\.read: malformed request: offset/);
    await refused(req('extent.read', { name: 'v.1', offset: 0, length: MAX_MEMBER_IO_BYTES + 1 }), 'BAD_INPUT', /length/);
    await refused(req('extent.read', { name: 'x'.repeat(MAX_EXTENT_NAME_CHARS + 1), offset: 0, length: 1 }), 'BAD_INPUT', /name/);
    await refused(req('extent.read', { name: 'v.1', offset: 0, length: 1, extra: true }), 'BAD_INPUT', /malformed/);
    await refused(req('extent.create', { name: 'w', units: MAX_EXTENT_UNITS + 1, unitSize: UNIT }), 'BAD_INPUT', /units/);
    await refused(req('extent.batch', { name: 'v.1', ops: [] }), 'BAD_INPUT', /ops/);
    const tooMany = Array.from({ length: MAX_BATCH_OPS + 1 }, () => [0, 0, 1]);
    await refused(req('extent.batch', { name: 'v.1', ops: tooMany }), 'BAD_INPUT', /ops/);
    // A batch whose write lengths disagree with its payload must not write any of it.
    await refused(req('extent.batch', { name: 'v.1', ops: [[1, 0, 8]] }, Buffer.alloc(4, 0xff)), 'BAD_INPUT', /8 bytes came with 4 bytes of payload/);
    const reads = Array.from({ length: Math.ceil(MAX_BATCH_BYTES / MAX_MEMBER_IO_BYTES) + 1 }, () => [0, 0, MAX_MEMBER_IO_BYTES]);
    assert.ok(reads.length <= MAX_BATCH_OPS, "the over-size batch fits the op limit, so the byte limit is what refuses it");
    await refused(req('extent.batch', { name: 'v.1', ops: reads }), 'TOO_LARGE', /over/);
    await refused(req('extent.write', { name: 'v.1', offset: 0 }, Buffer.alloc(MAX_MEMBER_IO_BYTES + 1)), 'TOO_LARGE', /exceeds/);
    assert.ok((await store.read('v.1', 0, 16)).equals(Buffer.alloc(16)), 'no refused request wrote anything');
    assert.deepEqual(store.list().map((v) => v.name), ['v.1'], 'no refused create made an extent');
  });
});

test('minion: a write hands its payload buffer back once the bytes landed, and only then', async () => {
  await withMinion(async (store, minion) => {
    const recycled: Buffer[] = [];
    const checks: Array<Promise<void>> = [];
    const withRecycle = (r: IncomingRequest, check: () => Promise<void>) => ({
      ...r,
      recycle: () => { recycled.push(r.payload); checks.push(check()); },
    }) as IncomingRequest;
    const landed = (at: number, bytes: Buffer) => async () => assert.deepEqual(await store.read('v.1', at, bytes.length), bytes, 'recycled before the bytes landed');
    const a = Buffer.alloc(2 * UNIT, 0xa1);
    const b = Buffer.alloc(UNIT, 0xb2);
    await minion.handle(withRecycle(req('extent.batch', { name: 'v.1', ops: [[1, 0, a.length], [0, 8 * UNIT, 16], [1, 4 * UNIT, b.length]] }, Buffer.concat([a, b])), async () => {
      await landed(0, a)();
      await landed(4 * UNIT, b)();
    }));
    const c = Buffer.alloc(UNIT, 0xc3);
    await minion.handle(withRecycle(req('extent.write', { name: 'v.1', offset: 6 * UNIT }, c), landed(6 * UNIT, c)));
    assert.equal(recycled.length, 2, 'each request handed its payload back once');
    await Promise.all(checks);
    // A batch refused before it wrote anything never hands back a buffer it may still be told about.
    await assert.rejects(minion.handle(withRecycle(req('extent.batch', { name: 'v.1', ops: [[1, 0, 8]] }, Buffer.alloc(4)), async () => {})));
    assert.equal(recycled.length, 2);
  });
});
