import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { isTesseraError } from '../../../src/errors.js';
import { HybridClock, MAX_HLC_LOGICAL, checkHlc, compareHlc, encodeHlc, maxHlc, type Hlc } from '../../../src/content/hlc.js';

const hlcArb = fc.record({
  wall: fc.integer({ min: 0, max: 2 ** 45 }),
  logical: fc.integer({ min: 0, max: MAX_HLC_LOGICAL }),
  node: fc.constantFrom('a', 'b', 'c'),
});

test('compareHlc is a total order: antisymmetric, transitive, consistent with maxHlc', () => {
  fc.assert(
    fc.property(hlcArb, hlcArb, hlcArb, (a, b, c) => {
      assert.equal(compareHlc(a, b), -compareHlc(b, a) || 0);
      if (compareHlc(a, b) <= 0 && compareHlc(b, c) <= 0) assert.ok(compareHlc(a, c) <= 0);
      assert.equal(compareHlc(maxHlc(a, b), a) >= 0 && compareHlc(maxHlc(a, b), b) >= 0, true);
      assert.equal(compareHlc(a, b) === 0, a.wall === b.wall && a.logical === b.logical && a.node === b.node);
    }),
  );
});

test('tick is strictly increasing even when the physical clock stalls or goes back', () => {
  const times = [1000, 1000, 999, 500, 1001, 1001, 2000];
  let i = 0;
  const clock = new HybridClock('n1', { now: () => times[Math.min(i++, times.length - 1)] as number });
  let last: Hlc | undefined;
  for (let n = 0; n < times.length + 3; n++) {
    const t = clock.tick();
    if (last) assert.equal(compareHlc(t, last), 1, `${JSON.stringify(t)} after ${JSON.stringify(last)}`);
    assert.ok(t.wall >= 1000);
    last = t;
  }
  assert.equal(last?.wall, 2000);
});

test('receive returns a timestamp later than both the local and the remote one', () => {
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 0, max: 5000 }), fc.integer({ min: 0, max: 5 })), { maxLength: 40 }), (events) => {
      let physical = 10_000;
      const clock = new HybridClock('me', { now: () => physical, maxSkewMs: 10_000 });
      let last = clock.peek();
      for (const [remote, jump, logical] of events) {
        physical += jump % 3 === 0 ? -jump : jump;
        if (physical < 0) physical = 0;
        const r: Hlc = { wall: physical + (jump % 7) * 100, logical, node: 'other' };
        const t = remote ? clock.receive(r) : clock.tick();
        assert.equal(compareHlc(t, last), 1);
        if (remote) assert.ok(t.wall > r.wall || (t.wall === r.wall && t.logical > r.logical));
        last = t;
      }
    }),
  );
});

test('a remote clock too far ahead is refused; malformed timestamps are BAD_INPUT', () => {
  const clock = new HybridClock('me', { now: () => 1_000_000, maxSkewMs: 5000 });
  assert.throws(() => clock.receive({ wall: 1_006_000, logical: 0, node: 'x' }), (e) => isTesseraError(e, 'BAD_INPUT') && /ahead/.test((e as Error).message));
  assert.equal(clock.receive({ wall: 1_004_000, logical: 3, node: 'x' }).logical, 4);
  for (const bad of [{ wall: -1, logical: 0, node: 'x' }, { wall: 1, logical: 2 ** 32, node: 'x' }, { wall: 1, logical: 0, node: 'x'.repeat(200) }, { wall: 1, logical: 0 }, null]) {
    assert.throws(() => checkHlc(bad), (e) => isTesseraError(e, 'BAD_INPUT'));
  }
  assert.throws(() => new HybridClock(''), (e) => isTesseraError(e, 'BAD_INPUT'));
});

test('the logical counter never overflows: the clock borrows the next millisecond', () => {
  const clock = new HybridClock('me', { now: () => 50 });
  const t = clock.receive({ wall: 50, logical: MAX_HLC_LOGICAL, node: 'x' });
  assert.deepEqual([t.wall, t.logical], [51, 0]);
});

test('encodeHlc gives distinct bytes for distinct timestamps', () => {
  fc.assert(
    fc.property(hlcArb, hlcArb, (a, b) => {
      assert.equal(encodeHlc(a).equals(encodeHlc(b)), compareHlc(a, b) === 0);
    }),
  );
});
