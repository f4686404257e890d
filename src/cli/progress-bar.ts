/** The progress bar drawn on a terminal, with cli-progress. */
import cliProgress from 'cli-progress';
import { progressLine, type Progress } from './progress.js';

export class BarProgress implements Progress {
  private readonly bar: cliProgress.SingleBar;
  private value = 0;
  private total: number | undefined;
  private readonly started = Date.now();
  private stopped = false;

  constructor(label: string, total: number | undefined, stream: NodeJS.WriteStream) {
    this.total = total;
    this.bar = new cliProgress.SingleBar({
      stream,
      // A few frames a second is plenty for a person and keeps the CPU for the transfer.
      fps: 4,
      hideCursor: true,
      clearOnComplete: false,
      linewrap: false,
      format: (_opts, params) => progressLine(label, params.value, this.total, Date.now() - this.started),
    });
    // cli-progress needs a positive total; the formatter ignores it when the size is unknown.
    this.bar.start(total && total > 0 ? total : 1, 0);
  }

  add(bytes: number): void {
    this.value += bytes;
    this.bar.update(this.value);
  }

  setTotal(bytes: number): void {
    this.total = bytes;
    if (bytes > 0) this.bar.setTotal(bytes);
  }

  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.bar.update(this.value);
    this.bar.stop();
  }
}
