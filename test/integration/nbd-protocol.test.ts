/**
 * The NBD server against a raw socket client: correct replies, exact error numbers for every
 * malformed input, and the server keeps serving other clients afterwards.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { NbdServer, type NbdAddress } from '../../src/block/nbd/index.js';
import { MemoryVolumeProvider } from '../helpers/memory-device.js';
import type { BlockDevice, VolumeProvider } from '../../src/block/device.js';
import * as P from '../../src/block/nbd/protocol.js';
import { startServer, waitFor } from '../helpers/nbd-in-process.js';
import { RawNbdClient, chunkError, infoData, metaContextData } from '../helpers/nbd-raw-client.js';
import { MAX_DISCARDED_OPTION_BYTES, MAX_OPTION_BYTES, MAX_PAYLOAD_BYTES } from '../../src/block/nbd/limits.js';

const MiB = 1 << 20;
const SIZE = 8 * MiB;

/** A fresh client on the default export that reads and writes correctly: proof the server still serves. */
async function assertServes(addr: NbdAddress, name = 'disk'): Promise<void> {
  const c = await RawNbdClient.connect(addr);
  await c.go(name);
  c.request(P.CMD_READ, 77n, 0, 512);
  const r = await c.simpleReply(512);
  assert.equal(r.error, 0);
  assert.equal(r.handle, 77n);
  assert.equal(r.data.length, 512);
  c.request(P.CMD_DISC, 0n, 0, 0);
  await c.closed;
}

