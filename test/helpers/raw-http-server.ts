/**
 * A TCP server on loopback that hands each connection's HTTP request head to the test, which
 * answers with bytes of its choosing: how the client's download path is tested against answers a
 * node would never send.
 */
import assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';
import { isTesseraError } from '../../src/errors.js';

/** Calls `answer` once per connection, after the request head's blank line. */
export async function serveRaw(answer: (socket: Socket, request: string) => void): Promise<{ server: Server; api: string }> {
  const server = createServer((socket) => {
    let head = '';
    socket.on('error', () => {});
    socket.on('data', (b: Buffer) => {
      if (head.includes('\r\n\r\n')) return;
      head += b.toString('latin1');
      if (head.includes('\r\n\r\n')) answer(socket, head);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, api: `127.0.0.1:${(server.address() as { port: number }).port}` };
}

/** Asserts that `p` rejects with a TesseraError of `code` whose message matches. */
export async function rejectsWithCode(p: Promise<unknown>, code: string, message: RegExp): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(isTesseraError(err), `a TesseraError, got ${String(err)}`);
    assert.equal(err.code, code);
    assert.match(err.message, message);
    return true;
  });
}
