import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { HEDGE_MAX_MS, HEDGE_MIN_MS, HolderBoard, MAX_TRACKED_HOLDERS, RATE_STALE_MS } from '../../../src/files/holder-board.js';
import { gather, type Candidate, type GatherResult, type Timers } from '../../../src/files/hedged-gather.js';
import { createPrng } from '../../../src/cluster/sim/prng.js';

/** A clock whose timers fire only when a test advances it; promise callbacks run between timers. */
class FakeClock implements Timers {
  t = 0;
  #seq = 0;
  readonly #q: { at: number; seq: number; fn: () => void }[] = [];
  readonly now = () => this.t;
  after(ms: number, fn: () => void): () => void {
    const e = { at: this.t + Math.max(0, ms), seq: this.#seq++, fn };
    this.#q.push(e);
    return () => {
      const i = this.#q.indexOf(e);
      if (i >= 0) this.#q.splice(i, 1);
    };
  }
  /** Fires due timers in order until `until` (or until `stop()` says so), letting promises settle after each. */
  async run(until: number, stop: () => boolean = () => false): Promise<void> {
    await settle();
    for (let guard = 0; guard < 1_000_000 && !stop(); guard++) {
      this.#q.sort((a, b) => a.at - b.at || a.seq - b.seq);
      const e = this.#q[0];
      if (e === undefined || e.at > until) break;
      this.#q.shift();
      this.t = e.at;
      e.fn();
      await settle();
    }
    if (!stop()) this.t = Math.max(this.t, until);
  }
}
const settle = () => new Promise<void>((r) => setImmediate(r));

/**
 * A holder behind a link of `rate` bytes per ms: replies leave one after another, in order.
 * `stalled` holds every reply back until `release()` (a SIGSTOPped process).
 */
class SimHolder {
  #busyUntil = 0;
  served = 0;
  stalled = false;
  readonly #held: (() => void)[] = [];
  constructor(
    readonly name: string,
    readonly rate: number,
    private readonly clock: FakeClock,
  ) {}
  fetch(bytes: number, payload: Buffer, signal: AbortSignal, ignoreAbort = false): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      const deliver = () => {
        this.served++;
        resolve(payload);
      };
      if (!ignoreAbort) signal.addEventListener('abort', () => reject(signal.reason), { once: true });
      if (this.stalled) {
        this.#held.push(deliver);
        return;
      }
      const at = Math.max(this.clock.t, this.#busyUntil) + bytes / this.rate;
      this.#busyUntil = at;
      this.clock.after(at - this.clock.t, deliver);
    });
  }
  release(): void {
    this.stalled = false;
    for (const d of this.#held.splice(0)) d();
  }
}

const BYTES = 1000;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

