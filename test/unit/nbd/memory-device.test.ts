import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { MemoryStore, MemoryVolumeProvider, MEMORY_PAGE_BYTES, MAX_MEMORY_DEVICE_BYTES } from '../../helpers/memory-device.js';
import { isTesseraError } from '../../../src/errors.js';

describe('MemoryStore', () => {
  it('costs nothing until written, then one page per touched page', () => {
    const s = new MemoryStore({ size: 1 << 30 });
    assert.equal(s.allocatedBytes, 0);
    assert.ok(s.read(123 * 512, 4096).equals(Buffer.alloc(4096)));
    s.write(MEMORY_PAGE_BYTES - 512, Buffer.alloc(1024, 7)); // straddles two pages
    assert.equal(s.allocatedBytes, 2 * MEMORY_PAGE_BYTES);
  });

  it('behaves like a flat buffer under random writes, zeroes and reads', () => {
    const SIZE = 4 * MEMORY_PAGE_BYTES + 4096;
    const op = fc.record({
      kind: fc.constantFrom('write', 'zero', 'read'),
      offset: fc.integer({ min: 0, max: SIZE - 1 }),
      length: fc.integer({ min: 0, max: 2 * MEMORY_PAGE_BYTES }),
      byte: fc.integer({ min: 1, max: 255 }),
    });
    fc.assert(
      fc.property(fc.array(op, { maxLength: 40 }), (ops) => {
        const s = new MemoryStore({ size: SIZE });
        const model = Buffer.alloc(SIZE);
        for (const o of ops) {
          const len = Math.min(o.length, SIZE - o.offset);
          if (o.kind === 'write') {
            s.write(o.offset, Buffer.alloc(len, o.byte));
            model.fill(o.byte, o.offset, o.offset + len);
          } else if (o.kind === 'zero') {
            s.zero(o.offset, len);
            model.fill(0, o.offset, o.offset + len);
          } else assert.ok(s.read(o.offset, len).equals(model.subarray(o.offset, o.offset + len)));
        }
        assert.ok(s.read(0, SIZE).equals(model));
      }),
      { numRuns: 200 },
    );
  });

  it('releases whole pages on zero', () => {
    const s = new MemoryStore({ size: 4 * MEMORY_PAGE_BYTES });
    s.write(0, Buffer.alloc(4 * MEMORY_PAGE_BYTES, 1));
    s.zero(MEMORY_PAGE_BYTES, 2 * MEMORY_PAGE_BYTES);
    assert.equal(s.allocatedBytes, 2 * MEMORY_PAGE_BYTES);
  });

  it('rejects ranges outside the device and refuses writes beyond capacity without partial data', () => {
    const s = new MemoryStore({ size: 1 << 20, capacityBytes: MEMORY_PAGE_BYTES });
    assert.throws(() => s.read((1 << 20) - 512, 1024), (e) => isTesseraError(e, 'BAD_INPUT'));
    assert.throws(() => s.write(-512, Buffer.alloc(512)), (e) => isTesseraError(e, 'BAD_INPUT'));
    s.write(0, Buffer.alloc(512, 1));
    assert.throws(() => s.write(MEMORY_PAGE_BYTES - 512, Buffer.alloc(1024, 2)), (e) => isTesseraError(e, 'NO_SPACE'));
    assert.ok(s.read(MEMORY_PAGE_BYTES - 512, 512).equals(Buffer.alloc(512)), 'the failed write left nothing behind');
  });

  it('validates its geometry', () => {
    assert.throws(() => new MemoryStore({ size: 0 }), /size/);
    assert.throws(() => new MemoryStore({ size: MAX_MEMORY_DEVICE_BYTES + 1 }), /size/);
    assert.throws(() => new MemoryStore({ size: 1 << 20, minBlockSize: 1000 }), /power of two/);
    assert.throws(() => new MemoryStore({ size: 1 << 20, minBlockSize: 4096, preferredBlockSize: 512 }), /preferredBlockSize/);
  });
});

describe('MemoryVolumeProvider', () => {
  it('lists volumes in order, opens handles that share data, and closes only the handle', async () => {
    const p = new MemoryVolumeProvider([
      { name: 'a', size: 1 << 20, description: 'A' },
      { name: 'b', size: 2 << 20 },
    ]);
    assert.deepEqual((await p.list()).map((v) => [v.name, v.size]), [['a', 1 << 20], ['b', 2 << 20]]);
    const h1 = await p.open('a');
    const h2 = await p.open('a');
    await h1.write(4096, Buffer.alloc(512, 9));
    await h1.close();
    assert.ok((await h2.read(4096, 512)).equals(Buffer.alloc(512, 9)));
    await assert.rejects(h1.read(0, 512), (e) => isTesseraError(e, 'CONFLICT'));
    await assert.rejects(p.open('zzz'), (e) => isTesseraError(e, 'NOT_FOUND'));
    assert.throws(() => p.add({ name: 'a', size: 1 << 20 }), (e) => isTesseraError(e, 'CONFLICT'));
    assert.equal(h2.multiConn, true);
  });
});
