/**
 * A bucket of 1,000,000 object records, written through the table layer (record writes, no file
 * bodies) on 3 full nodes, lists page by page in key order with every process under 256 MiB.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LocalCluster } from '../../src/cli/local-cluster.js';
import { formatFileId } from '../../src/content/ids.js';
import type { ObjectRecord } from '../../src/tables/records.js';
import { peakRss } from './files-support.js';
import { lmdbAddonChoice } from '../../src/store/lmdb-addon.js';

const RSS_LIMIT = 256 << 20;
const ENTRIES = 1_000_000;
const BATCH = 200;
const IN_FLIGHT = 8;
const PAGE = 1000;
const FILE_ID = formatFileId(Buffer.alloc(32, 1), Buffer.alloc(32, 2));

const record = (i: number): ObjectRecord => ({ fileId: FILE_ID, size: i, etag: '', checksums: {}, contentType: '', userMeta: {}, mtime: 1_700_000_000_000 });
const keyOf = (i: number) => `k/${String(i).padStart(7, '0')}`;

// Opt-in: it runs 10-15 minutes here. The bound holds only with lmdb built with a bounded page
// cache (native/lmdb-bounded, built by npm install where a C compiler and the node headers are
// installed): lmdb's prebuilt addon keeps up to ~8,191 64 KiB chunks of an encrypted store mapped
// plus their decrypted copies before it frees any, so a ~480 MiB table is resident twice and
// nodes peaked at 1.2-1.3 GiB. It also needs the nodes' heap flags (src/cli/runtime-tuning.ts): with
// V8's default young generation and heap growth they peaked at 299-320 MiB. See docs/tables.md,
// "Memory with very large tables".
const RUN = process.env.TESSERA_TABLES_LARGE === '1';

test('1,000,000 object records list page by page in order, every process under 256 MiB', { timeout: 3_600_000, skip: !RUN && 'set TESSERA_TABLES_LARGE=1 (10-15 minutes)' }, async (t) => {
  const lmdb = lmdbAddonChoice();
  // The nodes are child processes that choose the same way (same tree, same environment).
  if (!lmdb.bounded) t.diagnostic(`this will fail its memory bound: lmdb's prebuilt addon is in use (${lmdb.detail}), whose encrypted page cache grows to ~1 GiB per node here; see docs/tables.md`);
  const cluster = await LocalCluster.create({ nodes: 3, logLevel: 'warn' });
  t.after(() => cluster.destroy());
  await cluster.waitForMembers({ alive: 3 });
  await cluster.node(0).client.createBucket('big');
  let next = 0;
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async (_, w) => {
      for (;;) {
        const start = next;
        next += BATCH;
        if (start >= ENTRIES) return;
        const items = Array.from({ length: Math.min(BATCH, ENTRIES - start) }, (_, j) => ({ key: keyOf(start + j), record: record(start + j) }));
        await cluster.node(w % 3).client.putObjectRecords('big', items);
      }
    }),
  );
  let token: string | undefined;
  let seen = 0;
  for (let page = 0; page <= ENTRIES / PAGE + 1; page++) {
    const r = await cluster.node(page % 3).client.listObjects('big', { limit: PAGE, ...(token ? { token } : {}) });
    for (const o of r.objects) {
      assert.equal(o.key, keyOf(seen));
      seen++;
    }
    if (r.token === null) break;
    token = r.token;
  }
  assert.equal(seen, ENTRIES);
  const peaks = await Promise.all(cluster.nodes.map((n) => peakRss(n.proc!.pid!)));
  const addons = await Promise.all(cluster.nodes.map(async (n) => (await n.client.status()).metadata?.lmdb));
  t.diagnostic(`lmdb per node: ${addons.map((a) => (a === undefined ? 'no table store' : `${a.bounded ? 'bounded' : 'prebuilt'} (${a.detail})`)).join('; ')}`);
  t.diagnostic(`peak RSS per node: ${peaks.map((p) => `${(p / 2 ** 20).toFixed(0)} MiB`).join(', ')}; test process ${((await peakRss(process.pid)) / 2 ** 20).toFixed(0)} MiB`);
  for (const p of peaks) assert.ok(p < RSS_LIMIT, `a node peaked at ${(p / 2 ** 20).toFixed(0)} MiB`);
  assert.ok((await peakRss(process.pid)) < RSS_LIMIT);
});
