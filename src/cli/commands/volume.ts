import type { Command } from 'commander';
import type { CheckReport, VolumeView } from '../../api/index.js';
import { badInput, TesseraError } from '../../errors.js';
import { clientFrom, type ClientFlags } from '../context.js';
import { formatBytes, parseSize, table } from '../format.js';
import { withClientOptions } from './peers.js';

type Flags = ClientFlags & { json?: boolean };
const LAYOUTS = ['raid0', 'raid1', 'raid5', 'raid6'] as const;

function out(flags: Flags, json: unknown, text: () => string): void {
  process.stdout.write((flags.json ? JSON.stringify(json) : text()) + '\n');
}

function stateSummary(v: VolumeView): string {
  if (v.status === null) return '-';
  if (v.status.failed) return 'FAILED';
  return v.status.degraded ? 'degraded' : 'ok';
}

function infoText(v: VolumeView): string {
  const lines = [
    `volume     ${v.name}  (id ${v.id}, record version ${v.version})`,
    `layout     ${v.layout} over ${v.members.length} members, stripe unit ${formatBytes(v.unitSize)}`,
    `size       ${formatBytes(v.size)} (${v.size} bytes), ${formatBytes(v.memberSize)} per member`,
  ];
  const s = v.status;
  if (s === null) {
    lines.push('state      not served by this node (ask the API of the node running `tessera nbd` for live state)');
    lines.push('', table(['#', 'NODE'], v.members.map((m, i) => [String(i), m])));
    return lines.join('\n');
  }
  lines.push(`state      ${stateSummary(v)}${s.degraded ? ' (reads reconstruct, writes continue)' : ''}, epoch ${s.epoch}, ${s.dirtyUnits} dirty units, ${s.stripesInFlight} stripes in flight, ${s.repairedUnits} units rewritten after failing authentication`);
  if (s.lastResync) lines.push(`resync     member ${s.lastResync.member} (${s.lastResync.nodeId.slice(0, 12)}): ${s.lastResync.unitsCopied} units copied at ${s.lastResync.at}`);
  lines.push('', table(['#', 'NODE', 'STATE', 'DIRTY UNITS', 'FULL REBUILD'], s.members.map((m) => [
    String(m.index), v.members[m.index] ?? m.id, m.state, String(m.dirtyUnits), m.fullRebuild ? 'yes' : 'no',
  ])));
  return lines.join('\n');
}

function checkText(name: string, r: CheckReport): string {
  const lines = [`volume ${name}: ${r.stripesChecked} stripes checked, ${r.stripesSkipped} skipped (member not current), ${r.mismatches} mismatches${r.repaired ? `, ${r.repaired} repaired` : ''}`];
  for (const m of r.firstMismatches) lines.push(`  stripe ${m.stripe}: members ${m.members.join(', ')} disagree`);
  return lines.join('\n');
}

export function registerVolume(program: Command): void {
  const vol = program.command('volume').description('block volumes striped over the cluster, served by `tessera nbd`');

  withClientOptions(vol.command('create <name>').description('create a volume'))
    .requiredOption('--size <size>', 'usable size, e.g. 10G (rounded up to whole stripes)')
    .requiredOption('--layout <layout>', `one of ${LAYOUTS.join(', ')}`)
    .option('--members <n>', 'member count (members are placed over live nodes)')
    .option('--nodes <id,...>', 'member nodes by id or unique id prefix, in order')
    .option('--stripe-unit <size>', 'stripe unit, a power of two from 4K to 4M', '64K')
    .addHelpText('after', '\nExample:\n  tessera volume create disk1 --size 10G --layout raid5 --members 4')
    .action(async (name: string, flags: Flags & { size: string; layout: string; members?: string; nodes?: string; stripeUnit: string }) => {
      if (!(LAYOUTS as readonly string[]).includes(flags.layout)) throw badInput(`--layout must be one of ${LAYOUTS.join(', ')}, got '${flags.layout}'`);
      let members: number | undefined;
      if (flags.members !== undefined) {
        members = Number(flags.members);
        if (!Number.isInteger(members) || members < 1) throw badInput(`--members must be a positive whole number, got '${flags.members}'`);
      }
      const nodes = flags.nodes?.split(',').map((s) => s.trim()).filter(Boolean);
      const v = await (await clientFrom(flags)).createVolume({
        name,
        size: parseSize(flags.size, '--size'),
        layout: flags.layout as (typeof LAYOUTS)[number],
        ...(members !== undefined ? { members } : {}),
        ...(nodes !== undefined ? { nodes } : {}),
        unitSize: parseSize(flags.stripeUnit, '--stripe-unit'),
      });
      out(flags, v, () => `created ${v.layout} volume ${v.name}: ${formatBytes(v.size)} over ${v.members.length} nodes\n` + infoText(v));
    });

  withClientOptions(vol.command('ls').description('list volumes'))
    .action(async (flags: Flags) => {
      const list = await (await clientFrom(flags)).volumes();
      out(flags, list, () => table(['NAME', 'LAYOUT', 'SIZE', 'MEMBERS', 'STATE', 'DIRTY'], list.map((v) => [
        v.name, v.layout, formatBytes(v.size), String(v.members.length), stateSummary(v), v.status ? String(v.status.dirtyUnits) : '-',
      ])));
    });

  withClientOptions(vol.command('info <name>').description('layout, members and their state, degraded, dirty units'))
    .action(async (name: string, flags: Flags) => {
      const v = await (await clientFrom(flags)).volume(name);
      out(flags, v, () => infoText(v));
    });

  withClientOptions(vol.command('rm <name>').description('remove a volume and its data on every member'))
    .action(async (name: string, flags: Flags) => {
      const r = await (await clientFrom(flags)).removeVolume(name);
      out(flags, r, () => `removed volume ${name}`);
    });

  withClientOptions(vol.command('replace <name> <old> <new>').description('rebuild the member on node OLD onto node NEW (ask the master)'))
    .action(async (name: string, oldNode: string, newNode: string, flags: Flags) => {
      const r = await (await clientFrom(flags)).replaceVolumeMember(name, oldNode, newNode);
      out(flags, r, () => `member ${r.member} of ${name} rebuilt on ${newNode}: ${r.unitsCopied} units copied`);
    });

  withClientOptions(vol.command('check <name>').description('verify mirrors or parity and report mismatches (ask the master)'))
    .option('--repair', 'rewrite mismatching parity or mirrors from the data')
    .action(async (name: string, flags: Flags & { repair?: boolean }) => {
      const r = await (await clientFrom(flags)).checkVolume(name, { repair: flags.repair === true });
      out(flags, r, () => checkText(name, r));
      if (r.mismatches > 0 && !flags.repair) throw new TesseraError('CORRUPT', `volume ${name} has ${r.mismatches} inconsistent stripes; run 'tessera volume check ${name} --repair'`);
    });
}
