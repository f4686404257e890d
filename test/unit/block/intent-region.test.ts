/** Intent regions: marking a stripe marks its region in the same append, so later writes there wait for no sync. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isTesseraError } from '../../../src/errors.js';
import { IntentLog, MAX_REGION_STRIPES } from '../../../src/block/volume/intent-log.js';
import { MemoryBlobStorage } from '../../../src/block/volume/storage.js';

test('intent region: a stripe marks its whole region, bounded by the stripe count, in one append', async () => {
  const s = new MemoryBlobStorage();
  const log = await IntentLog.open(s, { clearDelayMs: 60_000, regionStripes: 4, stripeCount: 10 });
  await log.begin(5);
  assert.equal(s.appends, 1);
  assert.equal(log.marked, 4, 'stripes 4..7 are marked');
  // Another stripe of the region is already durable: no append, no wait.
  await log.begin(6);
  assert.equal(s.appends, 1);
  log.end(5);
  log.end(6);
  // The last region stops at the stripe count.
  await log.begin(9);
  assert.equal(log.marked, 6, 'stripes 8 and 9 joined');
  log.end(9);
  // A master that crashes now recovers every marked stripe, written or not.
  const again = await IntentLog.open(s);
  assert.deepEqual([...again.pending].sort((a, b) => a - b), [4, 5, 6, 7, 8, 9]);
  await log.close();
});

test('intent region: idle region marks are cleared after the delay like written stripes', async () => {
  const s = new MemoryBlobStorage();
  const log = await IntentLog.open(s, { clearDelayMs: 20, regionStripes: 8, stripeCount: 64 });
  await log.begin(17);
  assert.equal(log.marked, 8);
  log.end(17);
  // A clear leaves the in-memory marks at once and reaches the log with the next append.
  const onDisk = async () => (await IntentLog.open(s)).pending;
  for (let i = 0; i < 100 && (log.marked > 0 || (await onDisk()).length > 0); i++) await new Promise((r) => setTimeout(r, 10));
  assert.equal(log.marked, 0, 'every mark of the region was cleared');
  assert.deepEqual(await onDisk(), []);
  await log.close();
});

test('intent region: sizes outside 1..MAX_REGION_STRIPES are refused', async () => {
  for (const r of [0, MAX_REGION_STRIPES + 1, 1.5]) {
    await assert.rejects(IntentLog.open(new MemoryBlobStorage(), { regionStripes: r }), (e: unknown) => isTesseraError(e, 'BAD_INPUT'));
  }
});

/** Memory log storage whose appends wait until the test lets them land. */
class HeldAppends extends MemoryBlobStorage {
  #held: Array<() => void> = [];
  hold = false;
  override async append(data: Buffer): Promise<void> {
    if (this.hold) await new Promise<void>((r) => this.#held.push(r));
    return super.append(data);
  }
  release(): void {
    this.hold = false;
    for (const r of this.#held.splice(0)) r();
  }
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('intent region: idle marks cleared while their own mark is still being appended stay cleared', async () => {
  const s = new HeldAppends();
  const log = await IntentLog.open(s, { clearDelayMs: 5, regionStripes: 8, stripeCount: 64 });
  s.hold = true;
  const marked = log.begin(17);
  // The region's idle marks come due while the append that makes them is still under way.
  await sleep(40);
  s.release();
  await marked;
  log.end(17);
  const onDisk = async () => (await IntentLog.open(s)).pending;
  for (let i = 0; i < 200 && (log.marked > 0 || (await onDisk()).length > 0); i++) await sleep(10);
  assert.equal(log.marked, 0, 'no mark is remembered in memory once its clear reached the log');
  assert.deepEqual(await onDisk(), []);
  await log.close();
});

test('intent region: a write beginning on a stripe whose clear is queued behind its mark keeps it marked on disk', async () => {
  const s = new HeldAppends();
  const log = await IntentLog.open(s, { clearDelayMs: 5, regionStripes: 8, stripeCount: 64 });
  s.hold = true;
  const first = log.begin(17);
  await sleep(40); // stripe 18's idle mark is now queued for clearing behind the append in flight
  const second = log.begin(18);
  s.release();
  await Promise.all([first, second]);
  // Let every queued append land; stripe 18 is being written, so the log must still name it.
  for (let i = 0; i < 20; i++) await sleep(5);
  assert.ok((await IntentLog.open(s)).pending.includes(18), 'a stripe under write is marked in the log');
  assert.equal(log.inFlight, 2);
  log.end(17);
  log.end(18);
  await log.close();
});
