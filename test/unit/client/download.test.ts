/**
 * The client's download path against a TCP server on loopback that answers with bytes the test
 * chooses: whole files through a sink slower than the network (the socket pauses and resumes),
 * and every way a response may be malformed, cut short or too long.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import { X509Certificate, generateKeyPairSync } from 'node:crypto';
import { createSelfSignedEcdsaP256 } from '../../../src/net/selfsigned.js';
import { connect, type DownloadSink } from '../../../src/client/index.js';
import { DIRECT_READ_BYTES, DOWNLOAD_BATCHES, DOWNLOAD_BATCH_BYTES } from '../../../src/client/download.js';
import { MAX_RESPONSE_HEAD_BYTES, parseResponseHead } from '../../../src/client/http-head.js';
import { rejectsWithCode, serveRaw } from '../../helpers/raw-http-server.js';

const serve = serveRaw;

const fileHead = (length: number, extra = '') =>
  `HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\ncontent-length: ${length}\r\nx-tessera-file-id: tsr1test\r\nx-tessera-size: ${length}\r\n${extra}\r\n`;

/** A sink that hashes what it gets, waiting `delayMs` per piece, and records the largest piece. */
function hashingSink(delayMs = 0): DownloadSink & { digest(): string; bytes: number; largest: number; pieces: number } {
  const h = createHash('sha256');
  const sink = {
    bytes: 0,
    largest: 0,
    pieces: 0,
    async write(piece: Buffer) {
      h.update(piece);
      sink.bytes += piece.length;
      sink.pieces++;
      sink.largest = Math.max(sink.largest, piece.length);
      if (delayMs > 0) await new Promise((r) => setTimeout(r, delayMs));
    },
    digest: () => h.digest('hex'),
  };
  return sink;
}

const expectCode = rejectsWithCode;

/** A sink that writes at once (as a file's does): hashes each piece, copying nothing it keeps. */
function directSink(fail?: (n: number) => Error | undefined): DownloadSink & { digest(): string; bytes: number; largest: number; pieces: number; batched: number } {
  const h = createHash('sha256');
  const sink = {
    bytes: 0,
    largest: 0,
    pieces: 0,
    batched: 0,
    async write(piece: Buffer) {
      sink.batched += piece.length;
    },
    writeNow(piece: Buffer) {
      const err = fail?.(sink.pieces);
      if (err) throw err;
      h.update(piece);
      sink.bytes += piece.length;
      sink.pieces++;
      sink.largest = Math.max(sink.largest, piece.length);
    },
    digest: () => h.digest('hex'),
  };
  return sink;
}

test('a file arrives whole through a sink slower than the network, in batches, within the memory bound', async (t) => {
  // Well over the batches' total, so the socket must pause for the sink and resume.
  const body = randomBytes(DOWNLOAD_BATCHES * DOWNLOAD_BATCH_BYTES * 3 + 12_345);
  let request = '';
  const { server, api } = await serve((socket, req) => {
    request = req;
    socket.write(fileHead(body.length));
    socket.end(body);
  });
  t.after(() => server.close());
  const sink = hashingSink(15);
  let begun: { size: number } | undefined;
  sink.begin = (info) => (begun = info);
  const rssBefore = process.memoryUsage().rss;
  const info = await connect({ api, token: 'secret-token' }).download('some/name', sink);
  assert.equal(info.size, body.length);
  assert.equal(info.fileId, 'tsr1test');
  assert.deepEqual(begun, info);
  assert.equal(sink.bytes, body.length);
  assert.equal(sink.digest(), createHash('sha256').update(body).digest('hex'));
  assert.ok(sink.largest <= DOWNLOAD_BATCH_BYTES, 'no piece is larger than a batch');
  assert.ok(sink.pieces < body.length / (1 << 20), `few large writes (${sink.pieces} for ${body.length} bytes)`);
  // The batches are the only per-download memory: 16 MiB, not the 50 MiB file.
  assert.ok(process.memoryUsage().rss - rssBefore < DOWNLOAD_BATCHES * DOWNLOAD_BATCH_BYTES + (24 << 20), 'memory stays near the batches');
  assert.match(request, /^GET \/api\/v1\/files\/some%2Fname HTTP\/1\.1\r\n/);
  assert.match(request, /\r\nauthorization: Bearer secret-token\r\n/);
  assert.match(request, /\r\nhost: 127\.0\.0\.1:\d+\r\n/);
});

