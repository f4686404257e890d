/**
 * `node dist/bench/sim.js [--nodes 1000] [--seed 1] ...`: the membership, placement and repair
 * figures at sizes no machine here can host, from the deterministic simulator. Times are simulated;
 * the same arguments print the same figures. `--json` prints the report as JSON.
 */
import { pathToFileURL } from 'node:url';
import { DEFAULT_SCALE_OPTIONS, placementLookupsPerSecond, runScale, type ScaleOptions, type ScaleReport } from '../src/cluster/sim/scale.js';

const FLAGS: Record<string, keyof ScaleOptions> = {
  '--nodes': 'nodes',
  '--zones': 'zones',
  '--seed': 'seed',
  '--bootstraps': 'bootstraps',
  '--loss': 'lossRate',
  '--loss-seconds': 'lossDurationMs',
  '--fail': 'failFraction',
  '--chunks': 'chunks',
  '--replicas': 'replicas',
  '--chunk-bytes': 'chunkBytes',
  '--bandwidth': 'bandwidth',
};

const USAGE = `usage: node dist/bench/sim.js [--nodes N] [--zones Z] [--seed S] [--bootstraps B] [--loss P] [--loss-seconds T]
                               [--fail F] [--chunks C] [--replicas R] [--chunk-bytes BYTES] [--bandwidth BYTES/S] [--json] [--quiet]`;

export function parseArgs(args: string[]): { opts: Partial<ScaleOptions>; json: boolean; quiet: boolean } {
  const opts: Partial<ScaleOptions> = {};
  let json = false;
  let quiet = false;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--json') json = true;
    else if (a === '--quiet') quiet = true;
    else if (a in FLAGS) {
      const v = Number(args[++i]);
      if (!Number.isFinite(v) || v < 0) throw new Error(`${a} needs a non-negative number\n${USAGE}`);
      const key = FLAGS[a]!;
      (opts as Record<string, number>)[key] = key === 'lossDurationMs' ? v * 1000 : v;
    } else throw new Error(`unknown argument ${a}\n${USAGE}`);
  }
  for (const k of ['nodes', 'zones', 'seed', 'bootstraps', 'chunks', 'replicas', 'chunkBytes'] as const) {
    const v = opts[k];
    if (v !== undefined && !Number.isInteger(v)) throw new Error(`--${k} must be a whole number`);
  }
  if (opts.nodes !== undefined && opts.nodes < 2) throw new Error('--nodes must be at least 2');
  if (opts.zones !== undefined && (opts.zones < 1 || opts.zones > (opts.nodes ?? DEFAULT_SCALE_OPTIONS.nodes))) throw new Error('--zones must be from 1 to the node count');
  if ((opts.lossRate ?? 0) >= 1 || (opts.failFraction ?? 0) >= 1) throw new Error('--loss and --fail are fractions below 1');
  return { opts, json, quiet };
}

const mib = (b: number) => `${(b / 2 ** 20).toFixed(0)} MiB`;
const s = (ms: number | null) => (ms === null ? 'never (limit reached)' : `${(ms / 1000).toFixed(2)} s`);

