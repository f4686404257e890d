/**
 * /metrics against real node processes: the exposition parses as Prometheus text (every sample
 * belongs to a declared family, histograms are cumulative), and the counters move with a put:
 * peer bytes, file and chunk operations, API request latency; membership gauges follow a kill.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { request } from 'node:http';
import { LocalCluster, waitFor } from '../../src/cli/local-cluster.js';

const TIMING = ['--probe-interval', '300', '--suspicion-timeout', '1500'];

type Samples = Map<string, number>;

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+-?\d+)?$/;
const LABEL = /\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*(?:,|$)/y;

/**
 * A strict reader of the text exposition format (0.0.4): returns samples keyed by name and
 * labels (the constant `node` label left out), and fails on anything malformed.
 */
export function parsePrometheus(text: string): { samples: Samples; types: Map<string, string> } {
  const types = new Map<string, string>();
  const samples: Samples = new Map();
  for (const [i, line] of text.split('\n').entries()) {
    if (line === '') continue;
    if (line.startsWith('#')) {
      const m = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line);
      assert.ok(m, `line ${i + 1}: malformed comment: ${line}`);
      assert.match(m[2] as string, NAME, `line ${i + 1}: metric name`);
      if (m[1] === 'TYPE') {
        assert.ok(['counter', 'gauge', 'histogram', 'summary', 'untyped'].includes(m[3] as string), `line ${i + 1}: type ${m[3]}`);
        assert.ok(!types.has(m[2] as string), `line ${i + 1}: ${m[2]} declared twice`);
        types.set(m[2] as string, m[3] as string);
      }
      continue;
    }
    const m = SAMPLE.exec(line);
    assert.ok(m, `line ${i + 1}: malformed sample: ${line}`);
    const [, name, labelText, valueText] = m as unknown as [string, string, string | undefined, string];
    const family = [name, name.replace(/_(bucket|sum|count)$/, '')].find((f) => types.has(f));
    assert.ok(family, `line ${i + 1}: ${name} has no # TYPE before it`);
    const labels: string[] = [];
    if (labelText) {
      LABEL.lastIndex = 0;
      while (LABEL.lastIndex < labelText.length) {
        const lm = LABEL.exec(labelText);
        assert.ok(lm, `line ${i + 1}: malformed labels {${labelText}}`);
        if (lm[1] !== 'node') labels.push(`${lm[1]}="${lm[2]}"`);
      }
    }
    const value = valueText === '+Inf' ? Infinity : valueText === '-Inf' ? -Infinity : Number(valueText);
    assert.ok(valueText === 'NaN' || !Number.isNaN(value), `line ${i + 1}: value ${valueText}`);
    const key = labels.length ? `${name}{${labels.sort().join(',')}}` : name;
    assert.ok(!samples.has(key), `line ${i + 1}: duplicate sample ${key}`);
    samples.set(key, value);
  }
  return { samples, types };
}

/** Each node's API token by address: reads need it on loopback too, as a scraper's bearer token. */
const tokens = new Map<string, string>();

