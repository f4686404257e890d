/** `tessera ls`, `stat` and `rm`: a file's listing, chunks and health, and its removal. */
import type { FileEntryView, FileStatView } from '../../api/types.js';
import { TesseraError } from '../../errors.js';
import { clientFrom } from '../context.js';
import { formatBytes, table } from '../format.js';
import type { CommonFlags } from './transfer.js';

function formatDate(iso: string): string {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}`;
}

/** Rows in the order the node sent them: byte order of the names, the order pages continue in. */
export function filesTable(files: FileEntryView[]): string {
  const rows = files.map((f) => [f.name, formatBytes(f.size), formatDate(f.createdAt), f.etag || '-', f.fileId.slice(0, 16) + '…']);
  return table(['NAME', 'SIZE', 'CREATED', 'ETAG', 'ID'], rows);
}

export interface LsFlags extends CommonFlags {
  limit?: string;
  after?: string;
}

/** A shell word that pastes back as the same argument. */
function shellWord(s: string): string {
  return /^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

const short = (id: string) => id.slice(0, 12);

function zoneText(s: FileStatView): string {
  // A small S3 object kept in its table entry: its copies are the entry's, not chunks'.
  if (s.policy === 'inline') return 'none of its own: the object is sealed in its metadata table entry, on the full nodes that hold that table partition';
  const over = `copies over ${s.zones} zone${s.zones === 1 ? '' : 's'}`;
  if (s.zoneLossesSurvived < 0) return `${over}; some chunk is unreadable now`;
  if (s.zoneLossesSurvived === 0) return `${over}; the loss of any one zone may make it unreadable`;
  return `${over}; survives the loss of any ${s.zoneLossesSurvived} zone${s.zoneLossesSurvived === 1 ? '' : 's'} at once`;
}

export function statText(s: FileStatView): string {
  const h = s.health;
  const lines = [
    `file     ${s.fileId}`,
    `name     ${s.name ?? '-'}`,
    `size     ${formatBytes(s.size)} (${s.size} bytes)`,
    `chunks   ${s.chunks} of ${formatBytes(s.chunkSize)}`,
    `policy   ${s.policy}`,
    `created  ${formatDate(s.createdAt)}`,
    `health   ${h.fullRedundancy} at full redundancy, ${h.degraded} degraded, ${h.lost} lost`,
    `zones    ${zoneText(s)}`,
  ];
  if (s.chunkHealth.length > 0) {
    const rows = s.chunkHealth.map((c) => {
      const missing = c.expected.filter((n) => !c.holders.includes(n));
      return [
        String(c.index),
        short(c.id),
        formatBytes(c.size),
        `${c.holders.length}/${c.expected.length}`,
        c.holders.map(short).join(',') || '-',
        missing.map(short).join(',') || '-',
      ];
    });
    lines.push('', table(['CHUNK', 'ID', 'SIZE', 'COPIES', 'HOLDERS', 'MISSING FROM'], rows));
    if (s.chunkHealth.length < s.chunks) lines.push(`(first ${s.chunkHealth.length} of ${s.chunks} chunks shown; --json has the same)`);
  }
  return lines.join('\n');
}

export async function rmCommand(ref: string, flags: CommonFlags): Promise<void> {
  const r = await (await clientFrom(flags)).rm(ref);
  process.stdout.write((flags.json ? JSON.stringify(r) : `removed ${r.name ? `'${r.name}' ` : ''}${r.fileId}`) + '\n');
}

/**
 * One page of names. Standard output holds only the listing (a table, or with --json the page's
 * entries); how to get the next page goes to standard error, so scripts can page by `--after`.
 */
export async function lsCommand(prefix: string | undefined, flags: LsFlags): Promise<void> {
  let limit: number | undefined;
  if (flags.limit !== undefined) {
    if (!/^\d{1,4}$/.test(flags.limit) || Number(flags.limit) < 1 || Number(flags.limit) > 1000) throw new TesseraError('BAD_INPUT', `--limit ${flags.limit.slice(0, 20)} is not a page size from 1 to 1000`);
    limit = Number(flags.limit);
  }
  const page = await (await clientFrom(flags)).ls({ ...(prefix ? { prefix } : {}), ...(flags.after !== undefined ? { after: flags.after } : {}), ...(limit !== undefined ? { limit } : {}) });
  const files = page.files;
  if (flags.json) process.stdout.write(JSON.stringify(files) + '\n');
  else process.stdout.write((files.length === 0 ? (flags.after !== undefined ? 'no more names' : 'no named files') : filesTable(files)) + '\n');
  const last = files[files.length - 1];
  if (page.token !== null && last !== undefined) {
    const args = [...(prefix ? [shellWord(prefix)] : []), ...(limit !== undefined ? ['--limit', String(limit)] : []), '--after', shellWord(last.name)];
    process.stderr.write(`more names follow: tessera ls ${args.join(' ')}\n`);
  }
}

export async function statCommand(ref: string, flags: CommonFlags): Promise<void> {
  const s = await (await clientFrom(flags)).stat(ref);
  process.stdout.write((flags.json ? JSON.stringify(s) : statText(s)) + '\n');
}
