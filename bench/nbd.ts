/**
 * `npm run bench -- nbd [--size 256M] [--runtime 10] [--reps 3]`: block volumes served by a
 * `tessera nbd` master over 4 loopback storage nodes (raid0, raid1, raid5), against `nbdkit memory`
 * started in the same run. Sequential write/read with nbdcopy (1 connection, 16 requests) and
 * 4K random IOPS with fio's nbd engine at QD 32; prints each figure and its ratio to nbdkit, which
 * runs before and after every tessera run of the same workload. Each run's CPU time (client plus
 * server processes) is printed per MiB or per op, so the figures say where the machine's two
 * cores go, not only how fast the run was; for each volume it is also split between the master,
 * each of the volume's member nodes and the client, since a 4K random op costs the members
 * together about as much as the master. The master inherits this process's environment, so
 * `TESSERA_SEAL_WORKERS=N npm run bench -- nbd` compares sealing on worker threads with in line,
 * and `TESSERA_NATIVE_SEAL=off` libsodium with the native sealer.
 * A second peer, where QEMU is installed: the quorum mirror of `qemu-mirror.ts` (two qemu-nbd
 * children over TLS), the off-the-shelf counterpart of a raid1 volume; each tessera volume's
 * figure is also given against it, run for run.
 * Goals: sequential ≥ 0.4× nbdkit memory, random 4K ≥ 0.3×; raid1 ≥ 1.3× the mirror sequential
 * and ≥ 5× random; raid0 sequential ≥ 0.35× nbdkit memory.
 */
import { spawn, execFile } from 'node:child_process';
import { createCipheriv, randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { freePort, waitFor } from '../src/cli/local-cluster.js';
import { parseSize } from '../src/cli/format.js';
import { VolumeCluster } from '../test/integration/volume-harness.js';
import { bracketingBaselines, median } from './bench-stats.js';
import { measureCpu, processCpuMs, reapedChildrenCpuMs } from './cpu-time.js';
import { haveProgram, QEMU_NBD, QEMU_STORAGE_DAEMON, startQemuMirror, type QemuMirror } from './qemu-mirror.js';
import { deriveVolumeKey, SectorSealer, SECTOR_BYTES, SEALED_SECTOR_BYTES } from '../src/block/volume/seal.js';
import { NATIVE_SEAL_ENV, sectorAead, sectorAeadStatus } from '../src/block/volume/sector-aead.js';
import { DEFAULT_SEAL_WORKERS } from '../src/block/volume/seal-pool.js';
import { SEAL_WORKERS_ENV, sealWorkersFromEnv } from '../src/block/master.js';

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

/** A run's speed (MiB/s or IOPS) and the work it did (MiB or ops). */
interface Run {
  rate: number;
  work: number;
}

async function fioRun(uri: string, rw: 'randwrite' | 'randread', size: number, runtime: number): Promise<Run> {
  const out = await exec('fio', [
    `--name=${rw}`, '--ioengine=nbd', `--uri=${uri}`, `--rw=${rw}`, '--bs=4k', '--iodepth=32', `--size=${size}`,
    '--time_based', `--runtime=${runtime}`, '--output-format=json',
  ]);
  const job = (JSON.parse(out.slice(out.indexOf('{'))) as { jobs: Array<Record<'read' | 'write', { iops: number; total_ios: number }>> }).jobs[0];
  const side = job?.[rw === 'randwrite' ? 'write' : 'read'];
  return { rate: Math.round(side?.iops ?? 0), work: side?.total_ios ?? 0 };
}

const WORKLOADS = ['seqWrite', 'seqRead', 'randWrite', 'randRead'] as const;
type Workload = (typeof WORKLOADS)[number];
type Figures = Record<Workload, number>;
type Series = Record<Workload, number[]>;
const series = (): Series => ({ seqWrite: [], seqRead: [], randWrite: [], randRead: [] });

const COPY = ['--connections=1', '--requests=16'];
const LAYOUTS = [['raid0', [0, 1, 2, 3]], ['raid1', [0, 1]], ['raid5', [0, 1, 2, 3]]] as const;

/** A comma-separated choice among `all`, in the order given. */
function pick<T extends string>(flag: string, value: string, all: readonly T[]): T[] {
  const chosen = value.split(',').map((x) => x.trim()).filter((x) => x !== '');
  const bad = chosen.filter((x) => !(all as readonly string[]).includes(x));
  if (bad.length > 0 || chosen.length === 0) throw new Error(`${flag} takes a comma-separated list of ${all.join(', ')}; got '${value}'`);
  return chosen as T[];
}
/** Sectors sealed and opened in process to show what the encryption alone costs. */
const SEAL_SAMPLE_SECTORS = 16_384;

/** CPU milliseconds per MiB of `fn` sealing `bytes` per call, over SEAL_SAMPLE_SECTORS sectors' worth. */
function cipherMsPerMiB(bytes: number, fn: (i: number) => void): number {
  const calls = (SEAL_SAMPLE_SECTORS * SECTOR_BYTES) / bytes;
  const cpu = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1000; };
  const t = cpu();
  for (let i = 0; i < calls; i++) fn(i);
  return (cpu() - t) / ((calls * bytes) / MiB);
}