describe('NBD handshake', () => {
  let server: NbdServer;
  let addr: NbdAddress;
  const provider = new MemoryVolumeProvider([
    { name: 'disk', size: SIZE, description: 'first' },
    { name: 'other', size: 2 * MiB, minBlockSize: 4096, preferredBlockSize: 65536 },
  ]);
  before(async () => ({ server, addr } = await startServer(provider)));
  after(() => server.close());

  it('greets with FIXED_NEWSTYLE and NO_ZEROES', async () => {
    const c = await RawNbdClient.connect(addr);
    assert.equal(await c.greeting(), P.FLAG_FIXED_NEWSTYLE | P.FLAG_NO_ZEROES);
    c.close();
  });

  it('answers GO with export size, flags, block sizes and name', async () => {
    const c = await RawNbdClient.connect(addr);
    const rs = await c.go('', { structured: true, infos: [P.INFO_BLOCK_SIZE, P.INFO_NAME, P.INFO_DESCRIPTION] });
    const infos = new Map(rs.filter((r) => r.type === P.REP_INFO).map((r) => [r.data.readUInt16BE(0), r.data]));
    const exp = infos.get(P.INFO_EXPORT)!;
    assert.equal(exp.readBigUInt64BE(2), BigInt(SIZE));
    const flags = exp.readUInt16BE(10);
    for (const f of [P.TFLAG_HAS_FLAGS, P.TFLAG_SEND_FLUSH, P.TFLAG_SEND_FUA, P.TFLAG_SEND_TRIM, P.TFLAG_SEND_WRITE_ZEROES, P.TFLAG_CAN_MULTI_CONN, P.TFLAG_SEND_CACHE, P.TFLAG_SEND_DF]) {
      assert.ok(flags & f, `flag 0x${f.toString(16)} set`);
    }
    assert.equal(flags & P.TFLAG_READ_ONLY, 0);
    const bs = infos.get(P.INFO_BLOCK_SIZE)!;
    assert.deepEqual([bs.readUInt32BE(2), bs.readUInt32BE(6), bs.readUInt32BE(10)], [512, 4096, MAX_PAYLOAD_BYTES]);
    assert.equal(infos.get(P.INFO_NAME)!.subarray(2).toString(), 'disk', 'default export resolves to the first volume');
    assert.equal(infos.get(P.INFO_DESCRIPTION)!.subarray(2).toString(), 'first');
    c.close();
  });

  it('advertises the device block sizes of another export via INFO, then stays in haggling', async () => {
    const c = await RawNbdClient.connect(addr);
    await c.start();
    c.sendOption(P.OPT_INFO, infoData('other', [P.INFO_BLOCK_SIZE]));
    const rs = await c.optionReplies();
    assert.equal(rs.at(-1)!.type, P.REP_ACK);
    const bs = rs.find((r) => r.type === P.REP_INFO && r.data.readUInt16BE(0) === P.INFO_BLOCK_SIZE)!.data;
    assert.deepEqual([bs.readUInt32BE(2), bs.readUInt32BE(6)], [4096, 65536]);
    c.sendOption(P.OPT_LIST);
    const list = await c.optionReplies();
    assert.deepEqual(
      list.filter((r) => r.type === P.REP_SERVER).map((r) => r.data.subarray(4, 4 + r.data.readUInt32BE(0)).toString()),
      ['disk', 'other'],
    );
    assert.equal(list.at(-1)!.type, P.REP_ACK);
    c.close();
  });

  it('replies ERR_UNSUP to an unknown option and continues', async () => {
    const c = await RawNbdClient.connect(addr);
    await c.start();
    c.sendOption(0x1234, Buffer.from('whatever'));
    const r = await c.optionReply();
    assert.equal(r.type, P.REP_ERR_UNSUP);
    assert.equal(r.option, 0x1234);
    // Known but switched off on this server: policy, as nbdkit answers with --tls=off.
    c.sendOption(P.OPT_STARTTLS);
    assert.equal((await c.optionReply()).type, P.REP_ERR_POLICY);
    c.sendOption(P.OPT_ABORT);
    assert.equal((await c.optionReply()).type, P.REP_ACK);
    await c.closed;
  });

  it('rejects malformed option data with ERR_INVALID and continues', async () => {
    const c = await RawNbdClient.connect(addr);
    await c.start();
    const bad = infoData('disk', []);
    bad.writeUInt32BE(1000, 0); // name length beyond the data
    c.sendOption(P.OPT_GO, bad);
    assert.equal((await c.optionReply()).type, P.REP_ERR_INVALID);
    c.sendOption(P.OPT_GO, Buffer.concat([infoData('disk', [1]), Buffer.from([0])])); // odd trailing byte
    assert.equal((await c.optionReply()).type, P.REP_ERR_INVALID);
    c.sendOption(P.OPT_LIST, Buffer.from('x'));
    assert.equal((await c.optionReply()).type, P.REP_ERR_INVALID);
    c.sendOption(P.OPT_STRUCTURED_REPLY, Buffer.from('x'));
    assert.equal((await c.optionReply()).type, P.REP_ERR_INVALID);
    c.sendOption(P.OPT_GO, infoData('disk\0', []));
    assert.equal((await c.optionReply()).type, P.REP_ERR_INVALID);
    c.sendOption(P.OPT_SET_META_CONTEXT, metaContextData('disk', [P.META_BASE_ALLOCATION]));
    assert.equal((await c.optionReply()).type, P.REP_ERR_INVALID, 'meta context before structured replies');
    c.sendOption(P.OPT_GO, infoData('disk', []));
    assert.equal((await c.optionReplies()).at(-1)!.type, P.REP_ACK);
    c.close();
  });

  it('replies ERR_UNKNOWN for an unknown export and lets the client pick another', async () => {
    const c = await RawNbdClient.connect(addr);
    await c.start();
    c.sendOption(P.OPT_GO, infoData('nope', []));
    const r = await c.optionReply();
    assert.equal(r.type, P.REP_ERR_UNKNOWN);
    assert.match(r.data.toString(), /nope/);
    c.sendOption(P.OPT_GO, infoData('other', []));
    assert.equal((await c.optionReplies()).at(-1)!.type, P.REP_ACK);
    c.close();
  });

  it('skips oversized option data with ERR_TOO_BIG, and disconnects beyond the discard bound', async () => {
    const c = await RawNbdClient.connect(addr);
    await c.start();
    c.sendOption(P.OPT_INFO, Buffer.alloc(MAX_OPTION_BYTES + 1));
    assert.equal((await c.optionReply()).type, P.REP_ERR_TOO_BIG);
    c.sendOption(P.OPT_INFO, Buffer.alloc(0), MAX_DISCARDED_OPTION_BYTES + 1);
    await c.closed;
    assert.ok(c.isClosed);
    await assertServes(addr);
  });

  it('disconnects on bad option magic, unknown client flags, and an unknown NBD_OPT_EXPORT_NAME', async () => {
    const a = await RawNbdClient.connect(addr);
    await a.start();
    a.write(Buffer.alloc(16, 0xab));
    await a.closed;
    const b = await RawNbdClient.connect(addr);
    await b.start(P.FLAG_C_FIXED_NEWSTYLE | 0x80);
    await b.closed;
    const c = await RawNbdClient.connect(addr);
    await c.start();
    c.sendOption(P.OPT_EXPORT_NAME, Buffer.from('nope'));
    await c.closed;
    await assertServes(addr);
  });

  it('enters transmission with NBD_OPT_EXPORT_NAME, padding unless NO_ZEROES', async () => {
    for (const flags of [P.FLAG_C_FIXED_NEWSTYLE, P.FLAG_C_FIXED_NEWSTYLE | P.FLAG_C_NO_ZEROES]) {
      const c = await RawNbdClient.connect(addr);
      await c.start(flags);
      c.sendOption(P.OPT_EXPORT_NAME, Buffer.from('other'));
      const padded = (flags & P.FLAG_C_NO_ZEROES) === 0;
      const r = await c.reader.read(10 + (padded ? 124 : 0));
      assert.equal(r.readBigUInt64BE(0), BigInt(2 * MiB));
      assert.ok(r.readUInt16BE(8) & P.TFLAG_HAS_FLAGS);
      c.request(P.CMD_READ, 5n, 4096, 4096);
      const rep = await c.simpleReply(4096);
      assert.equal(rep.error, 0);
      assert.equal(rep.handle, 5n);
      c.close();
    }
  });

  it('lists and sets base:allocation, ignoring unknown namespaces', async () => {
    const c = await RawNbdClient.connect(addr);
    await c.start();
    c.sendOption(P.OPT_STRUCTURED_REPLY);
    assert.equal((await c.optionReply()).type, P.REP_ACK);
    c.sendOption(P.OPT_LIST_META_CONTEXT, metaContextData('disk', []));
    let rs = await c.optionReplies();
    assert.deepEqual(rs.map((r) => r.type), [P.REP_META_CONTEXT, P.REP_ACK]);
    assert.equal(rs[0]!.data.subarray(4).toString(), P.META_BASE_ALLOCATION);
    c.sendOption(P.OPT_LIST_META_CONTEXT, metaContextData('disk', ['base:']));
    rs = await c.optionReplies();
    assert.equal(rs.length, 2);
    c.sendOption(P.OPT_SET_META_CONTEXT, metaContextData('disk', ['qemu:dirty-bitmap:x', 'base:']));
    rs = await c.optionReplies();
    assert.deepEqual(rs.map((r) => r.type), [P.REP_ACK], 'nothing selected');
    c.sendOption(P.OPT_SET_META_CONTEXT, metaContextData('disk', ['nonamespace']));
    assert.equal((await c.optionReply()).type, P.REP_ERR_INVALID);
    const tooMany = metaContextData('disk', Array.from({ length: 65 }, () => 'x-a:b'));
    c.sendOption(P.OPT_SET_META_CONTEXT, tooMany);
    assert.equal((await c.optionReply()).type, P.REP_ERR_TOO_BIG);
    const truncated = metaContextData('disk', ['base:allocation']).subarray(0, 20);
    c.sendOption(P.OPT_SET_META_CONTEXT, truncated);
    assert.equal((await c.optionReply()).type, P.REP_ERR_INVALID);
    c.sendOption(P.OPT_SET_META_CONTEXT, metaContextData('missing', [P.META_BASE_ALLOCATION]));
    assert.equal((await c.optionReply()).type, P.REP_ERR_UNKNOWN);
    c.close();
  });

  it('refuses GO with ERR_UNKNOWN when there are no volumes', async () => {
    const empty = await startServer(new MemoryVolumeProvider([]));
    try {
      const c = await RawNbdClient.connect(empty.addr);
      await c.start();
      c.sendOption(P.OPT_GO, infoData('', []));
      assert.equal((await c.optionReply()).type, P.REP_ERR_UNKNOWN);
      c.sendOption(P.OPT_LIST);
      assert.deepEqual((await c.optionReplies()).map((r) => r.type), [P.REP_ACK]);
      c.close();
    } finally {
      await empty.server.close();
    }
  });

  it('drops a client that stalls in the handshake', async () => {
    const s = await startServer(provider, { handshakeTimeoutMs: 200 });
    try {
      const c = await RawNbdClient.connect(s.addr);
      await c.greeting();
      await c.closed;
      await waitFor(() => s.server.counters.handshakesFailed === 1, 'handshake failure counted');
    } finally {
      await s.server.close();
    }
  });
});

