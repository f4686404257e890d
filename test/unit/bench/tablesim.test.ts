import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runTableSim } from '../../../bench/tablesim.js';

test('table operations cost O(R) messages whatever the cluster size, and a join moves about 1/(N+1) of partition copies', { timeout: 300_000 }, async () => {
  for (const nodes of [30, 300]) {
    const r = await runTableSim({ nodes, seed: 3, ops: 8, joins: 20 });
    // Three holders: at most one request each (fewer when the coordinator is a holder itself).
    assert.ok(r.messagesPerPut <= 3 && r.messagesPerPut >= 2, `put ${r.messagesPerPut}`);
    assert.ok(r.messagesPerLookup <= 3 && r.messagesPerLookup >= 2, `lookup ${r.messagesPerLookup}`);
    assert.ok(r.messagesPerListedPage <= 3, `page ${r.messagesPerListedPage}`);
    assert.ok(r.joinMovedShare > r.joinIdealShare / 2 && r.joinMovedShare < r.joinIdealShare * 2, `moved ${r.joinMovedShare} vs ${r.joinIdealShare}`);
    assert.equal(r.join.partitionsMoved, 1);
    // The listed bucket's partition: 250 listed entries and the one put before them.
    assert.equal(r.join.entriesMoved, 251);
    assert.equal(r.join.dropped, 1);
  }
});
