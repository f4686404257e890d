/**
 * `npm run bench -- nbd [--size 256M] [--runtime 10] [--reps 1]`: block volumes served by a
 * `tessera nbd` master over 4 loopback storage nodes (raid0, raid1, raid5), against `nbdkit memory`
 * started in the same run. Sequential write/read with nbdcopy (1 connection, 16 requests) and
 * 4K random IOPS with fio's nbd engine at QD 32; prints each figure and its ratio to nbdkit.
 * Goals: sequential ≥ 0.4× nbdkit memory, random 4K ≥ 0.3×.
 */
import { spawn, execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { freePort, waitFor } from '../src/cli/local-cluster.js';
import { parseSize } from '../src/cli/format.js';
import { VolumeCluster } from '../test/integration/volume-harness.js';
import { median } from './bench-stats.js';

const MiB = 1 << 20;
const TOOL_TIMEOUT_MS = 600_000;
/** Bounds every run however the arguments are set. */
const MAX_RUNTIME_S = 120;
const MAX_REPS = 10;

interface Figures { seqWrite: number; seqRead: number; randWrite: number; randRead: number }

function exec(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: TOOL_TIMEOUT_MS, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(' ')}: ${err.message}\n${stderr}`));
      else resolve(stdout);
    });
  });
}

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t0 = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t0) / 1e9;
}


async function fioIops(uri: string, rw: 'randwrite' | 'randread', size: number, runtime: number): Promise<number> {
  const out = await exec('fio', [
    `--name=${rw}`, '--ioengine=nbd', `--uri=${uri}`, `--rw=${rw}`, '--bs=4k', '--iodepth=32', `--size=${size}`,
    '--time_based', `--runtime=${runtime}`, '--output-format=json',
  ]);
  const job = (JSON.parse(out.slice(out.indexOf('{'))) as { jobs: Array<Record<'read' | 'write', { iops: number }>> }).jobs[0];
  return Math.round(job?.[rw === 'randwrite' ? 'write' : 'read'].iops ?? 0);
}

async function measure(uri: string, src: string, size: number, runtime: number, reps: number): Promise<Figures> {
  const copy = ['--connections=1', '--requests=16'];
  // One untimed pass allocates whatever the target allocates lazily.
  await exec('nbdcopy', [...copy, src, uri]);
  const w: number[] = [], r: number[] = [], rw: number[] = [], rr: number[] = [];
  for (let i = 0; i < reps; i++) {
    w.push(size / MiB / await timed(() => exec('nbdcopy', [...copy, '--flush', src, uri])));
    r.push(size / MiB / await timed(() => exec('nbdcopy', [...copy, '--no-extents', uri, 'null:'])));
    rw.push(await fioIops(uri, 'randwrite', size, runtime));
    rr.push(await fioIops(uri, 'randread', size, runtime));
  }
  return { seqWrite: median(w), seqRead: median(r), randWrite: median(rw), randRead: median(rr) };
}

export async function main(args: string[]): Promise<void> {
  const { values } = parseArgs({ args, options: { size: { type: 'string', default: '256M' }, runtime: { type: 'string', default: '10' }, reps: { type: 'string', default: '1' } } });
  const size = parseSize(values.size!, '--size');
  const runtime = Math.min(MAX_RUNTIME_S, Math.max(1, Number(values.runtime)));
  const reps = Math.min(MAX_REPS, Math.max(1, Number(values.reps)));
  const dir = await mkdtemp(join(tmpdir(), 'bench-nbd-'));
  const src = join(dir, 'src');
  await writeFile(src, randomBytes(size));
  const results = new Map<string, Figures>();

  const port = await freePort();
  const nbdkit = spawn('nbdkit', ['--foreground', '--exit-with-parent', '-i', '127.0.0.1', '-p', String(port), 'memory', String(size)], { stdio: 'ignore' });
  let cluster: VolumeCluster | undefined;
  try {
    const kitUri = `nbd://127.0.0.1:${port}/`;
    await waitFor('nbdkit to listen', 20_000, async () => { await exec('nbdinfo', ['--size', kitUri]); return true; });
    process.stdout.write(`nbd bench: ${size / MiB} MiB, fio ${runtime} s per run, ${reps} rep(s); nbdcopy --connections=1 --requests=16; fio 4k QD 32\n`);
    results.set('nbdkit memory', await measure(kitUri, src, size, runtime, reps));

    cluster = await VolumeCluster.create({ storage: 4 });
    const layouts = [['raid0', [0, 1, 2, 3]], ['raid1', [0, 1]], ['raid5', [0, 1, 2, 3]]] as const;
    for (const [layout, nodes] of layouts) {
      await cluster.createVolume(`b-${layout}`, layout, size, [...nodes]);
      await cluster.waitOpen(`b-${layout}`);
      results.set(`tessera ${layout} (${nodes.length} nodes)`, await measure(cluster.uri(`b-${layout}`), src, size, runtime, reps));
    }
  } finally {
    nbdkit.kill('SIGTERM');
    await cluster?.destroy();
    await rm(dir, { recursive: true, force: true });
  }

  const base = results.get('nbdkit memory') as Figures;
  const ratio = (v: number, b: number) => (b > 0 ? `${(v / b).toFixed(2)}×` : '-');
  const rows = [...results].map(([name, f]) => [
    name.padEnd(26),
    `${f.seqWrite.toFixed(0)} MiB/s (${ratio(f.seqWrite, base.seqWrite)})`.padEnd(22),
    `${f.seqRead.toFixed(0)} MiB/s (${ratio(f.seqRead, base.seqRead)})`.padEnd(22),
    `${f.randWrite} (${ratio(f.randWrite, base.randWrite)})`.padEnd(18),
    `${f.randRead} (${ratio(f.randRead, base.randRead)})`,
  ].join(' '));
  process.stdout.write(['target'.padEnd(26) + ' ' + 'seq write'.padEnd(22) + ' ' + 'seq read'.padEnd(22) + ' ' + 'rand write IOPS'.padEnd(18) + ' rand read IOPS', ...rows].join('\n') + '\n');
  process.stdout.write('goals: sequential ≥ 0.40× nbdkit memory, random 4K ≥ 0.30×\n');
}