describe('NBD transmission', () => {
  let server: NbdServer;
  let addr: NbdAddress;
  const provider = new MemoryVolumeProvider([{ name: 'disk', size: SIZE }]);
  const store = provider.store('disk')!;
  before(async () => ({ server, addr } = await startServer(provider)));
  after(() => server.close());

  it('writes and reads back with simple replies, out of order allowed', async () => {
    const c = await RawNbdClient.connect(addr);
    await c.go('disk');
    const data = randomBytes(64 * 1024);
    c.request(P.CMD_WRITE, 1n, 65536, data.length, P.CMD_FLAG_FUA, data);
    assert.deepEqual(await c.simpleReply(), { error: 0, handle: 1n, data: Buffer.alloc(0) });
    c.request(P.CMD_FLUSH, 2n, 0, 0);
    assert.equal((await c.simpleReply()).error, 0);
    c.request(P.CMD_READ, 3n, 65536, data.length);
    const r = await c.simpleReply(data.length);
    assert.equal(r.handle, 3n);
    assert.ok(r.data.equals(data));
    c.request(P.CMD_DISC, 4n, 0, 0);
    await c.closed;
  });

  it('pipelines many requests and answers each handle exactly once', async () => {
    const c = await RawNbdClient.connect(addr);
    await c.go('disk');
    const N = 200;
    const blocks = Array.from({ length: N }, (_, i) => Buffer.alloc(4096, i & 0xff));
    for (let i = 0; i < N; i++) c.request(P.CMD_WRITE, BigInt(i), i * 4096, 4096, 0, blocks[i]);
    const seen = new Set<bigint>();
    for (let i = 0; i < N; i++) {
      const r = await c.simpleReply();
      assert.equal(r.error, 0);
      seen.add(r.handle);
    }
    assert.equal(seen.size, N);
    for (let i = 0; i < N; i++) c.request(P.CMD_READ, BigInt(1000 + i), i * 4096, 4096);
    for (let i = 0; i < N; i++) {
      const r = await c.simpleReply(4096);
      const idx = Number(r.handle) - 1000;
      assert.ok(r.data.equals(blocks[idx]!), `block ${idx}`);
    }
    c.close();
  });

  it('answers bad requests with the spec error numbers and writes nothing for rejected writes', async () => {
    const c = await RawNbdClient.connect(addr);
    await c.go('disk');
    const before = store.read(SIZE - 4096, 4096);
    const cases: Array<[string, () => void, number]> = [
      ['unknown command', () => c.request(42, 10n, 0, 512), P.NBD_EINVAL],
      ['unknown flag', () => c.request(P.CMD_READ, 11n, 0, 512, 0x100), P.NBD_EINVAL],
      ['DF without structured replies', () => c.request(P.CMD_READ, 12n, 0, 512, P.CMD_FLAG_DF), P.NBD_EINVAL],
      ['read past end', () => c.request(P.CMD_READ, 13n, SIZE - 512, 1024), P.NBD_EINVAL],
      ['read at huge offset', () => c.request(P.CMD_READ, 14n, 0xffffffffffffff00n, 512), P.NBD_EINVAL],
      ['read over max', () => c.request(P.CMD_READ, 15n, 0, MAX_PAYLOAD_BYTES + 512), P.NBD_EINVAL],
      ['misaligned read', () => c.request(P.CMD_READ, 16n, 100, 512), P.NBD_EINVAL],
      ['trim past end', () => c.request(P.CMD_TRIM, 17n, SIZE, 512), P.NBD_EINVAL],
      ['write zeroes past end', () => c.request(P.CMD_WRITE_ZEROES, 18n, SIZE - 512, 4096), P.NBD_ENOSPC],
      ['fast zero not advertised', () => c.request(P.CMD_WRITE_ZEROES, 19n, 0, 512, P.CMD_FLAG_FAST_ZERO), P.NBD_EINVAL],
      ['flush with a range', () => c.request(P.CMD_FLUSH, 20n, 512, 512), P.NBD_EINVAL],
      ['block status without meta context', () => c.request(P.CMD_BLOCK_STATUS, 21n, 0, 512), P.NBD_EINVAL],
      ['write past end', () => c.request(P.CMD_WRITE, 22n, SIZE - 4096, 8192, 0, Buffer.alloc(8192, 0xee)), P.NBD_ENOSPC],
      ['write with bad flag', () => c.request(P.CMD_WRITE, 23n, SIZE - 4096, 4096, P.CMD_FLAG_NO_HOLE, Buffer.alloc(4096, 0xee)), P.NBD_EINVAL],
      ['misaligned write', () => c.request(P.CMD_WRITE, 24n, SIZE - 4096, 100, 0, Buffer.alloc(100, 0xee)), P.NBD_EINVAL],
    ];
    for (const [what, send, errno] of cases) {
      send();
      const r = await c.simpleReply();
      assert.equal(r.error, errno, what);
    }
    // The rejected payloads were skipped exactly: the stream is still in sync and nothing was written.
    c.request(P.CMD_READ, 99n, SIZE - 4096, 4096);
    const r = await c.simpleReply(4096);
    assert.equal(r.handle, 99n);
    assert.ok(r.data.equals(before));
    c.close();
  });

  it('skips an over-maximum write payload and keeps the stream in sync', async () => {
    const c = await RawNbdClient.connect(addr);
    await c.go('disk');
    const len = MAX_PAYLOAD_BYTES + 4096;
    c.request(P.CMD_WRITE, 1n, 0, len, 0, Buffer.alloc(len, 0x5a));
    assert.equal((await c.simpleReply()).error, P.NBD_EINVAL);
    c.request(P.CMD_READ, 2n, 0, 4096);
    const r = await c.simpleReply(4096);
    assert.equal(r.handle, 2n);
    assert.notEqual(r.data[0], 0x5a);
    c.close();
  });

  it('disconnects on a bad request magic and keeps serving others', async () => {
    const c = await RawNbdClient.connect(addr);
    await c.go('disk');
    const before = server.counters.protocolErrors;
    c.write(Buffer.alloc(28, 0x11));
    await c.closed;
    await waitFor(() => server.counters.protocolErrors === before + 1, 'protocol error counted');
    await assertServes(addr);
  });

  it('uses structured replies: data chunks, error chunks, block status', async () => {
    const c = await RawNbdClient.connect(addr);
    await c.go('disk', { structured: true, meta: true });
    const data = randomBytes(8192);
    c.request(P.CMD_WRITE, 1n, 8192, 8192, 0, data);
    let ch = await c.structuredChunk();
    assert.equal(ch.type, P.REPLY_TYPE_NONE);
    assert.equal(ch.flags & P.REPLY_FLAG_DONE, P.REPLY_FLAG_DONE);
    c.request(P.CMD_READ, 2n, 8192, 8192, P.CMD_FLAG_DF);
    ch = await c.structuredChunk();
    assert.equal(ch.type, P.REPLY_TYPE_OFFSET_DATA);
    assert.equal(ch.handle, 2n);
    assert.ok(ch.flags & P.REPLY_FLAG_DONE);
    assert.equal(ch.payload.readBigUInt64BE(0), 8192n);
    assert.ok(ch.payload.subarray(8).equals(data));
    c.request(P.CMD_READ, 3n, SIZE, 512);
    ch = await c.structuredChunk();
    assert.equal(ch.type, P.REPLY_TYPE_ERROR);
    assert.equal(chunkError(ch), P.NBD_EINVAL);
    assert.match(ch.payload.subarray(6, 6 + ch.payload.readUInt16BE(4)).toString(), /beyond the end/);
    c.request(P.CMD_BLOCK_STATUS, 4n, 4096, 8192, P.CMD_FLAG_REQ_ONE);
    ch = await c.structuredChunk();
    assert.equal(ch.type, P.REPLY_TYPE_BLOCK_STATUS);
    assert.equal(ch.payload.length, 12);
    assert.equal(ch.payload.readUInt32BE(4), 8192, 'one extent, no longer than the request');
    c.request(P.CMD_BLOCK_STATUS, 5n, 4096, 8192);
    ch = await c.structuredChunk();
    assert.equal(ch.payload.readUInt32BE(4), SIZE - 4096, 'without REQ_ONE the extent covers the tail');
    c.request(P.CMD_BLOCK_STATUS, 6n, SIZE, 512);
    assert.equal(chunkError(await c.structuredChunk()), P.NBD_EINVAL);
    c.request(P.CMD_READ, 7n, 0, 0);
    ch = await c.structuredChunk();
    assert.equal(ch.type, P.REPLY_TYPE_NONE, 'an empty read is answered without a data chunk');
    c.close();
  });

  it('zeroes ranges with and without NO_HOLE, and trims', async () => {
    const c = await RawNbdClient.connect(addr);
    await c.go('disk');
    const base = 2 * MiB;
    c.request(P.CMD_WRITE, 1n, base, 256 * 1024, 0, Buffer.alloc(256 * 1024, 0xff));
    assert.equal((await c.simpleReply()).error, 0);
    c.request(P.CMD_WRITE_ZEROES, 2n, base, 128 * 1024);
    assert.equal((await c.simpleReply()).error, 0);
    c.request(P.CMD_WRITE_ZEROES, 3n, base + 128 * 1024, 64 * 1024, P.CMD_FLAG_NO_HOLE | P.CMD_FLAG_FUA);
    assert.equal((await c.simpleReply()).error, 0);
    c.request(P.CMD_TRIM, 4n, base + 192 * 1024, 512, P.CMD_FLAG_FUA);
    assert.equal((await c.simpleReply()).error, 0);
    c.request(P.CMD_CACHE, 5n, base, 4096);
    assert.equal((await c.simpleReply()).error, 0);
    c.request(P.CMD_READ, 6n, base, 256 * 1024);
    const r = await c.simpleReply(256 * 1024);
    assert.ok(r.data.subarray(0, 192 * 1024).equals(Buffer.alloc(192 * 1024)));
    assert.ok(r.data.subarray(192 * 1024 + 512).equals(Buffer.alloc(64 * 1024 - 512, 0xff)));
    c.close();
  });

  it('counts operations by command and result, and bytes moved', async () => {
    const c = await RawNbdClient.connect(addr);
    await c.go('disk');
    const before = server.counters;
    c.request(P.CMD_WRITE, 1n, 0, 4096, 0, Buffer.alloc(4096, 1));
    await c.simpleReply();
    c.request(P.CMD_READ, 2n, 0, 8192);
    await c.simpleReply(8192);
    c.request(P.CMD_READ, 3n, SIZE, 512);
    await c.simpleReply();
    const after = server.counters;
    assert.equal(after.ops.write.ok - before.ops.write.ok, 1);
    assert.equal(after.ops.read.ok - before.ops.read.ok, 1);
    assert.equal(after.ops.read.error - before.ops.read.error, 1);
    assert.equal(after.bytesWritten - before.bytesWritten, 4096);
    assert.equal(after.bytesRead - before.bytesRead, 8192);
    assert.ok(after.connectionsActive >= 1);
    c.close();
  });
});

