/**
 * Many weak nodes, one fast network: storage hosts whose links are capped with tc tbf, read
 * through a gateway host whose own link is not capped (test/netns/weak-cluster.ts). A get must
 * draw from the holders together, not one after another; and a holder frozen mid-get (SIGSTOP,
 * as a hung machine) must hold the get up no longer than the hedge deadline, not the 30 s a
 * chunk call may take before it times out.
 * Skipped, with the reason, where namespaces cannot be made (not root, no `ip netns`, no nft).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from '../../src/client/index.js';
import { HEDGE_MAX_MS } from '../../src/files/holder-board.js';
import { CHUNK_CALL_TIMEOUT_MS } from '../../src/files/limits.js';
import { cleanStale, leftovers, netnsUnavailable, type NetnsCluster } from '../netns/harness.js';
import { chunkOps, drain, hashedSource, startWeakCluster, type WeakCluster } from '../netns/weak-cluster.js';

const MiB = 1 << 20;
const HOSTS = 4;
const CAP = 5_000_000;
const FILE = 32 * MiB;
/** The get must run at this multiple of one host's cap at least (4 holders could give 4×). */
const MIN_SPEEDUP = 2.5;
/**
 * After the hedge deadline the stalled host's chunks still have to come from the others over
 * capped links: a window's share of them (a few MiB at 3 × 5 MB/s) is well under this.
 */
const REFETCH_SLACK_MS = 2_500;

const why = await netnsUnavailable();
if (why === undefined) {
  const stale = await cleanStale();
  if (stale.length > 0) process.stderr.write(`netns: removed leftovers of a crashed run: ${stale.join(' ')}\n`);
}
const skip = why === undefined ? false : `netns tests skipped: ${why}`;

let w: WeakCluster | undefined;
let made: NetnsCluster | undefined;
before(async () => {
  if (skip) return;
  w = await startWeakCluster({ storageHosts: HOSTS, capBytes: CAP }, (c) => (made = c));
});
after(async () => {
  await made?.destroy();
  if (!skip) assert.deepEqual(await leftovers(), [], 'teardown left namespaces or links behind');
});

/** The harness's clients give up after 5 s of silence; a put across capped links may queue longer than that. */
const gatewayClient = () => {
  const gw = w!.c.host(w!.gateway);
  return connect({ api: gw.api, token: gw.apiToken, timeoutMs: 60_000, tls: gw.apiTls });
};

async function putThroughGateway(name: string, seed: number): Promise<{ fileId: string; sha: string; putMs: number }> {
  const src = hashedSource(FILE, seed);
  const t0 = Date.now();
  const r = await gatewayClient().put(src.stream, { name, replicas: 3, quorum: 2, chunkSize: MiB });
  return { fileId: r.fileId, sha: src.sha(), putMs: Date.now() - t0 };
}

test(`a ${FILE / MiB} MiB get through an uncapped host draws from ${HOSTS} hosts capped at ${CAP / 1e6} MB/s together: at least ${MIN_SPEEDUP}× one host's cap`, { skip, timeout: 180_000 }, async (t) => {
  const { c, gateway } = w!;
  const put = await putThroughGateway('weak/one', 1);
  const res = await gatewayClient().get(put.fileId);
  const got = await drain(res.stream as AsyncIterable<Buffer>);
  const rate = got.bytes / (got.ms / 1000);
  t.diagnostic(`put ${FILE / MiB} MiB in ${put.putMs} ms (${(FILE / (put.putMs / 1000) / CAP).toFixed(2)}× cap); get in ${got.ms} ms: ${(rate / 1e6).toFixed(1)} MB/s = ${(rate / CAP).toFixed(2)}× one host's cap; longest pause ${got.maxGapMs} ms`);
  assert.equal(got.bytes, FILE);
  assert.equal(got.sha, put.sha, 'the file read back differs from the one written');
  assert.ok(rate >= MIN_SPEEDUP * CAP, `get ran at ${(rate / CAP).toFixed(2)}× one host's cap; want ≥ ${MIN_SPEEDUP}×`);
});

test('one host frozen mid-get (SIGSTOP) holds the get up no longer than the hedge deadline', { skip, timeout: 180_000 }, async (t) => {
  const { c, gateway } = w!;
  const put = await putThroughGateway('weak/stall', 2);
  const gw = c.host(gateway);
  const metrics = async () => {
    const parts: Buffer[] = [];
    for await (const b of await gw.client.raw('/metrics')) parts.push(b as Buffer);
    return Buffer.concat(parts).toString('utf8');
  };
  const hedgesBefore = chunkOps(await metrics(), 'fetch', 'hedged');
  const victim = 1;
  let stoppedAt = 0;
  const res = await gatewayClient().get(put.fileId);
  t.after(() => {
    if (stoppedAt > 0) t.diagnostic(`gateway log: ${gw.logTail.slice(-3000)}`);
  });
  try {
    const got = await drain(res.stream as AsyncIterable<Buffer>, (n) => {
      if (stoppedAt === 0 && n >= FILE / 4) {
        c.signal(victim, 'SIGSTOP');
        stoppedAt = Date.now();
      }
    });
    const hedges = chunkOps(await metrics(), 'fetch', 'hedged') - hedgesBefore;
    t.diagnostic(`host ${victim} stopped after ${FILE / 4 / MiB} MiB; get of ${FILE / MiB} MiB took ${got.ms} ms, longest pause ${got.maxGapMs} ms (hedge deadline ${HEDGE_MAX_MS} ms, chunk call timeout ${CHUNK_CALL_TIMEOUT_MS} ms); ${hedges} hedged requests`);
    assert.ok(stoppedAt > 0, 'the host was stopped during the get');
    assert.equal(got.bytes, FILE);
    assert.equal(got.sha, put.sha, 'the file read back differs from the one written');
    assert.ok(hedges > 0, 'chunks held by the frozen host were asked of another');
    assert.ok(got.maxGapMs <= HEDGE_MAX_MS + REFETCH_SLACK_MS, `the get stood still for ${got.maxGapMs} ms`);
  } finally {
    if (c.running(victim)) c.signal(victim, 'SIGCONT');
  }
});
