/**
 * The HTTP API from outside, against real node processes: byte ranges, the token, JSON errors
 * with stable codes and statuses, CORS (off unless asked), HEAD, the OpenAPI document, the event
 * stream and its client bound, the loopback Host check and the dashboard's files.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { request, type IncomingHttpHeaders } from 'node:http';
import { LocalCluster, waitFor } from '../../src/cli/local-cluster.js';
import { MAX_SSE_CLIENTS } from '../../src/api/events.js';
import { MAX_JSON_BODY_BYTES } from '../../src/api/http-util.js';

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

const ORIGIN = 'http://app.example.test';

function http(api: string, method: string, path: string, o: { headers?: Record<string, string>; body?: Buffer | string } = {}): Promise<Answer> {
  const [host, port] = api.split(':') as [string, string];
  return new Promise((resolve, reject) => {
    const req = request({ host, port: Number(port), method, path, headers: o.headers ?? {} }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(parts) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(o.body);
  });
}

function errorCode(a: Answer): string {
  const body = JSON.parse(a.body.toString('utf8')) as { error: { code: string; message: string } };
  assert.equal(typeof body.error.message, 'string');
  assert.ok(body.error.message.length > 10, 'the message says what is wrong');
  return body.error.code;
}

/** Opens an event stream and resolves once its first record has arrived (or with the refusal). */
function openEvents(api: string, path = '/api/v1/events'): Promise<{ status: number; first: string; close(): void }> {
  const [host, port] = api.split(':') as [string, string];
  return new Promise((resolve, reject) => {
    const req = request({ host, port: Number(port), path }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      const close = () => req.destroy();
      res.on('data', (c: string) => {
        text += c;
        if (res.statusCode === 200 && text.includes('event: status') && text.includes('\n\n', text.indexOf('event: status'))) {
          res.removeAllListeners('data');
          resolve({ status: 200, first: text, close });
        }
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, first: text, close }));
    });
    req.on('error', reject);
    req.end();
  });
}

