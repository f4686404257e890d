import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PutWindow } from '../../../src/files/put-window.js';

test('put window: slots hold back the source until a job ends; the first failure aborts the rest and drain throws it', async () => {
  const w = new PutWindow('self', 2);
  assert.deepEqual([...w.touched], ['self']);
  assert.match(w.upload, /^[0-9a-f]{32}$/);
  await w.acquire();
  await w.acquire();
  let third = false;
  const waiting = w.acquire().then(() => (third = true));
  let release!: () => void;
  w.launch(() => new Promise<void>((r) => (release = r)), 2);
  await new Promise((r) => setImmediate(r));
  assert.equal(third, false, 'no slot free while the job holds both');
  release();
  await waiting;
  assert.equal(third, true);

  const boom = new Error('holder refused');
  let sawAbort: unknown;
  w.launch(() => new Promise<void>((_, reject) => w.signal.addEventListener('abort', () => reject(w.signal.reason), { once: true })).catch((e: unknown) => { sawAbort = e; throw e; }));
  w.launch(() => Promise.reject(boom));
  await assert.rejects(w.drain(), (e) => e === boom);
  assert.equal(sawAbort, boom, 'the other job was aborted with the first failure');
  assert.equal(await w.fail(new Error('later')), boom, 'the put fails with the first error');
  w.close();
});

test("put window: the caller's abort cancels it with the caller's reason; a closed window stops following", async () => {
  const outer = new AbortController();
  const w = new PutWindow('self', 1, outer.signal);
  outer.abort();
  assert.ok(w.signal.aborted);
  assert.equal(w.signal.reason, outer.signal.reason);
  w.close();
  const outer2 = new AbortController();
  const w2 = new PutWindow('self', 1, outer2.signal);
  w2.close();
  outer2.abort(new Error('gone'));
  assert.equal(w2.signal.aborted, false, 'a closed window no longer follows the caller');
});