export function format(r: ScaleReport): string {
  const o = r.options;
  return [
    `tessera simulation: ${o.nodes} nodes${o.zones > 1 ? ` in ${o.zones} zones` : ''}, seed ${o.seed} (simulated time; same seed, same figures)`,
    ``,
    `join through ${o.bootstraps} bootstrap nodes, all at once`,
    `  every node knows every other alive after  ${r.join.converged ? s(r.join.simMs) : 'NOT converged'}`,
    `  messages per node per second (join)       ${r.join.messagesPerNodePerSec}`,
    `steady state, ${(o.lossRate * 100).toFixed(1)} % message loss for ${s(r.steady.simMs)}`,
    `  messages per node per second              ${r.steady.messagesPerNodePerSec}`,
    `  false dead declarations                   ${r.steady.falseDeaths} (${r.steady.falseDeathsPerHour} per hour)`,
    `  state changes (suspicions and refutations) ${r.steady.stateChanges}`,
    `  everyone alive again after loss stops     ${s(r.steady.reconvergedMs)}`,
    `${r.failure.failed} nodes (${(o.failFraction * 100).toFixed(1)} %) fail at once`,
    `  every survivor sees all of them dead after ${s(r.failure.detectedMs)}`,
    `  false dead declarations                   ${r.failure.falseDeaths}`,
    `repair, R = ${o.replicas}, ${r.repair.chunks} chunks of ${mib(o.chunkBytes)}, ${(o.bandwidth / 1e6).toFixed(0)} MB/s per node`,
    `  chunks with a copy on a failed node       ${r.repair.affected}`,
    `  chunks lost (no live copy)                ${r.repair.lost}`,
    `  copies made / surplus dropped             ${r.repair.copies} / ${r.repair.drops} in ${r.repair.rounds} rounds`,
    `  bytes moved                               ${r.repair.bytesMoved} (${mib(r.repair.bytesMoved)})`,
    `  repair time after detection               ${s(r.repair.simMs)}`,
    `  most copies sent by one node              ${r.repair.maxCopiesSentByOneNode}`,
    `  under-replicated after repair             ${r.repair.underReplicatedAfter}`,
    ...(o.zones > 1 ? [`  (random failures ignore zones: with ${o.zones} zones, losing ${r.failure.failed} nodes spread over all of them can still take every copy of a chunk)`] : []),
    ...(r.zoneFailure ? zoneFailureLines(r, r.zoneFailure) : []),
    `one node joins the ${o.nodes}-node cluster`,
    `  chunks with a copy moved                  ${r.joinOne.chunksWithACopyMoved} of ${r.joinOne.chunks}`,
    `  fraction of copies moved                  ${r.joinOne.fractionOfCopies.toFixed(6)} (1/(N+1) = ${r.joinOne.expected.toFixed(6)})`,
    `trace digest ${r.digest}`,
  ].join('\n');
}

function zoneFailureLines(r: ScaleReport, z: NonNullable<ScaleReport['zoneFailure']>): string[] {
  return [
    `a whole zone fails at once: ${z.zone}, ${z.failed} nodes`,
    `  chunks with a copy in that zone           ${z.affected}`,
    `  chunks lost (every copy in that zone)     ${z.lost}`,
    `  copies made to restore R on other zones   ${z.copies} in ${z.rounds} rounds`,
    `  under-replicated after repair             ${z.underReplicatedAfter}`,
    `  chunks with two copies in one zone after  ${z.sharingAZoneAfter}`,
  ];
}

/** Wall-clock placement speed on this machine: not simulated, so it varies from run to run. */
export function lookupLines(zones: number, replicas: number): string[] {
  const lines = [`placement lookups per second (R = ${replicas}, wall clock on this machine)`];
  // A lookup hashes every zone and the nodes of the R zones it uses, so it gains as zones multiply.
  for (const [members, z] of [[1000, zones], [10_000, zones], [10_000, 100]] as const) {
    lines.push(`  ${members} members in ${z} zones: ${placementLookupsPerSecond(members, z, replicas)}/s   in one zone: ${placementLookupsPerSecond(members, 1, replicas)}/s`);
  }
  return lines;
}

export async function main(args: string[]): Promise<void> {
  let parsed;
  try {
    parsed = parseArgs(args);
  } catch (e) {
    process.stderr.write(`${(e as Error).message}\n`);
    process.exitCode = 2;
    return;
  }
  const started = Date.now();
  const report = await runScale({
    ...parsed.opts,
    ...(parsed.quiet ? {} : { progress: (line: string) => process.stderr.write(`[${((Date.now() - started) / 1000).toFixed(0)} s] ${line}\n`) }),
  });
  process.stdout.write(parsed.json ? `${JSON.stringify(report, null, 2)}\n` : `${format(report)}\n`);
  if (!parsed.json && (report.options.zones > 1)) process.stdout.write(`${lookupLines(report.options.zones, report.options.replicas).join('\n')}\n`);
}


if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) await main(process.argv.slice(2));