test('HTTP API: ranges, token, errors, CORS, HEAD, OpenAPI, events and the dashboard files', async (t) => {
  // Reads without the token are the subject of api-security.test.ts; here they stay open.
  const cluster = await LocalCluster.create({ nodes: 1, memory: true, logLevel: 'warn', nodeArgs: ['--api-open-reads'] });
  t.after(() => cluster.destroy());
  const n0 = cluster.node(0);
  const n1 = await cluster.addNode({ args: ['--cors', ORIGIN] });
  await cluster.waitForMembers({ alive: 2 });
  const api = n0.api;
  const auth = { authorization: `Bearer ${n0.apiToken}` };

  await t.test('upload needs the token: none or a wrong one is 401 AUTH', async () => {
    const none = await http(api, 'PUT', '/api/v1/files?name=x&replicas=1', { body: 'abc' });
    assert.equal(none.status, 401);
    assert.equal(errorCode(none), 'AUTH');
    const wrong = await http(api, 'PUT', '/api/v1/files?name=x&replicas=1', { body: 'abc', headers: { authorization: 'Bearer not-the-token' } });
    assert.equal(wrong.status, 401);
    assert.equal((await n0.client.ls()).files.length, 0, 'nothing was stored');
  });

  const size = 3 * 4096 + 1234;
  const content = randomBytes(size);
  const put = await http(api, 'PUT', '/api/v1/files?name=ranges.bin&replicas=1&chunkSize=4096', { body: content, headers: auth });
  assert.equal(put.status, 201, put.body.toString());
  const fileId = (JSON.parse(put.body.toString()) as { fileId: string }).fileId;

  await t.test('Range: first bytes, across chunks, suffix, open end, and 416 beyond the end', async () => {
    const path = `/api/v1/files/${encodeURIComponent(fileId)}`;
    const whole = await http(api, 'GET', path);
    assert.equal(whole.status, 200);
    assert.equal(whole.headers['accept-ranges'], 'bytes');
    assert.ok(whole.body.equals(content));

    const cases: Array<[string, number, number]> = [
      ['bytes=0-99', 0, 100],
      ['bytes=4000-8300', 4000, 8301], // crosses two chunk boundaries
      [`bytes=-500`, size - 500, size],
      [`bytes=${size - 10}-`, size - 10, size],
      [`bytes=100-${size + 1000}`, 100, size], // an end past the file is clamped
    ];
    for (const [range, start, end] of cases) {
      const r = await http(api, 'GET', path, { headers: { range } });
      assert.equal(r.status, 206, range);
      assert.equal(r.headers['content-range'], `bytes ${start}-${end - 1}/${size}`, range);
      assert.equal(Number(r.headers['content-length']), end - start, range);
      assert.ok(r.body.equals(content.subarray(start, end)), `${range}: the bytes match`);
    }
    for (const range of [`bytes=${size}-`, `bytes=${size + 5}-${size + 10}`, 'bytes=-0', 'bytes=10-5', 'bytes=0-1,5-6', 'items=0-1']) {
      const r = await http(api, 'GET', path, { headers: { range } });
      assert.equal(r.status, 416, range);
      assert.equal(r.headers['content-range'], `bytes */${size}`, range);
    }
  });

  await t.test('HEAD answers the headers of GET without a body', async () => {
    const path = `/api/v1/files/${encodeURIComponent(fileId)}`;
    const h = await http(api, 'HEAD', path, { headers: { range: 'bytes=0-9' } });
    assert.equal(h.status, 206);
    assert.equal(h.headers['content-length'], '10');
    assert.equal(h.body.length, 0);
    const s = await http(api, 'HEAD', '/api/v1/status');
    assert.equal(s.status, 200);
    assert.ok(Number(s.headers['content-length']) > 0);
    assert.equal(s.body.length, 0);
  });

  await t.test('unknown ids, names, volumes and routes are 404 NOT_FOUND', async () => {
    for (const path of ['/api/v1/files/no-such-name', '/api/v1/files/no-such-name/stat', '/api/v1/volumes/nope', '/api/v1/nothing-here']) {
      const r = await http(api, 'GET', path);
      assert.equal(r.status, 404, path);
      assert.equal(errorCode(r), 'NOT_FOUND', path);
    }
    const del = await http(api, 'DELETE', '/api/v1/files/no-such-name', { headers: auth });
    assert.equal(del.status, 404);
  });

  await t.test('malformed JSON is 400 BAD_INPUT, an oversized body 413 TOO_LARGE, a bad shape 400', async () => {
    const json = { ...auth, 'content-type': 'application/json' };
    const bad = await http(api, 'POST', '/api/v1/volumes', { headers: json, body: '{"name": "v1", "size": ' });
    assert.equal(bad.status, 400);
    assert.equal(errorCode(bad), 'BAD_INPUT');
    const big = await http(api, 'POST', '/api/v1/volumes', { headers: json, body: JSON.stringify({ name: 'x'.repeat(MAX_JSON_BODY_BYTES) }) });
    assert.equal(big.status, 413);
    assert.equal(errorCode(big), 'TOO_LARGE');
    const shape = await http(api, 'POST', '/api/v1/volumes/nope/check', { headers: json, body: '{"repair": "yes", "extra": 1}' });
    assert.equal(shape.status, 400);
    const pct = await http(api, 'GET', '/api/v1/files/%E0%A4%A');
    assert.equal(pct.status, 400, 'broken percent-encoding is the client\'s error, not a 500');
    const method = await http(api, 'PATCH', '/api/v1/status');
    assert.equal(method.status, 400);
  });

  await t.test('CORS is off by default and answers only the configured origin when on', async () => {
    const off = await http(api, 'GET', '/api/v1/status', { headers: { origin: ORIGIN } });
    assert.equal(off.status, 200);
    assert.equal(off.headers['access-control-allow-origin'], undefined);
    const pre = await http(api, 'OPTIONS', '/api/v1/files', { headers: { origin: ORIGIN, 'access-control-request-method': 'PUT' } });
    assert.equal(pre.headers['access-control-allow-origin'], undefined);

    const on = await http(n1.api, 'GET', '/api/v1/status', { headers: { origin: ORIGIN } });
    assert.equal(on.headers['access-control-allow-origin'], ORIGIN);
    const other = await http(n1.api, 'GET', '/api/v1/status', { headers: { origin: 'http://elsewhere.test' } });
    assert.equal(other.headers['access-control-allow-origin'], undefined);
    const preOn = await http(n1.api, 'OPTIONS', '/api/v1/files', { headers: { origin: ORIGIN, 'access-control-request-method': 'PUT' } });
    assert.equal(preOn.status, 204);
    assert.match(String(preOn.headers['access-control-allow-headers']), /authorization/);
  });

  await t.test('a loopback API refuses a foreign Host header (DNS rebinding)', async () => {
    const r = await http(api, 'GET', '/api/v1/status', { headers: { host: 'attacker.example:80' } });
    assert.equal(r.status, 401);
    const ok = await http(api, 'GET', '/api/v1/status', { headers: { host: `localhost:${api.split(':')[1]}` } });
    assert.equal(ok.status, 200);
  });

  await t.test('the OpenAPI document describes every route the node serves', async () => {
    const r = await http(api, 'GET', '/api/openapi.json');
    assert.equal(r.status, 200);
    const doc = JSON.parse(r.body.toString()) as { openapi: string; paths: Record<string, Record<string, { summary: string; responses: Record<string, unknown> }>> };
    assert.match(doc.openapi, /^3\./);
    const expected: Array<[string, string]> = [
      ['get', '/api/v1/status'], ['get', '/api/v1/peers'], ['get', '/api/v1/events'], ['get', '/metrics'], ['get', '/api/openapi.json'],
      ['put', '/api/v1/files'], ['get', '/api/v1/files'], ['get', '/api/v1/files/{ref}'], ['get', '/api/v1/files/{ref}/stat'], ['delete', '/api/v1/files/{ref}'],
      ['get', '/api/v1/volumes'], ['post', '/api/v1/volumes'], ['get', '/api/v1/volumes/{name}'],
    ];
    for (const [method, path] of expected) {
      const op = doc.paths[path]?.[method];
      assert.ok(op, `${method.toUpperCase()} ${path} is described`);
      assert.ok(!op.summary.startsWith(method.toUpperCase() + ' '), `${method.toUpperCase()} ${path} has a real summary`);
    }
    for (const [path, ops] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(ops)) {
        assert.ok(!op.summary.startsWith(method.toUpperCase() + ' '), `${method.toUpperCase()} ${path} has a description in ROUTE_DOCS`);
      }
    }
    assert.ok(doc.paths['/api/v1/files']?.put?.responses['401'], 'writes document the 401');
    assert.ok(doc.paths['/api/v1/files/{ref}']?.get?.responses['416'], 'reads document the 416');
  });

  await t.test('events: a status snapshot per stream, at most MAX_SSE_CLIENTS streams, bad interval 400', async () => {
    const bad = await http(api, 'GET', '/api/v1/events?interval=5');
    assert.equal(bad.status, 400);
    const streams = [];
    try {
      for (let i = 0; i < MAX_SSE_CLIENTS; i++) {
        const s = await openEvents(api, '/api/v1/events?interval=60000');
        streams.push(s);
        assert.equal(s.status, 200);
      }
      const data = /data: (.*)\n/.exec(streams[0]!.first)?.[1];
      const snap = JSON.parse(data ?? '{}') as { status: { nodeId: string; members: { alive: number } }; traffic: { peerIn: number } };
      assert.equal(snap.status.nodeId, n0.nodeId);
      assert.equal(snap.status.members.alive, 2);
      assert.equal(typeof snap.traffic.peerIn, 'number');
      const refused = await openEvents(api);
      assert.equal(refused.status, 503);
      assert.match(refused.first, /UNAVAILABLE/);
    } finally {
      for (const s of streams) s.close();
    }
    // Closed streams free their slots, once the node has seen the sockets close.
    const again = await waitFor('a slot to free up', 10_000, async () => {
      const s = await openEvents(api);
      s.close();
      return s.status === 200 ? s : undefined;
    });
    assert.equal(again.status, 200);
  });

  await t.test('the dashboard is served without the token, with a strict content security policy', async () => {
    const page = await http(api, 'GET', '/');
    assert.equal(page.status, 200);
    assert.match(String(page.headers['content-type']), /text\/html/);
    assert.match(String(page.headers['content-security-policy']), /default-src 'self'/);
    assert.ok(!page.body.toString().includes(n0.apiToken), 'the token is not in the page');
    const js = await http(api, 'GET', '/assets/app.js');
    assert.equal(js.status, 200);
    assert.match(String(js.headers['content-type']), /javascript/);
    for (const path of ['/assets/../node.json', '/assets/%2e%2e%2fapi-token', '/assets/nope.js']) {
      const r = await http(api, 'GET', path);
      assert.equal(r.status, 404, path);
    }
  });
});