test('a holder that answers 4× slower ends up with about a quarter of the in-flight chunks, and the reads use both', async (t) => {
  const clock = new FakeClock();
  const board = new HolderBoard(clock.now);
  const fast = new SimHolder('fast', 4, clock);
  const slow = new SimHolder('slow', 1, clock);
  const holders = new Map([fast, slow].map((h) => [h.name, h]));
  const random = createPrng(7, 'balance');
  const WINDOW = 16;
  const CHUNKS = 1_500;
  const WARMUP = 100;
  let started = 0;
  let done = 0;
  let hedges = 0;
  let sumFast = 0;
  let sumSlow = 0;
  let samples = 0;
  const payload = Buffer.alloc(BYTES, 1);
  const one = async (): Promise<void> => {
    // Placement puts either holder first, at random, as rendezvous hashing does per chunk.
    const order = random() < 0.5 ? ['fast', 'slow'] : ['slow', 'fast'];
    const r = await gather({
      need: 1,
      candidates: order.map((holder) => ({ key: 'c', holder })),
      board,
      bytes: BYTES,
      attempt: (c, signal) => holders.get(c.holder)!.fetch(BYTES, payload, signal),
      sizeOf: (b) => b.length,
      timers: clock,
    });
    assert.equal(r.got.size, 1);
    hedges += r.counts.hedges;
    done++;
    if (done > WARMUP) {
      sumFast += board.view('fast').inflight;
      sumSlow += board.view('slow').inflight;
      samples++;
    }
    if (started < CHUNKS) {
      started++;
      void one();
    }
  };
  for (; started < WINDOW; started++) void one();
  await clock.run(10_000_000, () => done >= CHUNKS);
  assert.equal(done, CHUNKS);
  const share = sumSlow / (sumFast + sumSlow);
  const ratio = sumSlow / sumFast;
  // Both links are busy: chunks arrive at nearly the sum of the two rates.
  const perMs = (CHUNKS * BYTES) / clock.t;
  t.diagnostic(`in flight: slow/fast ${ratio.toFixed(3)}, slow share ${share.toFixed(3)}; served slow ${slow.served} of ${CHUNKS}; ${hedges} hedges; ${perMs.toFixed(2)} bytes/ms`);
  assert.ok(ratio > 0.15 && ratio < 0.4, `slow holder's in-flight chunks are ${ratio.toFixed(3)} of the fast one's (want ≈ 0.25)`);
  assert.ok(share > 0.12 && share < 0.3, `slow holder's share of in-flight chunks: ${share.toFixed(3)}`);
  assert.ok(perMs > 0.9 * (fast.rate + slow.rate), `delivered ${perMs.toFixed(2)} bytes/ms of a possible ${fast.rate + slow.rate}`);
  assert.ok(slow.served > 0.12 * CHUNKS && slow.served < 0.3 * CHUNKS, `slow holder served ${slow.served} of ${CHUNKS}`);
  assert.ok(hedges < CHUNKS * 0.02, `${hedges} hedged requests in steady state`);
});

test("a stalled holder's chunk is re-requested elsewhere after the hedge deadline; the late copy is discarded and the read keeps the verified one", async () => {
  const clock = new FakeClock();
  const board = new HolderBoard(clock.now);
  const stalled = new SimHolder('stalled', 4, clock);
  const other = new SimHolder('other', 4, clock);
  stalled.stalled = true;
  const good = Buffer.alloc(BYTES, 7);
  const want = sha(good);
  // The stalled holder's copy, once it comes, is as good as the other: it is dropped all the same.
  const late = Buffer.from(good);
  let sawAbort = false;
  let lateArrived = false;
  const attempt = async (c: Candidate, signal: AbortSignal): Promise<Buffer> => {
    if (c.holder === 'stalled') {
      signal.addEventListener('abort', () => (sawAbort = true), { once: true });
      // A reply already on the wire still arrives after the cancel.
      await stalled.fetch(BYTES, late, signal, true);
      lateArrived = true;
      if (sha(late) !== want) throw new Error('copy does not hash to the chunk id');
      return late;
    }
    const b = await other.fetch(BYTES, good, signal);
    if (sha(b) !== want) throw new Error('copy does not hash to the chunk id');
    return b;
  };
  const errors: string[] = [];
  const box: { result?: GatherResult<Buffer> } = {};
  void gather({
    need: 1,
    candidates: [
      { key: 'c', holder: 'stalled' },
      { key: 'c', holder: 'other' },
    ],
    board,
    bytes: BYTES,
    attempt,
    sizeOf: (b) => b.length,
    onError: (c, e) => errors.push(`${c.holder}: ${(e as Error).message}`),
    timers: clock,
  }).then((r) => (box.result = r));
  // Nothing known yet: the first in placement order is asked, and the deadline is the longest one.
  await clock.run(HEDGE_MAX_MS - 1);
  assert.equal(box.result, undefined, 'no answer before the deadline');
  assert.equal(board.view('stalled').inflight, 1);
  assert.equal(board.view('other').inflight, 0, 'no hedge before the deadline');
  await clock.run(HEDGE_MAX_MS + BYTES / other.rate);
  const result = box.result as GatherResult<Buffer> | undefined;
  assert.ok(result !== undefined, 'the hedged request answered');
  assert.equal(result.counts.hedges, 1);
  assert.equal(result.got.get('c')?.holder, 'other');
  assert.equal(sha(result.got.get('c')!.value), want);
  assert.ok(sawAbort, "the stalled holder's request was cancelled");
  assert.equal(board.view('stalled').inflight, 0, 'the cancelled request no longer counts against the stalled holder');
  // After the deadline the stalled holder is known to be slow: the next chunk goes elsewhere.
  assert.equal(board.pick(['stalled', 'other'], BYTES), 'other');
  stalled.release();
  await clock.run(clock.t + 1);
  assert.ok(lateArrived, 'the late copy arrived');
  assert.equal(result.counts.discarded, 1, 'and was discarded');
  assert.equal(sha(result.got.get('c')!.value), want, 'the read still holds the verified copy');
  assert.deepEqual(errors, [], 'a cancelled request is not a holder failure');
  // Once the estimate goes stale the holder is tried again (it may have recovered).
  clock.t += RATE_STALE_MS + 1;
  assert.equal(board.pick(['stalled', 'other'], BYTES), 'stalled');
});

