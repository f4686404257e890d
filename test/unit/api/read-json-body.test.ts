/**
 * readJsonBody on a real loopback HTTP server: a body sent in pieces, a body with no declared
 * length that streams past the limit, and a client that goes away mid-body. Each request settles
 * with the body or a named error; none hangs.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, request, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { MAX_JSON_BODY_BYTES, readJsonBody } from '../../../src/api/http-util.js';
import { isTesseraError } from '../../../src/errors.js';

/** A server whose every request's readJsonBody outcome is handed to the test. */
async function withServer(fn: (port: number, next: () => Promise<unknown>) => Promise<void>): Promise<void> {
  const outcomes: Array<Promise<unknown>> = [];
  let arrived: (() => void) | undefined;
  const server = createServer((req: IncomingMessage, res) => {
    const p = readJsonBody(req).then((v) => v, (e: unknown) => e);
    outcomes.push(p);
    arrived?.();
    void p.then(() => { if (!res.destroyed) res.end(); });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const next = async () => {
    if (outcomes.length === 0) await new Promise<void>((r) => { arrived = r; });
    return outcomes.shift()!;
  };
  try {
    await fn((server.address() as AddressInfo).port, next);
  } finally {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  }
}

const post = (port: number) => {
  const req = request({ host: '127.0.0.1', port, method: 'POST', path: '/', headers: { 'content-type': 'application/json' } });
  req.on('error', () => {});
  req.on('response', (res) => res.resume());
  return req;
};

test('a JSON body sent in several pieces is read whole', async () => {
  await withServer(async (port, next) => {
    const req = post(port);
    const text = JSON.stringify({ key: 'a'.repeat(20_000), n: 7 });
    for (let i = 0; i < text.length; i += 4096) {
      req.write(text.slice(i, i + 4096));
      await new Promise((r) => setImmediate(r));
    }
    req.end();
    assert.deepEqual(await next(), { key: 'a'.repeat(20_000), n: 7 });
  });
});

test('a body with no declared length that streams past the limit is refused as too large', async () => {
  await withServer(async (port, next) => {
    const req = post(port);
    const piece = Buffer.alloc(8192, 0x20);
    // Chunked, so only the bytes themselves can tell; bounded to twice the limit.
    for (let sent = 0; sent <= 2 * MAX_JSON_BODY_BYTES && !req.destroyed; sent += piece.length) req.write(piece);
    const e = await next();
    assert.ok(isTesseraError(e, 'TOO_LARGE'), `got ${String(e)}`);
    assert.match((e as Error).message, new RegExp(`over the ${MAX_JSON_BODY_BYTES}-byte limit`));
    req.destroy();
  });
});

test('a client that goes away mid-body fails the read with a message, not a hang', async () => {
  await withServer(async (port, next) => {
    const req = post(port);
    req.setHeader('content-length', '1000');
    req.write('{"key": "half');
    await new Promise((r) => setTimeout(r, 50));
    req.destroy();
    const e = await next();
    assert.ok(isTesseraError(e, 'BAD_INPUT'), `got ${String(e)}`);
    assert.match((e as Error).message, /cut off before its body ended/);
  });
});