/** CPU ms per MiB to seal and to open 4 KiB sectors in runs of `run` sectors, with `s`'s sealer (native or libsodium). */
function sealerCost(s: SectorSealer, run: number): { seal: number; open: number } {
  const plain = randomBytes(run * SECTOR_BYTES);
  const recs = Array.from({ length: SEAL_SAMPLE_SECTORS / run }, () => Buffer.alloc(run * SEALED_SECTOR_BYTES));
  const versions = new Float64Array(run);
  s.mirrored(false);
  // Each run's record buffer goes back to the pool once copied out, as a write's does once acknowledged.
  const seal = cipherMsPerMiB(run * SECTOR_BYTES, (i) => {
    const r = s.sealRun(plain, i * run, () => i * run + 1);
    (r.rec as Buffer).copy(recs[i]!);
    s.written(r);
  });
  const open = cipherMsPerMiB(run * SECTOR_BYTES, (i) => {
    s.openInPlace(recs[i]!, i * run, run, versions);
    if (versions[0] !== i * run + 1) throw new Error('a sealed sector did not open');
  });
  return { seal, open };
}

/**
 * The master's sealing work alone, in this process: CPU ms per MiB to seal and to open (verify and
 * decrypt) 4 KiB sectors, one sector per call (a 4K random op) and 16 per call (a 64 KiB unit
 * piece), with the native sealer (OpenSSL, when built) and with libsodium. Beside it, AES-256-GCM
 * through node:crypto, one cipher object per sector as a sealed record would need and one per
 * 64 KiB as a bound on what that cipher itself costs (docs/security.md, "Cipher").
 */
function sealCost(): { sealer: string; native: { one: { seal: number; open: number }; run: { seal: number; open: number } } | undefined; sodium: { one: { seal: number; open: number }; run: { seal: number; open: number } }; gcmSectorMsPerMiB: number; gcm64kMsPerMiB: number } {
  const id = '0123456789abcdef';
  const key = deriveVolumeKey(randomBytes(32), id);
  const aead = sectorAead();
  const sodium = new SectorSealer(key, id, undefined, null);
  const native = aead !== undefined ? new SectorSealer(key, id, undefined, aead) : undefined;
  const iv = Buffer.alloc(12);
  const aad = Buffer.alloc(16);
  const gcm = (data: Buffer) => (i: number) => {
    iv.writeUInt32BE(i, 8);
    const c = createCipheriv('aes-256-gcm', key, iv);
    c.setAAD(aad);
    c.update(data);
    c.final();
    c.getAuthTag();
  };
  const gcmSectorMsPerMiB = cipherMsPerMiB(SECTOR_BYTES, gcm(randomBytes(SECTOR_BYTES)));
  const gcm64kMsPerMiB = cipherMsPerMiB(64 << 10, gcm(randomBytes(64 << 10)));
  return {
    sealer: sectorAeadStatus().native ? 'native (OpenSSL)' : `libsodium (${sectorAeadStatus().detail})`,
    native: native !== undefined ? { one: sealerCost(native, 1), run: sealerCost(native, 16) } : undefined,
    sodium: { one: sealerCost(sodium, 1), run: sealerCost(sodium, 16) },
    gcmSectorMsPerMiB,
    gcm64kMsPerMiB,
  };
}

/** One run of one workload: MiB/s for the sequential ones, IOPS for the random ones. */
async function runWorkload(w: Workload, uri: string, src: string, size: number, runtime: number): Promise<Run> {
  const mib = size / MiB;
  switch (w) {
    case 'seqWrite':
      return { rate: mib / await timed(() => exec('nbdcopy', [...COPY, '--flush', src, uri])), work: mib };
    case 'seqRead':
      return { rate: mib / await timed(() => exec('nbdcopy', [...COPY, '--no-extents', uri, 'null:'])), work: mib };
    case 'randWrite':
      return fioRun(uri, 'randwrite', size, runtime);
    case 'randRead':
      return fioRun(uri, 'randread', size, runtime);
  }
}