describe('NBD device failures, limits and shutdown', () => {
  it('maps a full device to ENOSPC', async () => {
    const provider = new MemoryVolumeProvider([{ name: 'disk', size: SIZE, capacityBytes: 128 * 1024 }]);
    const { server, addr } = await startServer(provider);
    try {
      const c = await RawNbdClient.connect(addr);
      await c.go('disk', { structured: true });
      c.request(P.CMD_WRITE, 1n, 0, 128 * 1024, 0, Buffer.alloc(128 * 1024, 1));
      assert.equal((await c.structuredChunk()).type, P.REPLY_TYPE_NONE);
      c.request(P.CMD_WRITE, 2n, MiB, 4096, 0, Buffer.alloc(4096, 1));
      const ch = await c.structuredChunk();
      assert.equal(ch.type, P.REPLY_TYPE_ERROR);
      assert.equal(chunkError(ch), P.NBD_ENOSPC);
      c.close();
    } finally {
      await server.close();
    }
  });

  it('runs at most maxInFlight requests of one connection at once', async () => {
    const gate = new GatedProvider();
    const { server, addr } = await startServer(gate, { maxInFlight: 3 });
    try {
      const c = await RawNbdClient.connect(addr);
      await c.go('g');
      for (let i = 0; i < 10; i++) c.request(P.CMD_READ, BigInt(i), 0, 512);
      await gate.waitForActive(3);
      await new Promise((r) => setTimeout(r, 50));
      assert.equal(gate.maxActive, 3);
      gate.openAll();
      for (let i = 0; i < 10; i++) assert.equal((await c.simpleReply(512)).error, 0);
      assert.equal(gate.maxActive, 3);
      c.close();
    } finally {
      await server.close();
    }
  });

  it('finishes in-flight requests on close(), then disconnects', async () => {
    const gate = new GatedProvider();
    const { server, addr } = await startServer(gate);
    const c = await RawNbdClient.connect(addr);
    await c.go('g');
    c.request(P.CMD_READ, 1n, 0, 512);
    await gate.waitForActive(1);
    const closing = server.close();
    setTimeout(() => gate.openAll(), 50);
    const r = await c.simpleReply(512);
    assert.equal(r.error, 0);
    await closing;
    await c.closed;
    assert.equal(gate.closedHandles, 1, 'the device handle was closed');
  });

  it('refuses connections beyond maxConnections', async () => {
    const { server, addr } = await startServer(new MemoryVolumeProvider([{ name: 'disk', size: SIZE }]), { maxConnections: 1 });
    try {
      const a = await RawNbdClient.connect(addr);
      await a.greeting();
      const b = await RawNbdClient.connect(addr);
      await b.closed;
      assert.equal(server.counters.connectionsRejected, 1);
      a.close();
    } finally {
      await server.close();
    }
  });

  it('serves on a unix socket', async () => {
    const { mkdtemp, rm } = await import('node:fs/promises');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const dir = await mkdtemp(join(tmpdir(), 'nbd-'));
    const server = new NbdServer({ provider: new MemoryVolumeProvider([{ name: 'disk', size: SIZE }]) });
    try {
      const addr = await server.listen({ socket: join(dir, 'nbd.sock') });
      assert.deepEqual(addr, { socket: join(dir, 'nbd.sock') });
      await assertServes(addr);
    } finally {
      await server.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

/** A device whose reads wait until the test opens the gate, to observe concurrency. */
class GatedProvider implements VolumeProvider {
  active = 0;
  maxActive = 0;
  closedHandles = 0;
  private gateOpen = false;
  private waiting: Array<() => void> = [];
  private watchers: Array<() => void> = [];

  async list() {
    return [{ name: 'g', size: 1 << 20, description: '' }];
  }
  async open(): Promise<BlockDevice> {
    const self = this;
    return {
      size: 1 << 20,
      minBlockSize: 512,
      preferredBlockSize: 4096,
      multiConn: false,
      async read(_o: number, length: number) {
        self.active++;
        self.maxActive = Math.max(self.maxActive, self.active);
        for (const w of self.watchers.splice(0)) w();
        if (!self.gateOpen) await new Promise<void>((r) => self.waiting.push(r));
        self.active--;
        return Buffer.alloc(length);
      },
      async write() {},
      async flush() {},
      async trim() {},
      async writeZeroes() {},
      async close() {
        self.closedHandles++;
      },
    };
  }
  async waitForActive(n: number): Promise<void> {
    while (this.active < n) await new Promise<void>((r) => this.watchers.push(r));
  }
  openAll(): void {
    this.gateOpen = true;
    for (const w of this.waiting.splice(0)) w();
  }
}
