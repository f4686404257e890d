import { mock, test } from 'node:test';
import assert from 'node:assert/strict';
import { setImmediate as turn } from 'node:timers/promises';
import { GroupCommit } from '../../../src/tables/group-commit.js';
import { isTesseraError } from '../../../src/errors.js';

/** A group commit over arrays of numbers that records each commit; `hold` keeps a commit open until released. */
function recording(opts: { maxEntries?: number; lingerMs?: number; fail?: (jobs: readonly number[][]) => boolean } = {}) {
  const commits: number[][][] = [];
  const open: Array<() => void> = [];
  let holding = false;
  const g = new GroupCommit<number[], number>({
    commit: async (jobs) => {
      commits.push(jobs.map((j) => [...j]));
      if (holding) await new Promise<void>((r) => open.push(r));
      if (opts.fail?.(jobs)) throw new Error('disk full');
      return jobs.map((j) => j.reduce((a, b) => a + b, 0));
    },
    sizeOf: (j) => j.length,
    ...(opts.maxEntries !== undefined ? { maxEntries: opts.maxEntries } : {}),
    lingerMs: opts.lingerMs ?? 0,
  });
  return {
    g,
    commits,
    hold: () => void (holding = true),
    release: () => {
      holding = false;
      for (const r of open.splice(0)) r();
    },
  };
}

test('jobs handed over in one turn share one commit; each gets its own result, in order', async () => {
  const { g, commits } = recording();
  const results = await Promise.all([[1], [2, 3], [4]].map((j) => g.submit(j)));
  assert.deepEqual(results, [1, 5, 4]);
  assert.deepEqual(commits, [[[1], [2, 3], [4]]]);
  assert.deepEqual(g.stats, { commits: 1, jobs: 3, largest: 3 });
});

test('one commit is out at a time: jobs that arrive meanwhile go together in the next', async () => {
  const { g, commits, hold, release } = recording();
  hold();
  const first = g.submit([1]);
  await turn();
  await turn();
  assert.equal(commits.length, 1, 'the first commit has started');
  const later = [g.submit([2]), g.submit([3])];
  await turn();
  const more = g.submit([4]);
  await turn();
  assert.equal(commits.length, 1, 'nothing else starts while a commit is out');
  assert.equal(g.queued, 3);
  release();
  assert.deepEqual(await Promise.all([first, ...later, more]), [1, 2, 3, 4]);
  assert.deepEqual(commits, [[[1]], [[2], [3], [4]]]);
});

test('a group is bounded in entries; a job larger than the bound still goes, alone', async () => {
  const { g, commits } = recording({ maxEntries: 4 });
  const big = [1, 1, 1, 1, 1, 1];
  const results = await Promise.all([[1, 1], [1, 1], [1], big, [2]].map((j) => g.submit(j)));
  assert.deepEqual(results, [2, 2, 1, 6, 2]);
  assert.deepEqual(commits.map((c) => c.map((j) => j.length)), [[2, 2], [1], [6], [1]]);
  for (const c of commits) {
    const size = c.reduce((a, j) => a + j.length, 0);
    assert.ok(c.length === 1 || size <= 4, `a commit of ${c.length} jobs carried ${size} entries`);
  }
  assert.throws(() => new GroupCommit({ commit: async () => [], sizeOf: () => 1, maxEntries: 0 }), (e) => isTesseraError(e, 'BAD_INPUT'));
});

test('a failed commit fails every job in it, and the next group still commits', async () => {
  const { g, commits, hold, release } = recording({ fail: (jobs) => jobs.some((j) => j.includes(13)) });
  hold();
  const before = g.submit([1]);
  await turn();
  await turn();
  const doomed = [g.submit([2]), g.submit([13]), g.submit([3])];
  release();
  assert.equal(await before, 1);
  const settled = await Promise.allSettled(doomed);
  assert.deepEqual(settled.map((s) => s.status), ['rejected', 'rejected', 'rejected']);
  for (const s of settled) assert.match(String((s as PromiseRejectedResult).reason), /disk full/);
  assert.equal(await g.submit([5]), 5, 'the store keeps committing after a failure');
  assert.equal(commits.length, 3);
});

test('a commit that answers the wrong number of results fails its jobs; drained waits for the queue', async () => {
  const g = new GroupCommit<number, number>({ commit: async (jobs) => jobs.slice(1), sizeOf: () => 1 });
  const s = await Promise.allSettled([g.submit(1), g.submit(2)]);
  assert.ok(s.every((x) => x.status === 'rejected' && isTesseraError(x.reason, 'INTERNAL')));
  const ok = new GroupCommit<number, number>({ commit: async (jobs) => jobs, sizeOf: () => 1 });
  let done = false;
  const p = ok.submit(7).then(() => (done = true));
  await ok.drained();
  assert.equal(done, true, 'drained resolves only after queued jobs have settled');
  await p;
  await ok.drained();
});

test('after a commit of several calls the next waits its linger and gathers what comes; a lone caller never waits', async () => {
  mock.timers.enable({ apis: ['setTimeout'] });
  try {
    const { g, commits } = recording({ lingerMs: 1000 });
    assert.deepEqual(await Promise.all([g.submit([1]), g.submit([2])]), [1, 2]);
    const waiting = [g.submit([3])];
    for (let i = 0; i < 5; i++) await turn();
    waiting.push(g.submit([4]));
    for (let i = 0; i < 5; i++) await turn();
    assert.equal(commits.length, 1, 'the next commit lingers after one of two calls');
    mock.timers.tick(1000);
    assert.deepEqual(await Promise.all(waiting), [3, 4]);
    assert.deepEqual(commits, [[[1], [2]], [[3], [4]]]);

    const lone = recording({ lingerMs: 1000 });
    for (let i = 1; i <= 3; i++) assert.equal(await lone.g.submit([i]), i, 'one call per commit: no linger, no timer needed');
    assert.equal(lone.commits.length, 3);
  } finally {
    mock.timers.reset();
  }
  assert.throws(() => new GroupCommit({ commit: async () => [], sizeOf: () => 1, lingerMs: -1 }), (e) => isTesseraError(e, 'BAD_INPUT'));
});
