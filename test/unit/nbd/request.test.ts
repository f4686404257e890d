import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { checkRequest, type NbdRequest } from '../../../src/block/nbd/request.js';
import { describeExport } from '../../../src/block/nbd/export-info.js';
import { MemoryBlockDevice, MemoryStore } from '../../helpers/memory-device.js';
import * as P from '../../../src/block/nbd/protocol.js';
import { MAX_PAYLOAD_BYTES } from '../../../src/block/nbd/limits.js';
import type { BlockDevice } from '../../../src/block/device.js';

const SIZE = 1 << 20;
const info = describeExport(new MemoryBlockDevice(new MemoryStore({ size: SIZE, minBlockSize: 4096 })), { structuredReplies: true });
const ctx = { size: SIZE, info, structuredReplies: true, metaContext: true };
const req = (type: number, offset: number | bigint, length: number, flags = 0): NbdRequest => ({
  type,
  flags,
  offset: BigInt(offset),
  length,
  handle: Buffer.alloc(8),
});
const errno = (r: NbdRequest, c = ctx) => checkRequest(r, c)?.error ?? 0;

describe('NBD request validation', () => {
  it('accepts well-formed requests', () => {
    assert.equal(errno(req(P.CMD_READ, 0, 4096, P.CMD_FLAG_DF | P.CMD_FLAG_FUA)), 0);
    assert.equal(errno(req(P.CMD_WRITE, SIZE - 4096, 4096, P.CMD_FLAG_FUA)), 0);
    assert.equal(errno(req(P.CMD_WRITE_ZEROES, 0, SIZE, P.CMD_FLAG_NO_HOLE)), 0);
    assert.equal(errno(req(P.CMD_BLOCK_STATUS, 0, SIZE, P.CMD_FLAG_REQ_ONE)), 0);
    assert.equal(errno(req(P.CMD_FLUSH, 0, 0)), 0);
    assert.equal(errno(req(P.CMD_TRIM, 0, SIZE)), 0);
  });

  it('returns the spec error for each kind of bad request', () => {
    assert.equal(errno(req(99, 0, 0)), P.NBD_EINVAL);
    assert.equal(errno(req(P.CMD_READ, 0, 4096, P.CMD_FLAG_REQ_ONE)), P.NBD_EINVAL);
    assert.equal(errno(req(P.CMD_READ, 0, 4096, P.CMD_FLAG_DF), { ...ctx, structuredReplies: false }), P.NBD_EINVAL);
    assert.equal(errno(req(P.CMD_READ, 512, 4096)), P.NBD_EINVAL, 'misaligned to the 4 KiB minimum');
    assert.equal(errno(req(P.CMD_READ, SIZE, 4096)), P.NBD_EINVAL);
    assert.equal(errno(req(P.CMD_READ, 2n ** 64n - 4096n, 4096)), P.NBD_EINVAL);
    assert.equal(errno(req(P.CMD_WRITE, SIZE - 4096, 8192)), P.NBD_ENOSPC);
    assert.equal(errno(req(P.CMD_WRITE_ZEROES, SIZE, 4096)), P.NBD_ENOSPC);
    assert.equal(errno(req(P.CMD_TRIM, SIZE, 4096)), P.NBD_EINVAL);
    assert.equal(errno(req(P.CMD_FLUSH, 0, 4096)), P.NBD_EINVAL);
    assert.equal(errno(req(P.CMD_BLOCK_STATUS, 0, 4096), { ...ctx, metaContext: false }), P.NBD_EINVAL);
    assert.equal(errno(req(P.CMD_BLOCK_STATUS, 0, 0)), P.NBD_EINVAL);
  });

  it('bounds payload-carrying lengths by the maximum block size but not trim', () => {
    const big = { ...ctx, size: 2 ** 40 };
    assert.equal(errno(req(P.CMD_READ, 0, MAX_PAYLOAD_BYTES), big), 0);
    assert.equal(errno(req(P.CMD_READ, 0, MAX_PAYLOAD_BYTES + 4096), big), P.NBD_EINVAL);
    assert.equal(errno(req(P.CMD_WRITE, 0, MAX_PAYLOAD_BYTES + 4096), big), P.NBD_EINVAL);
    assert.equal(errno(req(P.CMD_TRIM, 0, 0xfffff000), big), 0);
  });
});

describe('NBD export description', () => {
  const noop = async () => {};
  const dev = (over: Partial<BlockDevice>): BlockDevice => ({
    size: SIZE,
    minBlockSize: 512,
    preferredBlockSize: 4096,
    multiConn: false,
    read: async (_o: number, n: number) => Buffer.alloc(n),
    write: noop,
    flush: noop,
    trim: noop,
    writeZeroes: noop,
    close: noop,
    ...over,
  });

  it('derives flags and block sizes from the device', () => {
    const d = describeExport(dev({ preferredBlockSize: 3 * 65536, multiConn: true }), { structuredReplies: false });
    assert.equal(d.preferredBlock, 131072, 'rounded down to a power of two');
    assert.equal(d.maxBlock, MAX_PAYLOAD_BYTES);
    assert.ok(d.flags & P.TFLAG_CAN_MULTI_CONN);
    assert.equal(d.flags & P.TFLAG_SEND_DF, 0, 'DF only with structured replies');
    assert.equal(describeExport(dev({}), { structuredReplies: true }).flags & P.TFLAG_CAN_MULTI_CONN, 0);
  });

  it('refuses devices that break the contract', () => {
    assert.throws(() => describeExport(dev({ minBlockSize: 1000 }), { structuredReplies: false }), /power of two/);
    assert.throws(() => describeExport(dev({ minBlockSize: 1 << 17 }), { structuredReplies: false }), /power of two/);
    assert.throws(() => describeExport(dev({ size: -1 }), { structuredReplies: false }), /size/);
  });
});
