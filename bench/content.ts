/**
 * Throughput of the content layer's hot paths at 1 MiB chunks: hashing, convergent encryption,
 * verified decryption, and Reed–Solomon encode/decode. SHA-256 is the in-run baseline.
 * Usage: content [--seconds S] (per measurement, default 1).
 */
import { randomBytes } from 'node:crypto';
import { DEFAULT_CHUNK_BYTES } from '../src/limits.js';
import { decryptChunk, encryptChunk, encryptedSize, sha256 } from '../src/content/crypto.js';
import { decodeShards, encodeShards } from '../src/content/erasure.js';

const MAX_ITERATIONS = 100_000;

interface Result {
  name: string;
  mbPerSec: number;
}

async function measure(name: string, bytesPerOp: number, seconds: number, op: () => unknown): Promise<Result> {
  for (let i = 0; i < 20; i++) await op();
  const deadline = performance.now() + seconds * 1000;
  const start = performance.now();
  let ops = 0;
  while (ops < MAX_ITERATIONS && performance.now() < deadline) {
    await op();
    ops++;
  }
  const elapsed = (performance.now() - start) / 1000;
  return { name, mbPerSec: (ops * bytesPerOp) / elapsed / 1e6 };
}

export async function main(args: string[]): Promise<void> {
  const at = args.indexOf('--seconds');
  const seconds = at >= 0 ? Number(args[at + 1]) : 1;
  if (!Number.isFinite(seconds) || seconds <= 0 || seconds > 60) throw new Error('--seconds must be in (0, 60]');
  const size = DEFAULT_CHUNK_BYTES;
  const plain = randomBytes(size);
  const secret = randomBytes(32);
  const out = Buffer.allocUnsafe(encryptedSize(size));
  const back = Buffer.allocUnsafe(size);
  const enc = encryptChunk(plain, secret);

  const results: Result[] = [];
  results.push(await measure('sha256 1 MiB (baseline)', size, seconds, () => sha256(plain)));
  results.push(await measure('encryptChunk 1 MiB', size, seconds, () => encryptChunk(plain, secret)));
  results.push(await measure('encryptChunk 1 MiB, reused output', size, seconds, () => encryptChunk(plain, secret, out)));
  results.push(await measure('decryptChunk 1 MiB (id + tag)', size, seconds, () => decryptChunk(enc.data, enc.key, enc.id)));
  results.push(await measure('decryptChunk 1 MiB, reused output', size, seconds, () => decryptChunk(enc.data, enc.key, enc.id, back)));
  for (const [k, m] of [
    [4, 2],
    [10, 4],
  ] as const) {
    const { shards } = await encodeShards(enc.data, { k, m });
    const healthy = shards.slice();
    const degraded = shards.map((s, i) => (i < m ? null : s));
    results.push(await measure(`rs encode ${k}+${m}`, enc.data.length, seconds, () => encodeShards(enc.data, { k, m })));
    results.push(await measure(`rs decode ${k}+${m}, all data shards`, enc.data.length, seconds, () => decodeShards(healthy, { k, m }, enc.data.length)));
    results.push(await measure(`rs decode ${k}+${m}, ${m} data shards lost`, enc.data.length, seconds, () => decodeShards(degraded, { k, m }, enc.data.length)));
  }
  const baseline = results[0]?.mbPerSec ?? 1;
  const env = process.env.MALLOC_MMAP_THRESHOLD_ ? `MALLOC_MMAP_THRESHOLD_=${process.env.MALLOC_MMAP_THRESHOLD_}` : 'glibc malloc defaults';
  console.log(`content layer, ${size} B chunks, ${seconds}s per row, ${env}`);
  for (const r of results) {
    console.log(`${r.name.padEnd(40)} ${r.mbPerSec.toFixed(0).padStart(7)} MB/s  ${(r.mbPerSec / baseline).toFixed(2)}× sha256`);
  }
}

// Runnable alone too: node --import tsx bench/content.ts
if (import.meta.url === `file://${process.argv[1]}`) await main(process.argv.slice(2));