/**
 * A target under test: its NBD URI, the server processes whose CPU counts, and what its runs gave.
 * CPU is milliseconds per MiB for sequential runs and microseconds per op for random ones.
 */
interface Target {
  name: string;
  uri: string;
  pids: () => number[];
  runs: Series;
  cpu: Series;
  /** A tessera volume's share of `cpu` per process: the master, the member nodes together, the client. */
  parts?: Parts;
}

interface Parts {
  master: () => number | undefined;
  members: () => number[];
  cpu: Record<'master' | 'members' | 'client', Series>;
}

/** CPU milliseconds so far of the master, of the member nodes together, and of the reaped clients. */
function partsCpuMs(p: Parts): { master: number; members: number; client: number } {
  const m = p.master();
  return {
    master: m !== undefined ? processCpuMs(m) : 0,
    members: p.members().reduce((a, pid) => a + processCpuMs(pid), 0),
    client: reapedChildrenCpuMs(),
  };
}

async function measure(t: Target, w: Workload, src: string, size: number, runtime: number): Promise<number> {
  const parts0 = t.parts !== undefined ? partsCpuMs(t.parts) : undefined;
  const { result, cpuMs } = await measureCpu(t.pids(), () => runWorkload(w, t.uri, src, size, runtime));
  const perWork = (ms: number) => (result.work > 0 ? (w.startsWith('seq') ? ms : ms * 1000) / result.work : 0);
  t.runs[w].push(result.rate);
  t.cpu[w].push(perWork(cpuMs));
  if (t.parts !== undefined && parts0 !== undefined) {
    const now = partsCpuMs(t.parts);
    for (const k of ['master', 'members', 'client'] as const) t.parts.cpu[k][w].push(perWork(now[k] - parts0[k]));
  }
  return result.rate;
}

