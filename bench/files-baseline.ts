/**
 * The files benchmark's baseline, run as its own process so its memory does not count against
 * the client's: the least work a put and a get must do, with no network and no cluster.
 *
 *   put: read the file, hash and encrypt each chunk (encryptChunk), write three copies, fsync them
 *   get: read one copy back, verify each chunk's id and decrypt it
 *
 * Usage (one JSON line on stdout, {ms, bytes}):
 *   node dist/bench/files-baseline.js put SOURCE DIR CHUNK_BYTES   writes DIR/copy0..2 and DIR/index
 *   node dist/bench/files-baseline.js get DIR CHUNK_BYTES          reads DIR/copy0 back using DIR/index
 * Each half is its own run so the benchmark can time it right beside the cluster's put or get.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, unlink, writeFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { KEY_BYTES, decryptChunk, encryptChunk, encryptedSize } from '../src/content/crypto.js';
import { CHUNK_ID_BYTES } from '../src/limits.js';

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

type ChunkRef = { id: Buffer; key: Buffer; size: number };
const INDEX_ENTRY_BYTES = CHUNK_ID_BYTES + KEY_BYTES + 4;

function encodeIndex(chunks: ChunkRef[]): Buffer {
  const out = Buffer.alloc(chunks.length * INDEX_ENTRY_BYTES);
  chunks.forEach((c, i) => {
    const at = i * INDEX_ENTRY_BYTES;
    c.id.copy(out, at);
    c.key.copy(out, at + CHUNK_ID_BYTES);
    out.writeUInt32BE(c.size, at + CHUNK_ID_BYTES + KEY_BYTES);
  });
  return out;
}

function decodeIndex(buf: Buffer): ChunkRef[] {
  const chunks: ChunkRef[] = [];
  for (let at = 0; at + INDEX_ENTRY_BYTES <= buf.length; at += INDEX_ENTRY_BYTES) {
    chunks.push({
      id: buf.subarray(at, at + CHUNK_ID_BYTES),
      key: buf.subarray(at + CHUNK_ID_BYTES, at + CHUNK_ID_BYTES + KEY_BYTES),
      size: buf.readUInt32BE(at + CHUNK_ID_BYTES + KEY_BYTES),
    });
  }
  return chunks;
}

const [mode, ...rest] = process.argv.slice(2);
if (mode === 'put' && rest.length === 3) {
  const [source, dir, chunkText] = rest as [string, string, string];
  const put = await basePut(source, dir, Number(chunkText));
  await writeFile(join(dir, 'index'), encodeIndex(put.chunks));
  // Only copy0 is read back; the others would just hold disk space meanwhile.
  await Promise.all([unlink(join(dir, 'copy1')), unlink(join(dir, 'copy2'))]);
  process.stdout.write(JSON.stringify({ ms: put.ms, bytes: put.size }) + '\n');
} else if (mode === 'get' && rest.length === 2) {
  const [dir, chunkText] = rest as [string, string];
  const get = await baseGet(dir, Number(chunkText), decodeIndex(await readFile(join(dir, 'index'))));
  process.stdout.write(JSON.stringify({ ms: get.ms, bytes: get.bytes }) + '\n');
} else {
  process.stderr.write('usage: files-baseline put SOURCE DIR CHUNK_BYTES | get DIR CHUNK_BYTES\n');
  process.exit(2);
}
