/**
 * Uploads with a known length go as one Content-Length body, and a source that turns out longer
 * or shorter than announced fails the put instead of storing a cut or mis-framed body. A file is
 * read into a few buffers the client uses again and again.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import { connect, type PieceReader } from '../../../src/client/index.js';
import { pumpPieces, UPLOAD_PIECE_BYTES, UPLOAD_PIECES, type PieceWriter } from '../../../src/client/upload-source.js';
import { isTesseraError, TesseraError } from '../../../src/errors.js';

async function* pieces(...sizes: number[]): AsyncGenerator<Buffer> {
  for (const n of sizes) yield Buffer.alloc(n, 1);
}

test('put sends Content-Length when the size is known, and refuses a source of another length', async (t) => {
  const seen: Array<{ headers: IncomingHttpHeaders; bytes: number; complete: boolean }> = [];
  const server = createServer((req, res) => {
    let bytes = 0;
    req.on('data', (b: Buffer) => (bytes += b.length));
    req.on('error', () => {});
    req.on('close', () => seen.push({ headers: req.headers, bytes, complete: req.complete }));
    req.on('end', () => {
      res.writeHead(201, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ fileId: 'tsr1x', size: bytes }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => server.close());
  const client = connect({ api: `127.0.0.1:${(server.address() as { port: number }).port}` });

  const ok = await client.put(pieces(1000, 24), { size: 1024 });
  assert.equal(ok.size, 1024);
  await client.put(pieces(10));
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(seen[0]?.headers['content-length'], '1024');
  assert.equal(seen[0]?.headers['transfer-encoding'], undefined);
  assert.equal(seen[1]?.headers['transfer-encoding'], 'chunked', 'no size: chunked as before');

  for (const [source, what] of [[pieces(600, 600), 'longer'], [pieces(600), 'shorter']] as const) {
    await assert.rejects(client.put(source, { size: 1000 }), (err: unknown) => {
      assert.ok(isTesseraError(err), `${what}: a TesseraError`);
      assert.equal(err.code, 'IO');
      assert.match(err.message, /changed while it was being stored: \d+ bytes where 1000 were announced/);
      return true;
    });
  }
  await new Promise((r) => setTimeout(r, 50));
  assert.ok(seen.slice(2).every((s) => !s.complete), 'the server never saw a complete body of the wrong length');
  await assert.rejects(client.put(pieces(1), { size: -1 }), /size must be a whole number/);
});

/** A reader over `bytes` that hands out at most `step` bytes a read and records every buffer it was given. */
function readerOver(bytes: Buffer, step: number): PieceReader & { buffers: Set<ArrayBufferLike>; reads: number } {
  let at = 0;
  const buffers = new Set<ArrayBufferLike>();
  return {
    buffers,
    reads: 0,
    async readInto(into: Buffer): Promise<number> {
      this.reads++;
      buffers.add(into.buffer);
      const n = Math.min(step, into.length, bytes.length - at);
      bytes.copy(into, 0, at, at + n);
      at += n;
      return n;
    },
  };
}

test('a piece reader is read into a few buffers used again and again, its bytes sent in order', async (t) => {
  const received: Buffer[] = [];
  const server = createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (b: Buffer) => parts.push(b));
    req.on('end', () => {
      received.push(Buffer.concat(parts));
      res.writeHead(201, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ fileId: 'tsr1x', size: Buffer.concat(parts).length }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => server.close());
  const client = connect({ api: `127.0.0.1:${(server.address() as { port: number }).port}` });

  // Many times the ring's memory, with reads shorter than a buffer: every byte in place.
  const size = UPLOAD_PIECE_BYTES * UPLOAD_PIECES * 5 + 12344;
  const bytes = Buffer.alloc(size);
  for (let i = 0; i < size; i += 4) bytes.writeUInt32LE(i >>> 0, i);
  const reader = readerOver(bytes, UPLOAD_PIECE_BYTES - 1000);
  const ok = await client.put(reader, { size });
  assert.equal(ok.size, size);
  assert.ok(received[0]?.equals(bytes), 'the node got the bytes in order');
  assert.ok(reader.buffers.size <= UPLOAD_PIECES, `at most ${UPLOAD_PIECES} buffers, not ${reader.buffers.size}`);
  assert.ok(reader.reads > UPLOAD_PIECES * 5, 'buffers were read into again');

  // The length announced is checked as for a stream.
  await assert.rejects(client.put(readerOver(Buffer.alloc(3000, 7), 1000), { size: 2000 }), (err: unknown) => {
    assert.ok(isTesseraError(err));
    assert.equal(err.code, 'IO');
    assert.match(err.message, /changed while it was being stored: 3000 bytes where 2000 were announced/);
    return true;
  });
  await assert.rejects(client.put(readerOver(Buffer.alloc(1000, 7), 1000), { size: 2000 }), /1000 bytes where 2000 were announced/);
  // A read that fails fails the put with the reader's error.
  const failing: PieceReader = {
    readInto: async () => {
      throw new TesseraError('IO', "cannot read 'x': EIO");
    },
  };
  await assert.rejects(client.put(failing, { size: 10 }), /cannot read 'x': EIO/);
});

test('pumpPieces reuses a buffer only after its write is done, and stops when the writer stops', async () => {
  const pending: Array<{ piece: Buffer; copy: Buffer; done: () => void }> = [];
  let stopped = false;
  const wakes = new Set<() => void>();
  const writer: PieceWriter = {
    write: (piece, done) => pending.push({ piece, copy: Buffer.from(piece), done: () => done() }),
    stopped: () => stopped,
    onGone: (wake) => {
      wakes.add(wake);
      return () => wakes.delete(wake);
    },
  };
  const bytes = Buffer.alloc(64 * 10);
  for (let i = 0; i < bytes.length; i++) bytes[i] = i % 251;
  const pumping = pumpPieces(readerOver(bytes, 64), writer, () => {}, 64, 3);
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(pending.length, 3, 'three pieces out, then it waits for one to be done');
  // Completing writes frees buffers; the bytes each write carried never changed under it.
  const sent: Buffer[] = [];
  for (let rounds = 0; rounds < 50 && pending.length > 0; rounds++) {
    const w = pending.shift() as (typeof pending)[number];
    assert.ok(w.piece.equals(w.copy), 'a piece in flight was not overwritten');
    sent.push(w.copy);
    w.done();
    await new Promise((r) => setTimeout(r, 1));
  }
  assert.equal(await pumping, bytes.length);
  assert.ok(Buffer.concat(sent).equals(bytes));

  // A writer that goes away while every buffer is out ends the pump.
  pending.length = 0;
  const stalled = pumpPieces(readerOver(bytes, 64), writer, () => {}, 64, 2);
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(pending.length, 2);
  stopped = true;
  for (const wake of wakes) wake();
  assert.equal(await stalled, undefined);
  assert.equal(wakes.size, 0, 'the wake-up was unregistered');
});
