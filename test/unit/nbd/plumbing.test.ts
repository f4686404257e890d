import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import { InFlightLimiter } from '../../../src/block/nbd/in-flight.js';
import { SocketReader } from '../../../src/block/nbd/socket-reader.js';
import { clampString, encodeStructuredError } from '../../../src/block/nbd/encode.js';
import { isTesseraError } from '../../../src/errors.js';

describe('InFlightLimiter', () => {
  it('bounds count and bytes, admits an oversized request alone, and reports idle', async () => {
    const l = new InFlightLimiter(2, 100);
    await l.acquire(60);
    let third = false;
    const p2 = l.acquire(60).then(() => (third = true));
    await new Promise((r) => setImmediate(r));
    assert.equal(third, false, '60 + 60 exceeds the byte budget');
    l.release(60);
    await p2;
    assert.equal(l.inFlightBytes, 60);
    l.release(60);
    await l.acquire(500);
    assert.equal(l.inFlight, 1, 'a request larger than the budget runs when alone');
    const idle = l.idle();
    l.release(500);
    await idle;
    await l.acquire(0);
    await l.acquire(0);
    let over = false;
    void l.acquire(0).then(() => (over = true));
    await new Promise((r) => setImmediate(r));
    assert.equal(over, false, 'count bound');
  });
});

describe('SocketReader', () => {
  async function pair(): Promise<{ client: net.Socket; server: net.Socket; close: () => void }> {
    const srv = net.createServer();
    srv.listen(0, '127.0.0.1');
    await once(srv, 'listening');
    const { port } = srv.address() as net.AddressInfo;
    const client = net.connect(port, '127.0.0.1');
    const [server] = (await once(srv, 'connection')) as [net.Socket];
    return { client, server, close: () => (client.destroy(), server.destroy(), srv.close()) };
  }

  it('reads exact lengths across chunk boundaries and skips without buffering', async () => {
    const { client, server, close } = await pair();
    const r = new SocketReader(server, 1 << 20);
    client.write(Buffer.from('abc'));
    client.write(Buffer.from('defgh'));
    assert.equal((await r.read(5)).toString(), 'abcde');
    client.write(Buffer.alloc(300_000, 1));
    client.write(Buffer.from('XY'));
    await r.skip(3 + 300_000);
    assert.equal((await r.read(2)).toString(), 'XY');
    client.end();
    await assert.rejects(r.read(1), (e) => isTesseraError(e, 'UNAVAILABLE'));
    close();
  });

  it('pauses the socket when unread data passes the high-water mark', async () => {
    const { client, server, close } = await pair();
    const r = new SocketReader(server, 64 * 1024);
    client.write(Buffer.alloc(1 << 20, 2));
    const deadline = Date.now() + 5000;
    while (r.bufferedBytes < 64 * 1024 && Date.now() < deadline) await new Promise((res) => setTimeout(res, 10));
    await new Promise((res) => setTimeout(res, 50));
    assert.ok(server.isPaused(), 'paused');
    assert.ok(r.bufferedBytes < 1 << 20, `buffered ${r.bufferedBytes} bytes, not all of them`);
    const all = await r.read(1 << 20);
    assert.equal(all.length, 1 << 20);
    close();
  });
});

describe('NBD encoders', () => {
  it('clamps strings on a character boundary', () => {
    assert.equal(clampString('ééé', 5).toString(), 'éé');
    assert.equal(clampString('abc', 5).toString(), 'abc');
  });

  it('encodes a structured error with its message length', () => {
    const b = encodeStructuredError(Buffer.alloc(8, 1), 22, 'bad');
    assert.equal(b.readUInt32BE(16), 6 + 3);
    assert.equal(b.readUInt32BE(20), 22);
    assert.equal(b.readUInt16BE(24), 3);
    assert.equal(b.subarray(26).toString(), 'bad');
  });
});
