/**
 * A download in several byte ranges at once, against a TCP server on loopback that serves a file
 * the way the node's API does (206 with Content-Range, 416 for a range outside the file), or
 * wrongly in one chosen way: the bytes arrive whole and in order, through a sink that takes them
 * in order and one that writes at offsets, and every wrong answer is a typed error.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import type { Server, Socket } from 'node:net';
import { connect, type DownloadSink } from '../../../src/client/index.js';
import { DOWNLOAD_BATCH_BYTES } from '../../../src/client/download.js';
import { InOrder, MAX_RANGES_IN_FLIGHT, MAX_REORDER_BYTES, RANGE_BATCHES, windowsOf } from '../../../src/client/ranges.js';
import { rejectsWithCode, serveRaw } from '../../helpers/raw-http-server.js';

const FILE_ID = 'tsr1rangetest';
const WINDOW = 64 << 10;
/** Windows in flight in these tests (the default is one request). */
const TWO = 2;

interface Served {
  server: Server;
  api: string;
  /** Request lines and Range headers, in arrival order. */
  requests: Array<{ path: string; range: string | undefined }>;
  /** Most requests being answered at once. */
  peak: number;
}

/**
 * Serves `body` as the node does; `tamper` may rewrite the head of the n-th answer (0-based).
 * Each answer is written in pieces with pauses, so answers overlap when the client asks at once.
 */