test('a copy that fails verification does not win: the next holder is asked at once, not after the deadline', async () => {
  const clock = new FakeClock();
  const board = new HolderBoard(clock.now);
  const good = Buffer.alloc(BYTES, 3);
  const asked: string[] = [];
  const errors: string[] = [];
  let result: Awaited<ReturnType<typeof gather<Buffer>>> | undefined;
  void gather({
    need: 1,
    candidates: ['liar', 'honest'].map((holder) => ({ key: 'c', holder })),
    board,
    bytes: BYTES,
    attempt: async (c) => {
      asked.push(c.holder);
      if (c.holder === 'liar') throw new Error('bytes do not hash to the chunk id');
      return good;
    },
    sizeOf: (b) => b.length,
    onError: (c, e) => errors.push(`${c.holder}: ${(e as Error).message}`),
    timers: clock,
  }).then((r) => (result = r));
  await clock.run(0);
  assert.deepEqual(asked, ['liar', 'honest']);
  assert.equal(result?.got.get('c')?.holder, 'honest');
  assert.equal(result?.counts.hedges, 0);
  assert.deepEqual(errors, ['liar: bytes do not hash to the chunk id']);
});

test('every holder failing ends the gather with what it has; an abort from the caller rejects it', async () => {
  const clock = new FakeClock();
  const board = new HolderBoard(clock.now);
  const r = await gather({
    need: 1,
    candidates: ['a', 'b', 'c'].map((holder) => ({ key: 'c', holder })),
    board,
    bytes: BYTES,
    attempt: () => Promise.reject(new Error('down')),
    sizeOf: () => 0,
    timers: clock,
  });
  assert.equal(r.got.size, 0);
  for (const h of ['a', 'b', 'c']) assert.equal(board.view(h).inflight, 0);

  const ac = new AbortController();
  const p = gather({ need: 1, candidates: [{ key: 'c', holder: 'a' }], board, bytes: BYTES, attempt: () => new Promise<Buffer>(() => {}), sizeOf: () => 0, signal: ac.signal, timers: clock });
  ac.abort(new Error('client went away'));
  await assert.rejects(p, /client went away/);
  assert.equal(board.view('a').inflight, 0);
});

