/**
 * Byte progress for long transfers (put, get): a bar with bytes, rate and ETA on stderr, shown
 * only to a person at a terminal. Scripts (no TTY, --json, --quiet) get nothing, so stdout and
 * stderr stay clean for them.
 */
import { formatBytes } from './format.js';

export interface ProgressFlags {
  json?: boolean;
  quiet?: boolean;
}

/** Whether a bar may be drawn: stderr is a terminal and the user did not ask for quiet output. */
export function wantProgress(flags: ProgressFlags, stream: NodeJS.WriteStream = process.stderr): boolean {
  return stream.isTTY === true && !flags.json && !flags.quiet;
}

export interface Progress {
  add(bytes: number): void;
  /** The total, when it becomes known after the start (a ranged get learns it from the answer). */
  setTotal(bytes: number): void;
  /** Draws the final state and releases the terminal line. */
  stop(): void;
}

/** Does nothing: what callers get when no bar should be drawn, so they need no branches. */
class SilentProgress implements Progress {
  add(): void {}
  setTotal(): void {}
  stop(): void {}
}

function formatDuration(sec: number): string {
  if (!Number.isFinite(sec) || sec < 0) return '--';
  const s = Math.round(sec);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/** The text of one frame of the bar; exported so its wording can be tested without a terminal. */
export function progressLine(label: string, value: number, total: number | undefined, elapsedMs: number, barChars = 30): string {
  const rate = elapsedMs > 0 ? (value * 1000) / elapsedMs : 0;
  const rateText = `${formatBytes(rate)}/s`;
  if (total === undefined || total <= 0) {
    // Size unknown (stdin): no bar or ETA can be honest, so show what moved and how fast.
    return `${label} ${formatBytes(value)} | ${rateText} | ${formatDuration(elapsedMs / 1000)}`;
  }
  const frac = Math.min(1, value / total);
  const full = Math.round(frac * barChars);
  const bar = '█'.repeat(full) + '░'.repeat(barChars - full);
  const eta = rate > 0 ? (total - value) / rate : Infinity;
  const pct = `${Math.floor(frac * 100)}%`.padStart(4);
  return `${label} ${bar} ${pct} | ${formatBytes(value)} / ${formatBytes(total)} | ${rateText} | ETA ${value >= total ? '0s' : formatDuration(eta)}`;
}

/** The bar's drawing library is loaded only when a bar is drawn: scripts never pay for it. */
export async function startProgress(label: string, total: number | undefined, enabled: boolean, stream: NodeJS.WriteStream = process.stderr): Promise<Progress> {
  if (!enabled) return new SilentProgress();
  const { BarProgress } = await import('./progress-bar.js');
  return new BarProgress(label, total, stream);
}
