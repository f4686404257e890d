/**
 * Uploads with a known length go as one Content-Length body, and a source that turns out longer
 * or shorter than announced fails the put instead of storing a cut or mis-framed body.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import { connect } from '../../../src/client/index.js';
import { isTesseraError } from '../../../src/errors.js';

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