async function serveFile(body: Buffer, opts: { ignoreRange?: boolean; tamper?: (n: number, head: string) => string } = {}): Promise<Served> {
  const served = { requests: [] as Served['requests'], peak: 0 } as Served;
  let open = 0;
  const { server, api } = await serveRaw((socket: Socket, head: string) => {
    const path = /^GET (\S+) /.exec(head)?.[1] ?? '';
    const range = /\r\nrange: ([^\r]*)\r\n/i.exec(head)?.[1];
    const n = served.requests.push({ path, range }) - 1;
    open++;
    served.peak = Math.max(served.peak, open);
    socket.once('close', () => open--);
    const m = range === undefined || opts.ignoreRange ? undefined : /^bytes=(\d+)-(\d*)$/.exec(range);
    let start = 0;
    let end = body.length;
    let status = '200 OK';
    let extra = '';
    if (m) {
      start = Number(m[1]);
      end = m[2] === '' ? body.length : Math.min(body.length, Number(m[2]) + 1);
      if (start >= body.length) {
        const text = JSON.stringify({ error: { code: 'BAD_INPUT', message: `Range ${range} is outside the file's ${body.length} bytes` } });
        socket.end(`HTTP/1.1 416 Range Not Satisfiable\r\ncontent-type: application/json\r\ncontent-range: bytes */${body.length}\r\ncontent-length: ${text.length}\r\n\r\n${text}`);
        return;
      }
      status = '206 Partial Content';
      extra = `content-range: bytes ${start}-${end - 1}/${body.length}\r\n`;
    }
    let text = `HTTP/1.1 ${status}\r\ncontent-length: ${end - start}\r\nx-tessera-file-id: ${FILE_ID}\r\nx-tessera-size: ${body.length}\r\n${extra}\r\n`;
    if (opts.tamper) text = opts.tamper(n, text);
    socket.write(text);
    const part = body.subarray(start, end);
    const step = Math.max(1, part.length >> 2);
    let at = 0;
    const more = () => {
      if (socket.destroyed) return;
      if (at >= part.length) return void socket.end();
      socket.write(part.subarray(at, at + step));
      at += step;
      setTimeout(more, 2);
    };
    more();
  });
  served.server = server;
  served.api = api;
  return served;
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** Takes bytes in order; notes the distinct buffers the pieces lie in (the download's batches). */
function orderedSink(): DownloadSink & { parts: Buffer[]; bytes(): Buffer; batches: Set<ArrayBufferLike> } {
  const parts: Buffer[] = [];
  const batches = new Set<ArrayBufferLike>();
  return {
    parts,
    batches,
    write: async (p) => {
      batches.add(p.buffer);
      parts.push(Buffer.from(p));
    },
    bytes: () => Buffer.concat(parts),
  };
}

/** Writes at offsets into a buffer of the file's size, as `tessera get -o` writes its file. */
function positionalSink(size: number): DownloadSink & { out: Buffer; seen: number } {
  const sink = {
    out: Buffer.alloc(size),
    seen: 0,
    write: async () => assert.fail('a sink with writeAt is written through writeAt'),
    writeAt: async (p: Buffer, offset: number) => {
      p.copy(sink.out, offset);
      sink.seen += p.length;
      await new Promise((r) => setImmediate(r));
    },
  };
  return sink;
}

const rejectsWith = rejectsWithCode;

test('windows in flight are bounded: 1 to MAX_RANGES_IN_FLIGHT', async () => {
  const client = connect({ api: '127.0.0.1:1' });
  for (const inFlight of [0, MAX_RANGES_IN_FLIGHT + 1, 1.5]) {
    await rejectsWith(client.download('f', orderedSink(), { inFlight }), 'BAD_INPUT', /1 to 4 windows in flight/);
  }
});

test('one in flight is one request: no Range for the whole file, the rest of it for a range', async (t) => {
  const body = randomBytes(5 * WINDOW + 7);
  const served = await serveFile(body);
  t.after(() => served.server.close());
  const whole = orderedSink();
  await connect({ api: served.api }).download('f', whole, { windowBytes: WINDOW, inFlight: 1 });
  assert.equal(sha(whole.bytes()), sha(body));
  const tail = positionalSink(body.length - 100);
  await connect({ api: served.api }).download('f', tail, { start: 100, windowBytes: WINDOW, inFlight: 1 });
  assert.ok(tail.out.equals(body.subarray(100)));
  assert.deepEqual(served.requests.map((r) => r.range), [undefined, `bytes=100-${Number.MAX_SAFE_INTEGER}`]);
});

test('a sink that writes at once takes one request straight from the socket, and ranges through writeAt', async (t) => {
  const body = randomBytes(5 * WINDOW + 7);
  const served = await serveFile(body);
  t.after(() => served.server.close());
  const sink = Object.assign(positionalSink(body.length), { now: [] as Buffer[] });
  sink.writeNow = (p: Buffer) => void sink.now.push(Buffer.from(p));
  await connect({ api: served.api }).download('f', sink, { windowBytes: WINDOW, inFlight: 1 });
  assert.equal(sha(Buffer.concat(sink.now)), sha(body), 'one request: every byte through writeNow, in order');
  assert.equal(sink.seen, 0, 'and none through writeAt');
  sink.now = [];
  await connect({ api: served.api }).download('f', sink, { windowBytes: WINDOW, inFlight: TWO });
  assert.equal(sink.now.length, 0, 'windows at once: nothing through writeNow');
  assert.equal(sha(sink.out), sha(body));
});

test('windowsOf covers exactly the bytes asked for', () => {
  assert.deepEqual(windowsOf(0, 9, 4), [{ start: 0, end: 3 }, { start: 4, end: 7 }, { start: 8, end: 9 }]);
  assert.deepEqual(windowsOf(5, 5, 4), [{ start: 5, end: 5 }]);
  assert.deepEqual(windowsOf(4, 3, 4), []);
  assert.deepEqual(windowsOf(0, 7, 4), [{ start: 0, end: 3 }, { start: 4, end: 7 }]);
});

test('sizes around the window, in order and at offsets: identical bytes, later windows asked for by file id', async (t) => {
  for (const size of [1, WINDOW - 1, WINDOW, WINDOW + 1, 2 * WINDOW, 5 * WINDOW + 12_345]) {
    const body = randomBytes(size);
    const served = await serveFile(body);
    t.after(() => served.server.close());
    const client = connect({ api: served.api });
    const ordered = orderedSink();
    const info = await client.download('dir/name', ordered, { windowBytes: WINDOW, inFlight: TWO });
    assert.deepEqual(info, { fileId: FILE_ID, size, totalSize: size, start: 0 }, `size ${size}`);
    assert.equal(sha(ordered.bytes()), sha(body), `size ${size}: in order`);
    const windows = Math.ceil(size / WINDOW);
    assert.equal(served.requests.length, windows, `size ${size}: one request per window`);
    assert.equal(served.requests[0]?.path, '/api/v1/files/dir%2Fname');
    assert.ok(served.requests.slice(1).every((r) => r.path === `/api/v1/files/${FILE_ID}`), 'later windows name the file by id');
    assert.deepEqual(
      served.requests.map((r) => r.range).sort(),
      // The first asks for a whole window, whatever the size: the answer tells the size.
      [`bytes=0-${WINDOW - 1}`, ...windowsOf(WINDOW, size - 1, WINDOW).map((w) => `bytes=${w.start}-${w.end}`)].sort(),
    );
    assert.ok(served.peak <= TWO, `size ${size}: at most ${TWO} requests at once, saw ${served.peak}`);
    if (windows > 2) assert.equal(served.peak, TWO, `size ${size}: windows overlap`);
    // The windows share their batches: however many windows, the memory of a few batches.
    assert.ok(ordered.batches.size <= TWO * RANGE_BATCHES, `size ${size}: ${ordered.batches.size} batches`);

    const positional = positionalSink(size);
    await client.download('dir/name', positional, { windowBytes: WINDOW, inFlight: TWO });
    assert.equal(positional.seen, size);
    assert.equal(sha(positional.out), sha(body), `size ${size}: at offsets`);
  }
});

test('a range of the file comes in windows too; an empty file through the 416 it answers', async (t) => {
  const body = randomBytes(4 * WINDOW + 99);
  const served = await serveFile(body);
  t.after(() => served.server.close());
  const sink = orderedSink();
  const info = await connect({ api: served.api }).download('f', sink, { start: 1000, end: 3 * WINDOW + 7, windowBytes: WINDOW, inFlight: TWO });
  assert.deepEqual(info, { fileId: FILE_ID, size: 3 * WINDOW + 7 - 1000 + 1, totalSize: body.length, start: 1000 });
  assert.ok(sink.bytes().equals(body.subarray(1000, 3 * WINDOW + 8)));
  const tail = orderedSink();
  await connect({ api: served.api }).download('f', tail, { start: body.length - 10, windowBytes: WINDOW, inFlight: TWO });
  assert.ok(tail.bytes().equals(body.subarray(body.length - 10)));

  const empty = await serveFile(Buffer.alloc(0));
  t.after(() => empty.server.close());
  const none = orderedSink();
  assert.deepEqual(await connect({ api: empty.api }).download('f', none, { windowBytes: WINDOW, inFlight: TWO }), { fileId: FILE_ID, size: 0, totalSize: 0, start: 0 });
  assert.equal(none.parts.length, 0);
  assert.deepEqual(empty.requests.map((r) => r.range), [`bytes=0-${WINDOW - 1}`, undefined], 'the range, then the whole (empty) file');
  // A range past the end of a file is the node's error, not an empty download.
  await rejectsWith(connect({ api: served.api }).download('f', orderedSink(), { start: body.length + 5, windowBytes: WINDOW, inFlight: TWO }), 'BAD_INPUT', /outside the file/);
});

test('a node that ignores Range sends the whole file in one answer, which is taken as it is', async (t) => {
  const body = randomBytes(3 * WINDOW + 1);
  const served = await serveFile(body, { ignoreRange: true });
  t.after(() => served.server.close());
  const sink = orderedSink();
  await connect({ api: served.api }).download('f', sink, { windowBytes: WINDOW, inFlight: TWO });
  assert.equal(sha(sink.bytes()), sha(body));
  assert.equal(served.requests.length, 1);
  // Asked for part of the file, the whole file is the wrong answer.
  await rejectsWith(connect({ api: served.api }).download('f', orderedSink(), { start: 10, windowBytes: WINDOW, inFlight: TWO }), 'PROTOCOL', /answered the range bytes=10-\d+ with bytes 0-/);
});

test('a window answered wrongly fails the whole download with a message naming the range', async (t) => {
  const body = randomBytes(4 * WINDOW);
  const cases: Array<{ name: string; tamper: (n: number, head: string) => string; message: RegExp }> = [
    {
      name: 'Content-Range of other bytes',
      tamper: (n, h) => (n === 2 ? h.replace(/content-range: bytes (\d+)-(\d+)\//, (_m, a: string, b: string) => `content-range: bytes ${Number(a) + 1}-${Number(b) + 1}/`) : h),
      message: /answered the range bytes=\d+-\d+ with bytes \d+-\d+; nothing was kept/,
    },
    {
      name: 'Content-Range that disagrees with Content-Length',
      tamper: (n, h) => (n === 1 ? h.replace(/content-range: bytes (\d+)-/, (_m, a: string) => `content-range: bytes ${Number(a) + 5}-`) : h),
      message: /Content-Range 'bytes \d+-\d+\/\d+', which does not describe its \d+ bytes/,
    },
    { name: 'no Content-Range', tamper: (n, h) => (n === 3 ? h.replace(/content-range: [^\r]*\r\n/, '') : h), message: /Content-Range ''/ },
    {
      name: 'another file',
      tamper: (n, h) => (n === 1 ? h.replace(`x-tessera-file-id: ${FILE_ID}`, 'x-tessera-file-id: tsr1other') : h),
      message: /file tsr1other of \d+ bytes where the download began with tsr1rangetest/,
    },
    {
      name: 'another size',
      tamper: (n, h) => (n === 1 ? h.replace(/\/(\d+)\r\n/, (_m, a: string) => `/${Number(a) + 1}\r\n`).replace(/x-tessera-size: (\d+)/, (_m, a: string) => `x-tessera-size: ${Number(a) + 1}`) : h),
      message: /of \d+ bytes where the download began with tsr1rangetest of \d+ bytes/,
    },
  ];
  for (const c of cases) {
    for (const sink of [orderedSink(), positionalSink(body.length)]) {
      // A server of its own each time: `tamper` counts the answers.
      const served = await serveFile(body, { tamper: c.tamper });
      t.after(() => served.server.close());
      await rejectsWith(connect({ api: served.api }).download('f', sink, { windowBytes: WINDOW, inFlight: TWO }), 'PROTOCOL', c.message);
    }
  }
});

test('InOrder: a later window waits for its turn, pieces come out in file order, an abort refuses what waits', async () => {
  const out: string[] = [];
  const order = new InOrder({ write: async (p) => void out.push(p.toString()) });
  const w0 = order.sinkFor(0);
  const w1 = order.sinkFor(1);
  const w2 = order.sinkFor(2);
  let w1Done = false;
  const w1Write = w1.write(Buffer.from('b1')).then(() => (w1Done = true));
  const w2Write = w2.write(Buffer.from('c1'));
  await w0.write(Buffer.from('a1'));
  await w0.write(Buffer.from('a2'));
  await new Promise((r) => setImmediate(r));
  assert.equal(w1Done, false, 'window 1 waits while window 0 has the turn');
  assert.equal(order.peakHeldBytes, 4);
  order.finish(0);
  await w1Write;
  await w1.write(Buffer.from('b2'));
  order.finish(1);
  await w2Write;
  order.finish(2);
  assert.deepEqual(out, ['a1', 'a2', 'b1', 'b2', 'c1']);
  assert.throws(() => order.finish(5), /window 5 finished while window 3 had the turn/);

  const failing = new InOrder({ write: async () => {} });
  const waiting = failing.sinkFor(1).write(Buffer.from('x'));
  failing.abort(new Error('window 0 failed'));
  await assert.rejects(waiting, /window 0 failed/);
  await assert.rejects(failing.sinkFor(0).write(Buffer.from('y')), /window 0 failed/);
});

test('the reorder bound: a window held behind a slow one stops reading at its batches', async (t) => {
  // Window 0 is written slowly; window 1 waits for its turn holding its pieces. Each piece a
  // download hands over lies in one of its batches, so the distinct buffers window 1's pieces
  // lie in are the batches it held: never more than RANGE_BATCHES, whatever the window's length.
  const window = RANGE_BATCHES * DOWNLOAD_BATCH_BYTES * 3;
  const body = randomBytes(2 * window);
  const served = await serveFile(body);
  t.after(() => served.server.close());
  const buffers = new Set<ArrayBufferLike>();
  let offsetSeen = 0;
  const hash = createHash('sha256');
  const sink: DownloadSink = {
    write: async (p) => {
      if (offsetSeen >= window) buffers.add(p.buffer);
      offsetSeen += p.length;
      hash.update(p);
      if (offsetSeen <= window) await new Promise((r) => setTimeout(r, 5));
    },
  };
  await connect({ api: served.api }).download('f', sink, { windowBytes: window, inFlight: TWO });
  assert.equal(hash.digest('hex'), sha(body));
  assert.ok(buffers.size <= RANGE_BATCHES, `window 1 held ${buffers.size} batches`);
  assert.equal(MAX_REORDER_BYTES, (MAX_RANGES_IN_FLIGHT - 1) * RANGE_BATCHES * DOWNLOAD_BATCH_BYTES);
});