function get(api: string, path: string, given: Record<string, string> = {}, body?: Buffer, method = 'GET'): Promise<{ status: number; text: string; type: string }> {
  const [host, port] = api.split(':') as [string, string];
  const token = tokens.get(api);
  const headers = token !== undefined && given.authorization === undefined ? { ...given, authorization: `Bearer ${token}` } : given;
  return new Promise((resolve, reject) => {
    const req = request({ host, port: Number(port), path, method, headers }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(parts).toString('utf8'), type: String(res.headers['content-type']) }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

async function scrape(api: string): Promise<Samples> {
  const r = await get(api, '/metrics');
  assert.equal(r.status, 200);
  assert.match(r.type, /^text\/plain; version=0\.0\.4/);
  const { samples, types } = parsePrometheus(r.text);
  assert.equal(types.get('tessera_peer_bytes_total'), 'counter');
  assert.equal(types.get('tessera_api_request_duration_seconds'), 'histogram');
  return samples;
}

const v = (s: Samples, key: string): number => s.get(key) ?? 0;

test('/metrics parses as Prometheus text and its counters follow a put and a kill', async (t) => {
  const cluster = await LocalCluster.create({ nodes: 3, memory: true, nodeArgs: TIMING, logLevel: 'warn' });
  for (const n of cluster.nodes) tokens.set(n.api, n.apiToken);
  t.after(() => cluster.destroy());
  await cluster.waitForMembers({ alive: 3 });
  const n0 = cluster.node(0);

  const before = await scrape(n0.api);
  assert.equal(v(before, 'tessera_members{state="alive"}'), 3);
  assert.equal(v(before, 'tessera_members{state="dead"}'), 0);
  assert.ok(v(before, 'tessera_store_capacity_bytes') > 0);
  assert.ok(before.has('tessera_chunk_ops_total{op="store",result="stored"}'));
  assert.ok(![...before.keys()].some((k) => k.startsWith('tessera_repair_backlog')), 'the backlog is absent until the repair loop reports it');
  assert.equal(v(before, 'tessera_store_quota_bytes'), Infinity, 'no quota');
  const holderBefore = await scrape(cluster.node(1).api);

  const size = 700_000;
  const put = await get(n0.api, '/api/v1/files?name=metrics.bin&replicas=3', { authorization: `Bearer ${n0.apiToken}` }, randomBytes(size), 'PUT');
  assert.equal(put.status, 201, put.text);
  const read = await get(cluster.node(1).api, '/api/v1/files/metrics.bin');
  assert.equal(read.status, 200);

  const after = await scrape(n0.api);
  const outDelta = v(after, 'tessera_peer_bytes_total{direction="out"}') - v(before, 'tessera_peer_bytes_total{direction="out"}');
  t.diagnostic(`peer bytes out for a ${size}-byte put with 3 replicas: ${outDelta}`);
  assert.ok(outDelta >= size, 'at least one remote copy crossed the transport');
  assert.ok(v(after, 'tessera_api_bytes_total{direction="in"}') - v(before, 'tessera_api_bytes_total{direction="in"}') >= size, 'the upload went through the API');
  assert.equal(v(after, 'tessera_file_ops_total{op="put",result="ok"}') - v(before, 'tessera_file_ops_total{op="put",result="ok"}'), 1);
  const putCount = 'tessera_api_request_duration_seconds_count{method="PUT",route="/api/v1/files",status="201"}';
  assert.equal(v(after, putCount) - v(before, putCount), 1, 'the put is in the latency histogram under its route pattern');
  const inf = v(after, 'tessera_api_request_duration_seconds_bucket{le="+Inf",method="PUT",route="/api/v1/files",status="201"}');
  assert.equal(inf, v(after, putCount), 'the +Inf bucket equals the count');
  let prev = 0;
  for (const le of ['0.001', '0.01', '0.1', '1', '10', '60', '+Inf']) {
    const b = v(after, `tessera_api_request_duration_seconds_bucket{le="${le}",method="PUT",route="/api/v1/files",status="201"}`);
    assert.ok(b >= prev, `buckets are cumulative at le=${le}`);
    prev = b;
  }
  assert.ok(v(after, 'tessera_store_used_bytes') >= size, 'node 0 holds a copy');

  const holder = await scrape(cluster.node(1).api);
  assert.ok(v(holder, 'tessera_chunk_ops_total{op="store",result="stored"}') > v(holderBefore, 'tessera_chunk_ops_total{op="store",result="stored"}'), 'node 1 stored chunks');
  assert.ok(v(holder, 'tessera_peer_bytes_total{direction="in"}') - v(holderBefore, 'tessera_peer_bytes_total{direction="in"}') >= size);
  assert.equal(v(holder, 'tessera_file_ops_total{op="get",result="ok"}') - v(holderBefore, 'tessera_file_ops_total{op="get",result="ok"}'), 1);

  await cluster.kill(2, 'SIGKILL');
  const dead = await waitFor('node 0 to report a dead member in its metrics', 15_000, async () => {
    const s = await scrape(n0.api);
    return v(s, 'tessera_members{state="dead"}') === 1 ? s : undefined;
  });
  assert.equal(v(dead, 'tessera_members{state="alive"}'), 2);
});

test('NodeMetrics: the repair backlog setter and NBD counters reach the exposition', async () => {
  const { NodeMetrics } = await import('../../src/api/metrics.js');
  const nbd = { connectionsActive: 2, bytesRead: 4096, bytesWritten: 8192, ops: { read: { ok: 5, error: 1 }, write: { ok: 7, error: 0 } } };
  let serving = false;
  const m = new NodeMetrics({
    transport: () => ({ bytesIn: 10, bytesOut: 20 }),
    members: () => ({ alive: 1, suspect: 0, dead: 0, left: 0 }),
    store: () => ({ used: 1, count: 1, capacity: 100, quota: 50 }),
    nbd: () => (serving ? nbd : undefined),
  }, { nodeId: 'abc', defaultMetrics: false });
  const read = async () => parsePrometheus(await m.text()).samples;

  let s = await read();
  assert.ok(![...s.keys()].some((k) => k.startsWith('tessera_nbd_ops_total')), 'no NBD samples on a node that serves no volumes');
  assert.equal(v(s, 'tessera_store_quota_bytes'), 50);
  m.setRepairBacklog({ chunks: 3, bytes: 3 << 20 });
  serving = true;
  s = await read();
  assert.equal(v(s, 'tessera_repair_backlog{unit="chunks"}'), 3);
  assert.equal(v(s, 'tessera_repair_backlog{unit="bytes"}'), 3 << 20);
  assert.equal(v(s, 'tessera_nbd_ops_total{op="read",result="error"}'), 1);
  assert.equal(v(s, 'tessera_nbd_ops_total{op="write",result="ok"}'), 7);
  assert.equal(v(s, 'tessera_nbd_bytes_total{direction="written"}'), 8192);
  assert.equal(v(s, 'tessera_nbd_connections'), 2);
  nbd.ops.write.ok = 9;
  assert.equal(v(await read(), 'tessera_nbd_ops_total{op="write",result="ok"}'), 9, 'read again at each scrape');
  m.setRepairBacklog(null);
  assert.ok(![...(await read()).keys()].some((k) => k.startsWith('tessera_repair_backlog')));
});
