/**
 * The files benchmark's baseline, run as its own process so its memory does not count against
 * the client's: the least work a put and a get must do, with no network and no cluster.
 *
 *   put: read the file, hash and encrypt each chunk (encryptChunk), write three copies, fsync them
 *   get: read one copy back, verify each chunk's id and decrypt it
 *
 * Usage: node dist/bench/files-baseline.js SOURCE OUTDIR CHUNK_BYTES  → one JSON line on stdout.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { decryptChunk, encryptChunk, encryptedSize } from '../src/content/crypto.js';

const COPIES = 3;

async function readFully(fh: FileHandle, buf: Buffer, len: number, pos: number): Promise<void> {
  for (let got = 0; got < len; ) {
    const { bytesRead } = await fh.read(buf, got, len - got, pos + got);
    if (bytesRead === 0) throw new Error(`unexpected end of file at ${pos + got}`);
    got += bytesRead;
  }
}

async function basePut(source: string, dir: string, chunkBytes: number) {
  const secret = randomBytes(32);
  const src = await open(source, 'r');
  const size = (await src.stat()).size;
  await mkdir(dir, { recursive: true });
  const copies = await Promise.all(Array.from({ length: COPIES }, (_, i) => open(join(dir, `copy${i}`), 'w')));
  const plain = Buffer.allocUnsafeSlow(chunkBytes);
  // Two output buffers: one chunk's copies are written while the next one is encrypted.
  const out = [Buffer.allocUnsafeSlow(encryptedSize(chunkBytes)), Buffer.allocUnsafeSlow(encryptedSize(chunkBytes))];
  const pending: Promise<unknown>[] = [Promise.resolve(), Promise.resolve()];
  const chunks: { id: Buffer; key: Buffer; size: number }[] = [];
  const t0 = performance.now();
  let pos = 0;
  for (let i = 0; pos < size; i++) {
    const n = Math.min(chunkBytes, size - pos);
    await readFully(src, plain, n, pos);
    const slot = i % 2;
    await pending[slot];
    const enc = encryptChunk(plain.subarray(0, n), secret, out[slot]);
    chunks.push({ id: enc.id, key: enc.key, size: enc.data.length });
    const at = i * encryptedSize(chunkBytes);
    pending[slot] = Promise.all(copies.map((fh) => fh.write(enc.data, 0, enc.data.length, at)));
    pos += n;
  }
  await Promise.all(pending);
  await Promise.all(copies.map((fh) => fh.sync()));
  const ms = performance.now() - t0;
  await Promise.all([src.close(), ...copies.map((fh) => fh.close())]);
  return { size, ms, chunks };
}

async function baseGet(dir: string, chunkBytes: number, chunks: { id: Buffer; key: Buffer; size: number }[]) {
  const fh = await open(join(dir, 'copy0'), 'r');
  const stride = encryptedSize(chunkBytes);
  const inBufs = [Buffer.allocUnsafeSlow(stride), Buffer.allocUnsafeSlow(stride)];
  const plain = Buffer.allocUnsafeSlow(chunkBytes);
  const t0 = performance.now();
  let bytes = 0;
  // The next chunk's read is in flight while this one is verified and decrypted.
  let next: Promise<void> | undefined = chunks[0] ? readFully(fh, inBufs[0] as Buffer, chunks[0].size, 0) : undefined;
  for (let i = 0; i < chunks.length; i++) {
    await next;
    const c = chunks[i] as { id: Buffer; key: Buffer; size: number };
    const following = chunks[i + 1];
    next = following ? readFully(fh, inBufs[(i + 1) % 2] as Buffer, following.size, (i + 1) * stride) : undefined;
    bytes += decryptChunk((inBufs[i % 2] as Buffer).subarray(0, c.size), c.key, c.id, plain).length;
  }
  const ms = performance.now() - t0;
  await fh.close();
  return { bytes, ms };
}

const [source, dir, chunkText] = process.argv.slice(2);
if (!source || !dir || !chunkText) {
  process.stderr.write('usage: files-baseline SOURCE OUTDIR CHUNK_BYTES\n');
  process.exit(2);
}
const chunkBytes = Number(chunkText);
const put = await basePut(source, dir, chunkBytes);
const get = await baseGet(dir, chunkBytes, put.chunks);
if (get.bytes !== put.size) throw new Error(`baseline get read ${get.bytes} bytes of ${put.size}`);
process.stdout.write(JSON.stringify({ size: put.size, putMs: put.ms, getMs: get.ms }) + '\n');