test('over TLS too: records decrypted after the pause are kept, and the file arrives whole', async (t) => {
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const certPem = createSelfSignedEcdsaP256({ publicKey, privateKey, commonName: 'tessera-api', notBefore: new Date(Date.now() - 60_000), notAfter: new Date(Date.now() + 3_600_000) });
  const body = randomBytes(DOWNLOAD_BATCHES * DOWNLOAD_BATCH_BYTES * 2 + 4321);
  const server = createTlsServer({ key: privateKey.export({ type: 'pkcs8', format: 'pem' }), cert: certPem }, (socket) => {
    let head = '';
    socket.on('data', (b: Buffer) => {
      head += b.toString('latin1');
      if (!head.includes('\r\n\r\n')) return;
      socket.write(fileHead(body.length));
      socket.end(body);
    });
    socket.on('error', () => {});
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => server.close());
  const api = `127.0.0.1:${(server.address() as { port: number }).port}`;
  // A sink slow enough that every batch waits on it, many times over.
  const sink = hashingSink(20);
  const tls = { certPem, fingerprint256: new X509Certificate(certPem).fingerprint256 };
  const info = await connect({ api, token: 't', tls }).download('f', sink);
  assert.equal(info.size, body.length);
  assert.equal(sink.bytes, body.length);
  assert.equal(sink.digest(), createHash('sha256').update(body).digest('hex'));
});

test('the head and the first body bytes in one read; a range; an empty file', async (t) => {
  const body = Buffer.from('hello, range');
  let request = '';
  const { server, api } = await serve((socket, req) => {
    request = req;
    const head = fileHead(body.length).replace('200 OK', '206 Partial Content').replace(/x-tessera-size: \d+/, 'x-tessera-size: 20') + '';
    socket.end(Buffer.concat([Buffer.from(head.replace(/\r\n\r\n$/, '\r\ncontent-range: bytes 3-14/20\r\n\r\n')), body]));
  });
  t.after(() => server.close());
  const sink = hashingSink();
  await connect({ api }).download('f', sink, { start: 3, end: 14 });
  assert.equal(sink.digest(), createHash('sha256').update(body).digest('hex'));
  assert.match(request, /\r\nrange: bytes=3-14\r\n/);
  assert.doesNotMatch(request, /authorization/i);

  const { server: empty, api: emptyApi } = await serve((socket) => socket.end(fileHead(0)));
  t.after(() => empty.close());
  const none = hashingSink();
  assert.equal((await connect({ api: emptyApi }).download('f', none)).size, 0);
  assert.equal(none.bytes, 0);
});

test('an error status becomes the API error it carries', async (t) => {
  const text = JSON.stringify({ error: { code: 'NOT_FOUND', message: "no file is named 'x'" } });
  const { server, api } = await serve((socket) =>
    socket.end(`HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(text)}\r\n\r\n${text}`),
  );
  t.after(() => server.close());
  await expectCode(connect({ api }).download('x', hashingSink()), 'NOT_FOUND', /no file is named 'x'/);
});

test('malformed, cut short or overlong answers are typed errors, never partial success', async (t) => {
  const cases: Array<{ name: string; send: (s: Socket) => void; code: string; message: RegExp }> = [
    { name: 'cut short', send: (s) => s.end(fileHead(1000) + 'x'.repeat(400)), code: 'UNAVAILABLE', message: /sent 400 of 1000 bytes/ },
    { name: 'more than announced', send: (s) => s.end(fileHead(10) + 'x'.repeat(20)), code: 'PROTOCOL', message: /more than the 10 bytes/ },
    { name: 'chunked', send: (s) => s.end(fileHead(10).replace(/content-length: 10\r\n/, 'transfer-encoding: chunked\r\n')), code: 'PROTOCOL', message: /chunked/ },
    { name: 'no id', send: (s) => s.end(fileHead(3).replace(/x-tessera-file-id: \S+\r\n/, '') + 'abc'), code: 'PROTOCOL', message: /size or id/ },
    { name: 'bad status line', send: (s) => s.end('HTTP/9 200 OK\r\n\r\n'), code: 'PROTOCOL', message: /status line/ },
    { name: 'endless head', send: (s) => s.end('HTTP/1.1 200 OK\r\n' + 'x-pad: y\r\n'.repeat(MAX_RESPONSE_HEAD_BYTES / 8)), code: 'PROTOCOL', message: /no end of the head within/ },
    { name: 'closed before answering', send: (s) => s.end(), code: 'UNAVAILABLE', message: /closed the connection before answering/ },
  ];
  for (const c of cases) {
    const { server, api } = await serve(c.send);
    t.after(() => server.close());
    const sink = hashingSink();
    await expectCode(connect({ api }).download('f', sink), c.code, c.message);
    if (c.name !== 'cut short') assert.equal(sink.bytes, 0, `${c.name}: nothing reached the sink`);
  }
});

test('a sink that fails, a cancel, and a node that goes quiet end the download', async (t) => {
  const body = randomBytes(DOWNLOAD_BATCH_BYTES * 2);
  const { server, api } = await serve((socket) => {
    socket.write(fileHead(body.length));
    socket.end(body);
  });
  t.after(() => server.close());
  const failing: DownloadSink = { write: async () => Promise.reject(new Error('disk full')) };
  await assert.rejects(connect({ api }).download('f', failing), /disk full/);

  const ctl = new AbortController();
  const slow: DownloadSink = {
    write: async () => {
      ctl.abort();
      await new Promise((r) => setTimeout(r, 20));
    },
  };
  await expectCode(connect({ api }).download('f', slow, { signal: ctl.signal }), 'CANCELLED', /cancelled/);

  const { server: quiet, api: quietApi } = await serve((socket) => socket.write(fileHead(100)));
  t.after(() => quiet.close());
  await expectCode(connect({ api: quietApi, timeoutMs: 200 }).download('f', hashingSink()), 'TIMEOUT', /sent nothing for 200 ms/);
});

test('a sink that writes at once gets every read as it comes, from one small buffer, and no batches', async (t) => {
  const body = randomBytes(DOWNLOAD_BATCHES * DOWNLOAD_BATCH_BYTES * 2 + 777);
  const { server, api } = await serve((socket) => {
    // The head and the first body bytes in one segment: they reach the sink from the head's buffer.
    socket.write(Buffer.concat([Buffer.from(fileHead(body.length)), body.subarray(0, 100)]));
    socket.end(body.subarray(100));
  });
  t.after(() => server.close());
  const sink = directSink();
  const rssBefore = process.memoryUsage().rss;
  const info = await connect({ api }).download('f', sink);
  assert.equal(info.size, body.length);
  assert.equal(sink.bytes, body.length);
  assert.equal(sink.batched, 0, 'nothing went through write');
  assert.equal(sink.digest(), createHash('sha256').update(body).digest('hex'));
  assert.ok(sink.largest <= DIRECT_READ_BYTES, `no piece is larger than the read buffer (${sink.largest})`);
  // No batches made: well under one batch of memory for a 33 MiB file.
  assert.ok(process.memoryUsage().rss - rssBefore < DOWNLOAD_BATCH_BYTES + (8 << 20), 'memory stays near the read buffer');
});

test('a sink that writes at once: a failed write ends the download at once; short and overlong answers are typed errors', async (t) => {
  const body = randomBytes(DOWNLOAD_BATCH_BYTES);
  const { server, api } = await serve((socket) => {
    socket.write(fileHead(body.length));
    socket.end(body);
  });
  t.after(() => server.close());
  const full = new Error('disk full');
  const failing = directSink((n) => (n === 2 ? full : undefined));
  await assert.rejects(connect({ api }).download('f', failing), (err) => err === full);
  assert.equal(failing.pieces, 2, 'no write after the failed one');

  for (const c of [
    { send: (s: Socket) => s.end(fileHead(1000) + 'x'.repeat(400)), code: 'UNAVAILABLE', message: /sent 400 of 1000 bytes/ },
    { send: (s: Socket) => s.end(fileHead(10) + 'x'.repeat(20)), code: 'PROTOCOL', message: /more than the 10 bytes/ },
  ]) {
    const { server: bad, api: badApi } = await serve(c.send);
    t.after(() => bad.close());
    const sink = directSink();
    await expectCode(connect({ api: badApi }).download('f', sink), c.code, c.message);
    assert.ok(sink.bytes <= 1000);
  }

  const ctl = new AbortController();
  const cancelled = directSink((n) => {
    if (n === 1) ctl.abort();
    return undefined;
  });
  await expectCode(connect({ api }).download('f', cancelled, { signal: ctl.signal }), 'CANCELLED', /cancelled/);
  assert.ok(cancelled.bytes < body.length, 'the cancel stopped the reads');
});

test('a token with a line break is refused before anything is sent', () => {
  assert.throws(() => connect({ api: '127.0.0.1:1', token: 'a\r\nx-evil: 1' }).download('f', hashingSink()), /line break/);
});

test('parseResponseHead: incomplete, complete, and bounded', () => {
  assert.equal(parseResponseHead(Buffer.from('HTTP/1.1 200 OK\r\ncontent-length: 3\r\n')), undefined);
  const head = parseResponseHead(Buffer.from('HTTP/1.1 206 Partial Content\r\nContent-Length: 3\r\nX-A:  b \r\n\r\nabc'));
  assert.ok(head);
  assert.equal(head.status, 206);
  assert.equal(head.headers.get('content-length'), '3');
  assert.equal(head.headers.get('x-a'), 'b');
  assert.equal(head.length, Buffer.byteLength('HTTP/1.1 206 Partial Content\r\nContent-Length: 3\r\nX-A:  b \r\n\r\n'));
  assert.throws(() => parseResponseHead(Buffer.from('HTTP/1.1 200 OK\r\nno colon here\r\n\r\n')), /header line/);
  assert.throws(() => parseResponseHead(Buffer.from('HTTP/1.1 200 OK\r\n' + 'a: b\r\n'.repeat(101) + '\r\n')), /more than 100 header lines/);
  assert.throws(() => parseResponseHead(Buffer.alloc(MAX_RESPONSE_HEAD_BYTES, 'a')), /no end of the head/);
});
