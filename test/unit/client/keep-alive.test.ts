/**
 * The client keeps connections alive and survives the keep-alive close race: a node that resets a
 * kept-alive connection just as a request arrives on it (what its keepAliveTimeout does when the
 * two cross) costs the request one resend on a new connection, never a failure; a request the node
 * may have acted on is never sent twice unless sending it twice is harmless.
 *
 * The node is a raw TCP server speaking just enough HTTP/1.1, so the test decides exactly when a
 * connection closes and counts every request that reached it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';
import { connect, CLIENT_IDLE_SOCKET_MS, MAX_IDLE_SOCKETS, type TesseraClient } from '../../../src/client/index.js';
import { isTesseraError } from '../../../src/errors.js';
import { mayResend, MAX_RESENDS } from '../../../src/client/resend.js';

/** How the fake node treats a request that arrives: answer it, or cut the connection. */
type Verdict = 'answer' | 'reset' | 'answer-start-then-reset';

interface Arrival {
  method: string;
  /** Requests on the same connection before this one. */
  earlier: number;
  connection: number;
}

class FakeNode {
  readonly arrivals: Arrival[] = [];
  /** Requests whose answer was sent whole: what the node "did". */
  handled = 0;
  connections = 0;
  readonly clientClosed: number[] = [];
  verdict: (a: Arrival) => Verdict = () => 'answer';
  private readonly server: Server;

  constructor() {
    this.server = createServer((socket) => this.serve(socket));
  }

  async start(): Promise<TesseraClient> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return connect({ api: `127.0.0.1:${(this.server.address() as { port: number }).port}`, timeoutMs: 5_000 });
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private serve(socket: Socket): void {
    const connection = this.connections++;
    let earlier = 0;
    let buffered = Buffer.alloc(0);
    socket.on('error', () => {});
    socket.on('end', () => {
      this.clientClosed.push(connection);
      socket.end();
    });
    socket.on('data', (b: Buffer) => {
      buffered = Buffer.concat([buffered, b]);
      for (;;) {
        const headEnd = buffered.indexOf('\r\n\r\n');
        if (headEnd < 0) return;
        const head = buffered.subarray(0, headEnd).toString('latin1');
        const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0);
        if (buffered.length < headEnd + 4 + length) return;
        buffered = buffered.subarray(headEnd + 4 + length);
        const arrival = { method: head.slice(0, head.indexOf(' ')), earlier: earlier++, connection };
        this.arrivals.push(arrival);
        const verdict = this.verdict(arrival);
        if (verdict === 'reset') return void socket.resetAndDestroy();
        const body = JSON.stringify({ handled: ++this.handled, connection });
        const answer = `HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\nconnection: keep-alive\r\nkeep-alive: timeout=5\r\n\r\n`;
        if (verdict === 'answer-start-then-reset') {
          socket.write(answer + body.slice(0, 1), () => socket.resetAndDestroy());
          return;
        }
        socket.write(answer + body);
      }
    });
  }
}

async function fakeNode(t: { after: (fn: () => unknown) => void }): Promise<{ node: FakeNode; client: TesseraClient }> {
  const node = new FakeNode();
  const client = await node.start();
  t.after(async () => {
    client.close();
    await node.close();
  });
  return { node, client };
}

const post = (client: TesseraClient) => client.json<{ handled: number; connection: number }>('/api/v1/thing', { method: 'POST', body: { x: 1 } });
const get = (client: TesseraClient) => client.json<{ handled: number; connection: number }>('/api/v1/thing');

test('requests in a row share one kept-alive connection', async (t) => {
  const { node, client } = await fakeNode(t);
  for (let i = 0; i < 5; i++) assert.equal((await post(client)).handled, i + 1);
  assert.equal(node.connections, 1);
  assert.deepEqual(node.arrivals.map((a) => a.earlier), [0, 1, 2, 3, 4]);
});

test('a POST reset on arrival on a reused connection is sent once more, on a new connection, and done once', async (t) => {
  const { node, client } = await fakeNode(t);
  await post(client);
  // The node closes the idle connection exactly as the client reuses it: it reads the next
  // request's bytes and resets without acting on it.
  node.verdict = (a) => (a.earlier > 0 ? 'reset' : 'answer');
  const answer = await post(client);
  assert.equal(answer.handled, 2, 'the request was done, once');
  assert.equal(node.handled, 2);
  assert.deepEqual(
    node.arrivals.map((a) => [a.connection, a.earlier]),
    [[0, 0], [0, 1], [1, 0]],
    'the reset attempt on the reused connection, then one resend on a new one',
  );
  assert.equal(answer.connection, 1);
});