export async function main(args: string[]): Promise<void> {
  const { values } = parseArgs({ args, options: {
    size: { type: 'string', default: '256M' }, runtime: { type: 'string', default: '10' }, reps: { type: 'string', default: String(DEFAULT_REPS) },
    layouts: { type: 'string', default: LAYOUTS.map(([l]) => l).join(',') }, workloads: { type: 'string', default: WORKLOADS.join(',') },
    mirror: { type: 'string', default: 'on' }, profile: { type: 'string' },
  } });
  const size = parseSize(values.size!, '--size');
  const layouts = pick('--layouts', values.layouts!, LAYOUTS.map(([l]) => l)).map((l) => LAYOUTS.find(([n]) => n === l)!);
  const workloads = pick('--workloads', values.workloads!, WORKLOADS);
  if (values.mirror !== 'on' && values.mirror !== 'off') throw new Error(`--mirror is on or off, got '${values.mirror}'`);
  const runtime = Math.min(MAX_RUNTIME_S, Math.max(1, Number(values.runtime)));
  const reps = Math.min(MAX_REPS, Math.max(1, Number(values.reps)));
  const dir = await mkdtemp(join(tmpdir(), 'bench-nbd-'));
  const src = join(dir, 'src');
  await writeFile(src, randomBytes(size));
  const port = await freePort();
  const nbdkit = spawn('nbdkit', ['--foreground', '--exit-with-parent', '-i', '127.0.0.1', '-p', String(port), 'memory', String(size)], { stdio: 'ignore' });
  const kit: Target = { name: 'nbdkit memory', uri: `nbd://127.0.0.1:${port}/`, pids: () => [nbdkit.pid!], runs: series(), cpu: series() };
  const volumes: Target[] = [];
  /** The volumes, then the qemu mirror where it runs. */
  const targets: Target[] = [];
  const ratios = new Map<Target, Series>();
  const againstMirror = new Map<Target, Series>();
  let cluster: VolumeCluster | undefined;
  let mirror: QemuMirror | undefined;
  let peer: Target | undefined;
  try {
    await waitFor('nbdkit to listen', 20_000, async () => { await exec('nbdinfo', ['--size', kit.uri]); return true; });
    // --profile DIR: every cluster process writes a V8 CPU profile there when it stops.
    const c = await VolumeCluster.create({ storage: 4, ...(values.profile !== undefined ? { execArgv: ['--cpu-prof', `--cpu-prof-dir=${values.profile}`] } : {}) });
    cluster = c;
    // Every process of the cluster counts, members or not: they are the system under test.
    const clusterPids = () => [c.master.proc, ...c.storage.nodes.map((n) => n.proc)].map((p) => p?.pid).filter((p): p is number => p !== undefined);
    for (const [layout, nodes] of layouts) {
      await c.createVolume(`b-${layout}`, layout, size, [...nodes]);
      await c.waitOpen(`b-${layout}`);
      const v: Target = {
        name: `tessera ${layout} (${nodes.length} nodes)`, uri: c.uri(`b-${layout}`), pids: clusterPids, runs: series(), cpu: series(),
        parts: {
          master: () => c.master.proc?.pid,
          members: () => nodes.map((i) => c.storage.nodes[i]?.proc?.pid).filter((p): p is number => p !== undefined),
          cpu: { master: series(), members: series(), client: series() },
        },
      };
      volumes.push(v);
      ratios.set(v, series());
      againstMirror.set(v, series());
    }
    if (values.mirror === 'off') {
      // Left out on request.
    } else if (await haveProgram(QEMU_STORAGE_DAEMON) && await haveProgram(QEMU_NBD)) {
      const m = await startQemuMirror(dir, size);
      mirror = m;
      peer = { name: 'qemu quorum mirror, TLS', uri: m.uri, pids: m.pids, runs: series(), cpu: series() };
    } else {
      process.stdout.write(`${QEMU_STORAGE_DAEMON} or ${QEMU_NBD} is not installed: the qemu quorum mirror is left out\n`);
    }
    targets.push(...volumes);
    if (peer) {
      targets.push(peer);
      ratios.set(peer, series());
    }
    const workers = sealWorkersFromEnv(process.env[SEAL_WORKERS_ENV]) ?? DEFAULT_SEAL_WORKERS;
    process.stdout.write(`nbd bench: ${size / MiB} MiB, fio ${runtime} s per run, ${reps} rep(s); nbdcopy --connections=1 --requests=16; fio 4k QD 32; the master seals with ${sectorAeadStatus().native ? 'the native sealer' : 'libsodium'} (${NATIVE_SEAL_ENV}), runs of 64 KiB+ on ${workers} worker thread(s) (${SEAL_WORKERS_ENV})\n`);
    // One untimed pass allocates whatever each target allocates lazily.
    for (const t of [kit, ...targets]) await exec('nbdcopy', [...COPY, src, t.uri]);
    // nbdkit runs before and after every tessera run of the same workload: the machine's speed
    // drifts by up to 2x between minutes, and each ratio is taken against its own neighbours.
    for (let rep = 0; rep < reps; rep++) {
      for (const w of workloads) {
        const base = [await measure(kit, w, src, size, runtime)];
        for (const v of targets) {
          await measure(v, w, src, size, runtime);
          base.push(await measure(kit, w, src, size, runtime));
        }
        const bases = bracketingBaselines(base, targets.length);
        targets.forEach((v, i) => ratios.get(v)![w].push(bases[i]! > 0 ? v.runs[w].at(-1)! / bases[i]! : 0));
        if (peer) for (const v of volumes) againstMirror.get(v)![w].push(v.runs[w].at(-1)! / Math.max(1e-9, peer.runs[w].at(-1)!));
      }
    }
  } finally {
    nbdkit.kill('SIGTERM');
    mirror?.stop();
    await cluster?.destroy();
    await rm(dir, { recursive: true, force: true });
  }

  const medians = (s: Series) => Object.fromEntries(workloads.map((w) => [w, median(s[w])])) as Figures;
  const cell = (w: Workload, value: number, ratio: number) => `${w.startsWith('seq') ? `${value.toFixed(0)} MiB/s` : Math.round(value)} (${ratio.toFixed(2)}×)`;
  const cpuCell = (w: Workload, value: number, kitValue: number) => `${value.toFixed(w.startsWith('seq') ? 2 : 0)} (${(value / kitValue).toFixed(1)}×)`;
  const widths: Figures = { seqWrite: 22, seqRead: 22, randWrite: 18, randRead: 0 };
  const row = (name: string, text: (w: Workload) => string) => [name.padEnd(26), ...workloads.map((w) => text(w).padEnd(widths[w]))].join(' ').trimEnd();
  const kitRate = medians(kit.runs);
  const kitCpu = medians(kit.cpu);
  const heads: Record<Workload, string> = { seqWrite: 'seq write', seqRead: 'seq read', randWrite: 'rand write IOPS', randRead: 'rand read IOPS' };
  const cpuHeads: Record<Workload, string> = { seqWrite: 'seq write ms/MiB', seqRead: 'seq read ms/MiB', randWrite: 'rand write µs/op', randRead: 'rand read µs/op' };
  const lines = [
    row('target', (w) => heads[w]),
    row(kit.name, (w) => cell(w, kitRate[w], 1)),
    ...targets.map((v) => {
      const f = medians(v.runs);
      const r = medians(ratios.get(v)!);
      return row(v.name, (w) => cell(w, f[w], r[w]));
    }),
    ...(peer ? [
      '',
      row('against the qemu mirror', (w) => heads[w]),
      ...volumes.map((v) => {
        const r = medians(againstMirror.get(v)!);
        return row(v.name, (w) => `${r[w].toFixed(2)}×`);
      }),
    ] : []),
    '',
    row('CPU, client + server', (w) => cpuHeads[w]),
    row(kit.name, (w) => cpuCell(w, kitCpu[w], kitCpu[w])),
    ...targets.map((v) => {
      const f = medians(v.cpu);
      return row(v.name, (w) => cpuCell(w, f[w], kitCpu[w]));
    }),
    '',
    row('CPU per process', (w) => cpuHeads[w]),
    ...volumes.flatMap((v) => {
      const digits = (w: Workload) => (w.startsWith('seq') ? 2 : 1);
      const master = medians(v.parts!.cpu.master);
      const members = medians(v.parts!.cpu.members);
      const client = medians(v.parts!.cpu.client);
      const n = v.parts!.members().length;
      return [
        row(`${v.name.replace(/ \(.*/, '')}: master`, (w) => master[w].toFixed(digits(w))),
        row(`  each of its ${n} members`, (w) => (members[w] / Math.max(1, n)).toFixed(digits(w))),
        row('  client', (w) => client[w].toFixed(digits(w))),
      ];
    }),
  ];
  process.stdout.write(lines.join('\n') + '\n');
  process.stdout.write(`figures are medians over ${reps} rep(s); a ratio is each run against the mean of the nbdkit runs just before and after it, then the median\n`);
  process.stdout.write(`CPU counts the client (nbdcopy or fio) and every server process (nbdkit; the master and all 4 nodes; the mirror's daemon and both children); the machine has ${availableParallelism()} cores\n`);
  if (peer) process.stdout.write('the mirror writes to both children and reads both and compares (vote-threshold=2); "against the qemu mirror" divides each tessera run by the mirror run of the same rep, then takes the median\n');
  process.stdout.write('nbdkit range: ' + workloads.map((w) => `${w} ${Math.round(Math.min(...kit.runs[w]))}–${Math.round(Math.max(...kit.runs[w]))}`).join(', ') + '\n');
  const seal = sealCost();
  const us = (msPerMiB: number) => ((msPerMiB * 1000) / (MiB / SECTOR_BYTES)).toFixed(1);
  const costLine = (name: string, c: { one: { seal: number; open: number }; run: { seal: number; open: number } }) =>
    `  ${name}: seal ${c.one.seal.toFixed(2)} ms/MiB (${us(c.one.seal)} µs/sector) one sector per call, ${c.run.seal.toFixed(2)} per 64 KiB run; open ${c.one.open.toFixed(2)} (${us(c.one.open)} µs/sector), ${c.run.open.toFixed(2)} per run\n`;
  process.stdout.write(`sealing alone (XChaCha20-Poly1305 per 4 KiB sector, this process; the master seals with ${seal.sealer}; raid5 seals parity too):\n`);
  if (seal.native !== undefined) process.stdout.write(costLine('native (OpenSSL ChaCha20-Poly1305)', seal.native));
  process.stdout.write(costLine('libsodium', seal.sodium));
  process.stdout.write(`AES-256-GCM through node:crypto, same process: ${seal.gcmSectorMsPerMiB.toFixed(2)} ms/MiB with a cipher object per 4 KiB sector, ${seal.gcm64kMsPerMiB.toFixed(2)} ms/MiB per 64 KiB\n`);
  process.stdout.write('goals: sequential ≥ 0.40× nbdkit memory, random 4K ≥ 0.30×; raid1 ≥ 1.3× the qemu mirror sequential and ≥ 5× random; raid0 sequential ≥ 0.35× nbdkit memory\n');
}
