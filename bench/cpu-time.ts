/**
 * CPU time of processes, read from /proc: what a benchmark run cost in CPU, next to how fast it
 * ran. On a machine with two shared cores a throughput figure says little about where the limit
 * lies; CPU milliseconds per MiB (or microseconds per op), summed over client and server
 * processes, say how much work each target needs for the same job.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';

/** CPU ticks in one /proc/<pid>/stat line: the process's own, and its reaped children's. */
export interface StatTicks {
  self: number;
  children: number;
}

/**
 * Parses /proc/<pid>/stat. The command name (field 2) is in parentheses and may itself hold
 * spaces and parentheses, so fields are counted from the last ')'. utime, stime, cutime and
 * cstime are fields 14–17.
 */
export function parseStatTicks(stat: string): StatTicks {
  const close = stat.lastIndexOf(')');
  if (close < 0) throw new Error('not a /proc stat line: no command name');
  // After ") " come field 3 (state) onwards; field n sits at index n - 3.
  const f = stat.slice(close + 2).trim().split(/\s+/);
  const at = (n: number) => {
    const v = Number(f[n - 3]);
    if (!Number.isSafeInteger(v) || v < 0) throw new Error(`not a /proc stat line: field ${n} is '${f[n - 3] ?? ''}'`);
    return v;
  };
  return { self: at(14) + at(15), children: at(16) + at(17) };
}

let ticksPerSecond: number | undefined;
function tickMs(): number {
  ticksPerSecond ??= Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  return 1000 / ticksPerSecond;
}

/** CPU milliseconds a running process has used so far. */
export function processCpuMs(pid: number): number {
  return parseStatTicks(readFileSync(`/proc/${pid}/stat`, 'utf8')).self * tickMs();
}

/** CPU microseconds this process has used so far (user plus system). */
export function ownCpuMicros(): number {
  const u = process.cpuUsage();
  return u.user + u.system;
}

/** CPU milliseconds used by this process's children that have exited and been waited for. */
export function reapedChildrenCpuMs(): number {
  return parseStatTicks(readFileSync('/proc/self/stat', 'utf8')).children * tickMs();
}

/**
 * CPU of one measured run: the servers' processes (by pid) plus every client process this
 * process started and reaped during it (nbdcopy, fio).
 */
export async function measureCpu<T>(serverPids: readonly number[], run: () => Promise<T>): Promise<{ result: T; cpuMs: number }> {
  const servers = () => serverPids.reduce((sum, pid) => sum + processCpuMs(pid), 0);
  const s0 = servers();
  const c0 = reapedChildrenCpuMs();
  const result = await run();
  return { result, cpuMs: servers() - s0 + reapedChildrenCpuMs() - c0 };
}

/** Busy ticks in /proc/stat's first line (all cores): every state but idle and iowait. */
export function parseMachineBusyTicks(line: string): number {
  const f = line.trim().split(/\s+/);
  if (f[0] !== 'cpu') throw new Error(`not a /proc/stat cpu line: '${line.slice(0, 80)}'`);
  const v = f.slice(1, 9).map(Number);
  if (v.length < 5 || v.some((x) => !Number.isSafeInteger(x) || x < 0)) throw new Error(`not a /proc/stat cpu line: '${line.slice(0, 80)}'`);
  return v.reduce((a, b) => a + b, 0) - v[3]! - v[4]!;
}

/**
 * Busy CPU milliseconds of the whole machine so far, all cores together. Beside a benchmark's
 * own processes it says whether the cores were free: on a shared machine a run can be starved
 * by others while its own CPU stays low.
 */
export function machineBusyMs(): number {
  return parseMachineBusyTicks(readFileSync('/proc/stat', 'utf8').split('\n', 1)[0] ?? '') * tickMs();
}

/** User and system CPU ticks of one /proc stat line (fields 14 and 15), and the command name. */
export function parseStatSplit(stat: string): { name: string; user: number; system: number } {
  const open = stat.indexOf('(');
  const close = stat.lastIndexOf(')');
  if (open < 0 || close < open) throw new Error('not a /proc stat line: no command name');
  const f = stat.slice(close + 2).trim().split(/\s+/);
  const at = (n: number) => {
    const v = Number(f[n - 3]);
    if (!Number.isSafeInteger(v) || v < 0) throw new Error(`not a /proc stat line: field ${n} is '${f[n - 3] ?? ''}'`);
    return v;
  };
  return { name: stat.slice(open + 1, close), user: at(14), system: at(15) };
}

/** User and system CPU ms a running process has used so far. */
export function processCpuSplitMs(pid: number): { user: number; system: number } {
  const s = parseStatSplit(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  return { user: s.user * tickMs(), system: s.system * tickMs() };
}

/**
 * User and system CPU ms of a process's threads so far: the main thread's (`main`, the event loop)
 * and the rest's, summed by thread name (Node 20 names them all `node`, so worker threads, libuv's
 * pool and V8's helpers come out together as `other threads`). Threads that ended before the call
 * are not counted.
 */
export function threadCpuMs(pid: number): Map<string, { user: number; system: number }> {
  const out = new Map<string, { user: number; system: number }>();
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const tid of tids) {
    let s;
    try {
      s = parseStatSplit(readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8'));
    } catch {
      continue;
    }
    // Node names every thread after the process; only the main thread is told apart then.
    const name = tid === String(pid) ? 'main' : s.name === 'node' ? 'other threads' : s.name;
    const t = out.get(name) ?? { user: 0, system: 0 };
    t.user += s.user * tickMs();
    t.system += s.system * tickMs();
    out.set(name, t);
  }
  return out;
}