test('a POST whose answer had begun is never sent twice, even on a reused connection', async (t) => {
  const { node, client } = await fakeNode(t);
  await post(client);
  node.verdict = (a) => (a.earlier > 0 ? 'answer-start-then-reset' : 'answer');
  await assert.rejects(post(client), (err: unknown) => isTesseraError(err) && err.code === 'UNAVAILABLE');
  assert.equal(node.arrivals.length, 2, 'the POST reached the node once');
  assert.equal(node.connections, 1);
});

test('a POST reset on a new connection is not resent; a GET is, at most once more', async (t) => {
  const { node, client } = await fakeNode(t);
  node.verdict = () => 'reset';
  await assert.rejects(post(client), (err: unknown) => isTesseraError(err) && err.code === 'UNAVAILABLE');
  assert.deepEqual(node.arrivals.map((a) => a.method), ['POST'], 'the node may have acted on it: not sent again');
  node.arrivals.length = 0;
  await assert.rejects(get(client), (err: unknown) => isTesseraError(err) && err.code === 'UNAVAILABLE');
  assert.deepEqual(node.arrivals.map((a) => a.method), Array(1 + MAX_RESENDS).fill('GET'), 'an idempotent request is resent, bounded');
  node.arrivals.length = 0;
  let resets = 1;
  node.verdict = () => (resets-- > 0 ? 'reset' : 'answer');
  assert.equal((await get(client)).handled, 1, 'one reset GET then succeeds on its resend');
  assert.equal(node.arrivals.length, 2);
});

test('the client closes an idle kept-alive connection before the node would', { timeout: 30_000 }, async (t) => {
  const { node, client } = await fakeNode(t);
  await get(client);
  const deadline = Date.now() + CLIENT_IDLE_SOCKET_MS + 5_000;
  while (node.clientClosed.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  assert.deepEqual(node.clientClosed, [0], 'the client ended its idle connection (the node announced keep-alive timeout=5)');
  assert.ok(CLIENT_IDLE_SOCKET_MS < 5_000);
  // The next request opens a new connection and goes through.
  assert.equal((await get(client)).connection, 1);
});

test('at most MAX_IDLE_SOCKETS connections stay open once a burst is answered', async (t) => {
  const { node, client } = await fakeNode(t);
  const extra = 6;
  const answers = await Promise.all(Array.from({ length: MAX_IDLE_SOCKETS + extra }, () => get(client)));
  assert.equal(new Set(answers.map((a) => a.connection)).size, MAX_IDLE_SOCKETS + extra, 'the burst ran on a connection each');
  // The client ends the connections it cannot keep right away, long before the idle timeout.
  const deadline = Date.now() + CLIENT_IDLE_SOCKET_MS / 2;
  while (node.clientClosed.length < extra && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  assert.equal(node.clientClosed.length, extra, `${MAX_IDLE_SOCKETS} idle connections kept, the rest closed`);
});

test('the resend rule', () => {
  const base = { method: 'POST', code: 'ECONNRESET', reusedSocket: true, answerStarted: false, replayable: true, resends: 0 };
  assert.equal(mayResend(base), true, 'the close race');
  assert.equal(mayResend({ ...base, reusedSocket: false }), false, 'a POST on a new connection may have been acted on');
  assert.equal(mayResend({ ...base, reusedSocket: false, method: 'put' }), true, 'PUT is idempotent');
  assert.equal(mayResend({ ...base, answerStarted: true }), false);
  assert.equal(mayResend({ ...base, replayable: false }), false, 'a streamed body cannot be written twice');
  assert.equal(mayResend({ ...base, resends: MAX_RESENDS }), false);
  assert.equal(mayResend({ ...base, code: 'ECONNREFUSED' }), false, 'nothing listens: resending cannot help');
  assert.equal(mayResend({ ...base, code: undefined }), false, 'a timeout or a refusal is not a broken connection');
});
