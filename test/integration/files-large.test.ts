/**
 * One GiB of pseudo-random data through disk nodes: stored through one node, read back through
 * another, byte-identical; every process (nodes and this one) stays under the memory bound.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { LocalCluster } from '../../src/cli/local-cluster.js';
import { peakRss, seededBytes, sha256Of } from './files-support.js';

const SIZE = 1 << 30;
const RSS_LIMIT = 256 << 20;
const TIMING = ['--probe-interval', '300', '--suspicion-timeout', '1500'];

test('1 GiB put through node A and read back through node B byte-identical, every process under 256 MiB, every stored copy intact', { timeout: 240_000 }, async (t) => {
  // Scrub unthrottled, so checking every copy at the end takes seconds.
  const cluster = await LocalCluster.create({ nodes: 3, nodeArgs: [...TIMING, '--scrub-rate', '4G'], logLevel: 'warn' });
  t.after(() => cluster.destroy());
  await cluster.waitForMembers({ alive: 3 });

  const sent = createHash('sha256');
  async function* source() {
    for await (const piece of seededBytes('one-gib', SIZE, 1 << 20)) {
      sent.update(piece);
      yield piece;
    }
  }
  const t0 = Date.now();
  const put = await cluster.node(0).client.put(source(), { name: 'big.bin' });
  const putMs = Date.now() - t0;
  assert.equal(put.size, SIZE);
  assert.equal(put.chunks, SIZE / (1 << 20));

  const t1 = Date.now();
  const got = await cluster.node(1).client.get('big.bin');
  assert.equal(got.size, SIZE);
  const received = await sha256Of(got.stream);
  const getMs = Date.now() - t1;
  assert.equal(received.bytes, SIZE);
  assert.equal(received.hex, sent.digest('hex'), 'read back byte-identical');

  const peaks = await Promise.all(cluster.nodes.map((n) => peakRss(n.proc!.pid!)));
  const self = await peakRss(process.pid);
  t.diagnostic(`put ${(SIZE / 2 ** 20 / (putMs / 1000)).toFixed(0)} MiB/s (${putMs} ms), get ${(SIZE / 2 ** 20 / (getMs / 1000)).toFixed(0)} MiB/s (${getMs} ms)`);
  t.diagnostic(`peak RSS: nodes ${peaks.map((p) => (p / 2 ** 20).toFixed(0)).join(', ')} MiB; test process ${(self / 2 ** 20).toFixed(0)} MiB`);
  for (const [i, p] of peaks.entries()) assert.ok(p < RSS_LIMIT, `node ${i} peak RSS ${p} bytes is under ${RSS_LIMIT}`);
  assert.ok(self < RSS_LIMIT, `test process peak RSS ${self} is under ${RSS_LIMIT}`);

  // Reads fail over past a bad copy, so a read-back alone would hide one: every node checks
  // every copy it stored (each chunk arrived in a frame buffer that is reused afterwards).
  const scrubs = await Promise.all(cluster.nodes.map((n) => n.client.scrub()));
  t.diagnostic(`scrub: ${scrubs.map((r) => `${r.checked} copies checked, ${r.bad} bad`).join('; ')}`);
  for (const [i, r] of scrubs.entries()) {
    assert.equal(r.bad, 0, `node ${i} holds bad copies: ${r.badIds.join(', ')}`);
    assert.ok(r.checked >= put.chunks, `node ${i} checked ${r.checked} copies, fewer than the file's ${put.chunks} chunks`);
  }
});
