/**
 * The metadata write path across real node processes: single-record writes coalesced into group
 * commits are durable once acknowledged (every holder killed with SIGKILL right after), and a
 * bucket deleted and made again under the same name is never confused with the old one by a node
 * that remembered the old id.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LocalCluster } from '../../src/cli/local-cluster.js';
import { isTesseraError } from '../../src/errors.js';
import type { TesseraClient } from '../../src/client/index.js';
import { sampleObjectRecord as record } from '../helpers/object-record.js';
import { WRITE_BATCH_MAX_ENTRIES } from '../../src/tables/table-service.js';

const TIMING = ['--probe-interval', '200', '--suspicion-timeout', '1500'];
const WRITES = 600;
const IN_FLIGHT = 32;

async function listAll(c: TesseraClient, bucket: string): Promise<string[]> {
  const out: string[] = [];
  let token: string | undefined;
  for (let page = 0; page < 1000; page++) {
    const r = await c.listObjects(bucket, { limit: 1000, ...(token ? { token } : {}) });
    out.push(...r.objects.map((o) => o.key));
    if (r.token === null) return out;
    token = r.token;
  }
  throw new Error('listing did not end');
}

test('single-record writes acknowledged through group commits survive SIGKILL of every holder', { timeout: 300_000 }, async () => {
  // Three full nodes with R = 3: every node holds every partition, so all holders die at once.
  const cluster = await LocalCluster.create({ nodes: 3, nodeArgs: TIMING, logLevel: 'warn' });
  try {
    await cluster.waitForMembers({ alive: 3 });
    const clients = () => cluster.nodes.map((n) => n.client);
    await clients()[0]!.createBucket('durable');
    const acked: string[] = [];
    let next = 0;
    await Promise.all(
      Array.from({ length: IN_FLIGHT }, async () => {
        while (next < WRITES) {
          const i = next++;
          const key = `k-${String(i).padStart(5, '0')}`;
          await clients()[i % 3]!.putObjectRecords('durable', [{ key, record: record(i) }]);
          acked.push(key);
        }
      }),
    );
    assert.equal(acked.length, WRITES);
    const statuses = await Promise.all(clients().map((c) => c.status()));
    const batches = statuses.map((s) => s.metadata!.writeBatches);
    // Writes arriving together went out together: fewer batches than writes, some of several.
    assert.ok(batches.some((b) => b.largest > 1), `no batch carried more than one write: ${JSON.stringify(batches)}`);
    assert.ok(batches.every((b) => b.largest <= WRITE_BATCH_MAX_ENTRIES));
    await Promise.all(cluster.nodes.map((n) => cluster.kill(n.index, 'SIGKILL')));
    for (const n of cluster.nodes) await cluster.start(n.index);
    await cluster.waitForMembers({ alive: 3 });
    const listed = await listAll(clients()[1]!, 'durable');
    assert.deepEqual(listed, [...acked].sort(), 'every acknowledged write is there after the restart');
    for (const [j, key] of acked.filter((_, i) => i % 50 === 0).entries()) {
      assert.equal((await clients()[j % 3]!.objectRecord('durable', key)).key, key);
    }
  } finally {
    await cluster.destroy();
  }
});

test('a bucket deleted and made again under its name: nodes that remembered the old id neither write into nor read from it', { timeout: 300_000 }, async () => {
  const cluster = await LocalCluster.create({ nodes: 3, nodeArgs: TIMING, logLevel: 'warn' });
  try {
    await cluster.waitForMembers({ alive: 3 });
    const [a, b, c] = cluster.nodes.map((n) => n.client) as [TesseraClient, TesseraClient, TesseraClient];
    await a.createBucket('reborn');
    // B and C learn the first bucket's id by using it.
    await b.putObjectRecords('reborn', [{ key: 'old-1', record: record(1) }]);
    assert.equal((await c.objectRecord('reborn', 'old-1')).key, 'old-1');
    assert.deepEqual((await c.listObjects('reborn')).objects.map((o) => o.key), ['old-1']);

    await a.removeObjectRecord('reborn', 'old-1');
    await a.removeBucket('reborn');
    await a.createBucket('reborn');
    await a.putObjectRecords('reborn', [{ key: 'new-1', record: record(2) }]);

    // C still remembers the old id: its read and listing must show the new bucket.
    assert.equal((await c.objectRecord('reborn', 'new-1')).key, 'new-1');
    // B still remembers the old id: its write must land in the new bucket, not the deleted one.
    await b.putObjectRecords('reborn', [{ key: 'new-2', record: record(3) }]);
    for (const client of [a, b, c]) assert.deepEqual((await client.listObjects('reborn')).objects.map((o) => o.key), ['new-1', 'new-2']);

    // Deleted and not made again: a node that remembered it gets NOT_FOUND, and nothing is written.
    await a.createBucket('gone');
    await b.putObjectRecords('gone', [{ key: 'x', record: record(4) }]);
    await c.putObjectRecords('gone', [{ key: 'y', record: record(5) }]);
    await a.removeObjectRecord('gone', 'x');
    await a.removeObjectRecord('gone', 'y');
    await a.removeBucket('gone');
    await assert.rejects(b.putObjectRecords('gone', [{ key: 'z', record: record(6) }]), (e) => isTesseraError(e, 'NOT_FOUND'));
    await assert.rejects(c.listObjects('gone'), (e) => isTesseraError(e, 'NOT_FOUND'));
    assert.ok(!(await a.buckets()).buckets.some((x) => x.name === 'gone'));
    // A bucket that is not empty is not deleted, and stays writable afterwards.
    await assert.rejects(a.removeBucket('reborn'), (e) => isTesseraError(e, 'CONFLICT'));
    await b.putObjectRecords('reborn', [{ key: 'new-3', record: record(7) }]);
    assert.equal((await a.listObjects('reborn')).objects.length, 3);
  } finally {
    await cluster.destroy();
  }
});
