import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { machineBusyMs, measureCpu, parseMachineBusyTicks, parseStatTicks, processCpuMs, reapedChildrenCpuMs } from '../../../bench/cpu-time.js';

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

test('machine busy time: every state but idle and iowait, summed over the cores; it only grows', () => {
  // user nice system idle iowait irq softirq steal guest guest_nice
  assert.equal(parseMachineBusyTicks('cpu  100 5 50 1000 40 3 2 1 0 0'), 161);
  assert.throws(() => parseMachineBusyTicks('cpu0 1 2 3 4 5'), /not a \/proc\/stat cpu line/);
  assert.throws(() => parseMachineBusyTicks('cpu  1 2 x 4 5'), /not a \/proc\/stat cpu line/);
  const a = machineBusyMs();
  assert.ok(a > 0);
  assert.ok(machineBusyMs() >= a);
});