test('erasure-coded reads take k of k+m from the fastest holders, and hedge a stalled shard with a parity one', async () => {
  const clock = new FakeClock();
  const board = new HolderBoard(clock.now);
  // Shards 0..3 are data, 4..5 parity; the holders of data shards 1 and 2 are slow.
  const rates = [4, 1, 1, 4, 4, 4];
  const holders = rates.map((r, j) => new SimHolder(`h${j}`, r, clock));
  const candidates = holders.map((h, j) => ({ key: String(j), holder: h.name }));
  const payload = Buffer.alloc(BYTES);
  const read = async () => {
    let out: Awaited<ReturnType<typeof gather<Buffer>>> | undefined;
    void gather({ need: 4, candidates, board, bytes: BYTES, attempt: (c, s) => holders[Number(c.key)]!.fetch(BYTES, payload, s), sizeOf: (b) => b.length, timers: clock }).then((r) => (out = r));
    await clock.run(clock.t + 60_000, () => out !== undefined);
    return out!;
  };
  // Nothing measured: the data shards, in order.
  const first = await read();
  assert.deepEqual([...first.got.keys()].sort(), ['0', '1', '2', '3']);
  // Measured: the two slow holders are left out for the two parity shards.
  const later = await read();
  assert.deepEqual([...later.got.keys()].sort(), ['0', '3', '4', '5']);
  assert.equal(later.counts.hedges, 0);

  // A stalled holder of a chunk's shard: the rest wait no longer than the hedge deadline for it.
  holders[3]!.stalled = true;
  const t0 = clock.t;
  const stalledRead = await read();
  assert.equal(stalledRead.got.size, 4);
  assert.ok(!stalledRead.got.has('3'));
  assert.equal(stalledRead.counts.hedges, 1);
  assert.ok(clock.t - t0 <= HEDGE_MAX_MS + BYTES / 1, `read took ${clock.t - t0} ms of simulated time`);
  holders[3]!.release();
});

test('hedge deadlines follow the measured rate within their bounds; the board forgets idle holders beyond its limit', () => {
  let now = 0;
  const board = new HolderBoard(() => now);
  const t = board.start('a', BYTES);
  assert.equal(t.deadlineMs, HEDGE_MAX_MS, 'unknown holder: the longest deadline');
  now = 10;
  board.answered(t, BYTES);
  assert.equal(board.view('a').rate, BYTES / 10);
  assert.equal(board.start('a', BYTES).deadlineMs, HEDGE_MIN_MS, 'a fast holder: the shortest');
  const slowT = board.start('b', BYTES);
  now = 1_010;
  board.answered(slowT, BYTES);
  assert.equal(board.start('b', BYTES).deadlineMs, HEDGE_MAX_MS, '3 × 1 s is clamped');
  for (let i = 0; i < MAX_TRACKED_HOLDERS + 10; i++) board.dropped(board.start(`x${i}`, BYTES));
  assert.equal(board.view('x0').inflight, 0);
  assert.equal(board.view('a').inflight, 1, 'a holder with requests in flight is never forgotten');
});

test('a hedge that finds no copy is replaced at once; nodes that only may hold a copy are asked after its homes', async () => {
  const clock = new FakeClock();
  const board = new HolderBoard(clock.now);
  // The board has seen `elsewhere` answer fast, but placement does not put this chunk there.
  board.answered(board.start('elsewhere', BYTES), BYTES);
  const stalled = new SimHolder('stalled', 4, clock);
  stalled.stalled = true;
  const asked: string[] = [];
  const payload = Buffer.alloc(BYTES, 5);
  let out: GatherResult<Buffer> | undefined;
  void gather({
    need: 1,
    candidates: [
      { key: 'c', holder: 'stalled' },
      { key: 'c', holder: 'lost-it' },
      { key: 'c', holder: 'good' },
      { key: 'c', holder: 'elsewhere', tier: 1 },
    ],
    board,
    bytes: BYTES,
    attempt: async (c, signal) => {
      asked.push(c.holder);
      if (c.holder === 'stalled') return stalled.fetch(BYTES, payload, signal);
      if (c.holder === 'lost-it' || c.holder === 'elsewhere') throw new Error('not stored here');
      return payload;
    },
    sizeOf: (b) => b.length,
    timers: clock,
  }).then((r) => (out = r));
  await clock.run(HEDGE_MAX_MS + 1, () => out !== undefined);
  assert.equal(out?.got.get('c')?.holder, 'good');
  assert.ok(clock.t <= HEDGE_MAX_MS, `answered at ${clock.t} ms, not when the stalled request times out`);
  assert.deepEqual(asked, ['stalled', 'lost-it', 'good'], 'the node outside the placement was never asked');
  stalled.release();
});
