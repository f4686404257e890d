/**
 * `npm run bench -- nbd [--size 256M] [--runtime 10] [--reps 3]`: block volumes served by a
 * `tessera nbd` master over 4 loopback storage nodes (raid0, raid1, raid5), against `nbdkit memory`
 * started in the same run. Sequential write/read with nbdcopy (1 connection, 16 requests) and
 * 4K random IOPS with fio's nbd engine at QD 32; prints each figure and its ratio to nbdkit, which
 * runs before and after every tessera run of the same workload.
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
import { bracketingBaselines, median } from './bench-stats.js';

const MiB = 1 << 20;
const TOOL_TIMEOUT_MS = 600_000;
/** Bounds every run however the arguments are set. */
const MAX_RUNTIME_S = 120;
const MAX_REPS = 10;
const DEFAULT_REPS = 3;

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

const WORKLOADS = ['seqWrite', 'seqRead', 'randWrite', 'randRead'] as const;
type Workload = (typeof WORKLOADS)[number];
type Figures = Record<Workload, number>;
type Series = Record<Workload, number[]>;
const series = (): Series => ({ seqWrite: [], seqRead: [], randWrite: [], randRead: [] });

const COPY = ['--connections=1', '--requests=16'];

/** One run of one workload: MiB/s for the sequential ones, IOPS for the random ones. */
async function runWorkload(w: Workload, uri: string, src: string, size: number, runtime: number): Promise<number> {
  switch (w) {
    case 'seqWrite':
      return size / MiB / await timed(() => exec('nbdcopy', [...COPY, '--flush', src, uri]));
    case 'seqRead':
      return size / MiB / await timed(() => exec('nbdcopy', [...COPY, '--no-extents', uri, 'null:']));
    case 'randWrite':
      return fioIops(uri, 'randwrite', size, runtime);
    case 'randRead':
      return fioIops(uri, 'randread', size, runtime);
  }
}

export async function main(args: string[]): Promise<void> {
  const { values } = parseArgs({ args, options: { size: { type: 'string', default: '256M' }, runtime: { type: 'string', default: '10' }, reps: { type: 'string', default: String(DEFAULT_REPS) } } });
  const size = parseSize(values.size!, '--size');
  const runtime = Math.min(MAX_RUNTIME_S, Math.max(1, Number(values.runtime)));
  const reps = Math.min(MAX_REPS, Math.max(1, Number(values.reps)));
  const dir = await mkdtemp(join(tmpdir(), 'bench-nbd-'));
  const src = join(dir, 'src');
  await writeFile(src, randomBytes(size));
  const baseline = series();
  const volumes: Array<{ name: string; uri: string; runs: Series; ratios: Series }> = [];

  const port = await freePort();
  const nbdkit = spawn('nbdkit', ['--foreground', '--exit-with-parent', '-i', '127.0.0.1', '-p', String(port), 'memory', String(size)], { stdio: 'ignore' });
  let cluster: VolumeCluster | undefined;
  try {
    const kitUri = `nbd://127.0.0.1:${port}/`;
    await waitFor('nbdkit to listen', 20_000, async () => { await exec('nbdinfo', ['--size', kitUri]); return true; });
    cluster = await VolumeCluster.create({ storage: 4 });
    const layouts = [['raid0', [0, 1, 2, 3]], ['raid1', [0, 1]], ['raid5', [0, 1, 2, 3]]] as const;
    for (const [layout, nodes] of layouts) {
      await cluster.createVolume(`b-${layout}`, layout, size, [...nodes]);
      await cluster.waitOpen(`b-${layout}`);
      volumes.push({ name: `tessera ${layout} (${nodes.length} nodes)`, uri: cluster.uri(`b-${layout}`), runs: series(), ratios: series() });
    }
    process.stdout.write(`nbd bench: ${size / MiB} MiB, fio ${runtime} s per run, ${reps} rep(s); nbdcopy --connections=1 --requests=16; fio 4k QD 32\n`);
    // One untimed pass allocates whatever each target allocates lazily.
    for (const uri of [kitUri, ...volumes.map((v) => v.uri)]) await exec('nbdcopy', [...COPY, src, uri]);
    // nbdkit runs before and after every tessera run of the same workload: the machine's speed
    // drifts by up to 2x between minutes, and each ratio is taken against its own neighbours.
    for (let rep = 0; rep < reps; rep++) {
      for (const w of WORKLOADS) {
        const base = [await runWorkload(w, kitUri, src, size, runtime)];
        for (const v of volumes) {
          v.runs[w].push(await runWorkload(w, v.uri, src, size, runtime));
          base.push(await runWorkload(w, kitUri, src, size, runtime));
        }
        const bases = bracketingBaselines(base, volumes.length);
        volumes.forEach((v, i) => v.ratios[w].push(bases[i]! > 0 ? v.runs[w].at(-1)! / bases[i]! : 0));
        baseline[w].push(...base);
      }
    }
  } finally {
    nbdkit.kill('SIGTERM');
    await cluster?.destroy();
    await rm(dir, { recursive: true, force: true });
  }

  const medians = (s: Series) => Object.fromEntries(WORKLOADS.map((w) => [w, median(s[w])])) as Figures;
  const cell = (w: Workload, value: number, ratio: number) => `${w.startsWith('seq') ? `${value.toFixed(0)} MiB/s` : Math.round(value)} (${ratio.toFixed(2)}×)`;
  const widths: Figures = { seqWrite: 22, seqRead: 22, randWrite: 18, randRead: 0 };
  const row = (name: string, text: (w: Workload) => string) => [name.padEnd(26), ...WORKLOADS.map((w) => text(w).padEnd(widths[w]))].join(' ').trimEnd();
  const kit = medians(baseline);
  const heads: Record<Workload, string> = { seqWrite: 'seq write', seqRead: 'seq read', randWrite: 'rand write IOPS', randRead: 'rand read IOPS' };
  const lines = [
    row('target', (w) => heads[w]),
    row('nbdkit memory', (w) => cell(w, kit[w], 1)),
    ...volumes.map((v) => {
      const f = medians(v.runs);
      const r = medians(v.ratios);
      return row(v.name, (w) => cell(w, f[w], r[w]));
    }),
  ];
  process.stdout.write(lines.join('\n') + '\n');
  process.stdout.write(`figures are medians over ${reps} rep(s); a ratio is each run against the mean of the nbdkit runs just before and after it, then the median\n`);
  process.stdout.write('nbdkit range: ' + WORKLOADS.map((w) => `${w} ${Math.round(Math.min(...baseline[w]))}–${Math.round(Math.max(...baseline[w]))}`).join(', ') + '\n');
  process.stdout.write('goals: sequential ≥ 0.40× nbdkit memory, random 4K ≥ 0.30×\n');
}
