/**
 * Volume engine throughput on memory members: full-stripe raid5/raid6 writes, raid5 4 KiB random
 * writes, parity alone (native vs portable XOR, RS 4+2), against a memcpy baseline in the same run.
 */
import { randomBytes } from 'node:crypto';
import { Layout, type LayoutKind } from '../src/block/volume/layout.js';
import { MemoryMember } from '../src/block/volume/memory-member.js';
import { computeParity, xorInto, xorIntoJs } from '../src/block/volume/parity.js';
import { StripedVolume } from '../src/block/volume/striped-volume.js';

const UNIT = 64 << 10;
const ROUND_MS = 1_500;
const MAX_ROUNDS = 100_000;

async function rate(bytesPerOp: number, op: () => Promise<void> | void): Promise<number> {
  const t0 = performance.now();
  let n = 0;
  while (n < MAX_ROUNDS && performance.now() - t0 < ROUND_MS) { await op(); n++; }
  return (n * bytesPerOp) / ((performance.now() - t0) / 1000) / 1e6;
}

async function volumeRate(kind: LayoutKind, members: number, random4k: boolean): Promise<number> {
  const stripes = 64;
  const layout = new Layout({ kind, members, unitSize: UNIT, memberSize: stripes * UNIT });
  const ms = Array.from({ length: members }, (_, i) => new MemoryMember({ id: `m${i}`, size: layout.memberSize, unitSize: UNIT }));
  const v = await StripedVolume.open({ layout, members: ms });
  const sw = layout.stripeDataBytes;
  if (random4k) {
    const buf = randomBytes(4096);
    let i = 0;
    // 16 in flight, as an NBD client with a queue would send them.
    return rate(16 * 4096, async () => {
      await Promise.all(Array.from({ length: 16 }, () => v.write(((i++ * 7919) % (layout.size / 4096)) * 4096, buf)));
    });
  }
  const buf = randomBytes(sw * 4);
  let s = 0;
  return rate(buf.length, async () => { await v.write((s++ % (stripes / 4)) * 4 * sw, buf); });
}

export async function main(_args: string[]): Promise<void> {
  const src = randomBytes(1 << 20);
  const dst = Buffer.alloc(1 << 20);
  const memcpy = await rate(src.length, () => { src.copy(dst); });
  const rows: Array<[string, number]> = [['memcpy 1 MiB (baseline)', memcpy]];
  rows.push(['xor native 1 MiB', await rate(src.length, () => xorInto(dst, src))]);
  rows.push(['xor portable 1 MiB', await rate(src.length, () => xorIntoJs(dst, src))]);
  const data4 = Array.from({ length: 4 }, () => randomBytes(UNIT));
  rows.push(['rs 4+2 parity, 64 KiB units', await rate(4 * UNIT, async () => { await computeParity(data4, 2); })]);
  rows.push(['raid5 4+1 full-stripe write', await volumeRate('raid5', 5, false)]);
  rows.push(['raid6 4+2 full-stripe write', await volumeRate('raid6', 6, false)]);
  rows.push(['raid1 x2 write', await volumeRate('raid1', 2, false)]);
  rows.push(['raid5 4+1 random 4 KiB writes', await volumeRate('raid5', 5, true)]);
  rows.push(['raid6 4+2 random 4 KiB writes', await volumeRate('raid6', 6, true)]);
  for (const [name, mbs] of rows) {
    process.stdout.write(`${name.padEnd(34)} ${mbs.toFixed(0).padStart(7)} MB/s  ${(mbs / memcpy).toFixed(3)}× memcpy\n`);
  }
}
