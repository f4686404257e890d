import { test } from 'node:test';
import assert from 'node:assert/strict';
import { StripeLocks } from '../../../src/block/volume/stripe-lock.js';

test('stripe locks: a free stripe runs its work at once; a held one waits for the holder to settle, failed or not', async () => {
  const locks = new StripeLocks();
  const order: string[] = [];
  let finishFirst!: () => void;
  const first = locks.with(1, async () => {
    order.push('first starts');
    await new Promise<void>((r) => { finishFirst = r; });
    order.push('first ends');
    throw new Error('first failed');
  });
  assert.deepEqual(order, ['first starts'], 'the work of a free stripe started within the call');
  const second = locks.with(1, async () => { order.push('second runs'); return 2; });
  const other = locks.with(2, async () => { order.push('other stripe runs'); return 3; });
  assert.equal(await other, 3);
  assert.deepEqual(order, ['first starts', 'other stripe runs'], 'another stripe does not wait; the same stripe does');
  finishFirst();
  await assert.rejects(first, /first failed/);
  assert.equal(await second, 2);
  assert.deepEqual(order, ['first starts', 'other stripe runs', 'first ends', 'second runs']);
  // Work that throws before returning a promise frees the stripe too.
  await assert.rejects(locks.with(3, () => { throw new Error('sync'); }), /sync/);
  assert.equal(await locks.with(3, async () => 'again'), 'again');
  assert.equal(locks.held, 0, 'every stripe is free once its work settled');
});
