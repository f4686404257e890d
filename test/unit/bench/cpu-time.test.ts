import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { measureCpu, parseStatTicks, processCpuMs, reapedChildrenCpuMs } from '../../../bench/cpu-time.js';

test('cpu time: utime+stime and cutime+cstime, counted from the last parenthesis', () => {
  // Fields 14–17 are 11, 22, 33, 44; the command name holds spaces and a ')'.
  const line = '4242 (a b) c) S 1 2 3 4 5 6 7 8 9 10 11 22 33 44 20 0 1 0 100 200 300';
  assert.deepEqual(parseStatTicks(line), { self: 33, children: 77 });
  assert.throws(() => parseStatTicks('no name here'), /no command name/);
  assert.throws(() => parseStatTicks('1 (x) S 1 2'), /field 14/);
});

test('cpu time: a busy child shows up in the reaped children, and in a measured run', async () => {
  // Spins until it has used 200 ms of CPU, however busy the machine is.
  const busy = ['-e', 'const u = () => { const c = process.cpuUsage(); return c.user + c.system; }; while (u() < 200_000);'];
  const before = reapedChildrenCpuMs();
  spawnSync(process.execPath, busy);
  assert.ok(reapedChildrenCpuMs() - before >= 150, 'a child that spun for 200 ms of CPU shows at least 150 ms');
  assert.ok(processCpuMs(process.pid) > 0);
  const { result, cpuMs } = await measureCpu([], async () => {
    spawnSync(process.execPath, busy);
    return 'done';
  });
  assert.equal(result, 'done');
  assert.ok(cpuMs >= 150, `measured ${cpuMs} ms`);
});
