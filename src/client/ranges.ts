/**
 * A download fetched as byte ranges ("windows") of one file, a few at once (`get --streams N`).
 * One request is served by one pipeline on the node (read, decrypt, verify, send); two requests
 * for two parts of the file can keep more of a machine busy. Measured with curl against a node on
 * the 2-core development machine, two ranges at once gave 0.86–1.27× the speed of one request
 * across runs, which is why one request stays the default (RANGES_IN_FLIGHT).
 *
 * The first window is asked for like any range; its answer gives the file's id and size. A file
 * that fits in it (or a node that answers the whole file, ignoring Range) takes that one request.
 * Otherwise the other windows are asked for by the file's id, so a name bound to another file
 * meanwhile cannot mix two files, and each answer must name the same file, size and range asked
 * for. A sink that writes at offsets (a file) takes each window's pieces where they belong; any
 * other sink gets them in order through InOrder.
 */
import { TesseraError, isTesseraError } from '../errors.js';
import { DOWNLOAD_BATCH_BYTES, type DownloadInfo, type DownloadSink } from './download.js';

/** Bytes per window: large enough that a request's set-up is small next to its transfer. */
export const RANGE_WINDOW_BYTES = 32 << 20;
/**
 * Windows downloaded at once unless the caller chooses (`tessera get --streams`): one, a single
 * request. With the node on the same 2-core machine, two ranges were slower than one request in
 * every benchmark run, quiet or busy (README, "The command"); a node elsewhere may differ.
 */
export const RANGES_IN_FLIGHT = 1;
/** Most windows a caller may ask to download at once. */
export const MAX_RANGES_IN_FLIGHT = 4;
/**
 * Batches each window's download holds (download.ts): with RANGES_IN_FLIGHT, the download's
 * memory. Half a window: a window waiting behind the one being written to standard output can
 * take that much ahead, enough to keep both requests moving when the output is fast.
 */
export const RANGE_BATCHES = 4;
/**
 * Most bytes that wait for their turn when the sink takes bytes in order: the batches of every
 * window in flight behind the one being written, with as many in flight as a caller may ask for.
 */
export const MAX_REORDER_BYTES = (MAX_RANGES_IN_FLIGHT - 1) * RANGE_BATCHES * DOWNLOAD_BATCH_BYTES;

/** Bytes start..end of the file, both inclusive, as in HTTP Range. */
export interface ByteRange {
  start: number;
  end: number;
}

/** One request of a download: the client makes it (address, TLS, token). */
export interface RangeRequest {
  ref: string;
  /** Undefined: the whole file, without a Range header. */
  range?: ByteRange;
  sink: DownloadSink;
  signal: AbortSignal;
  batches: number;
  /** Free batches the requests of one download share (download.ts). */
  pool: Buffer[];
}

export interface RangedDownloadOptions {
  ref: string;
  start?: number;
  end?: number;
  sink: DownloadSink;
  signal?: AbortSignal;
  fetch: (req: RangeRequest) => Promise<DownloadInfo>;
  address: string;
  windowBytes?: number;
  inFlight?: number;
}

/** The windows that cover bytes from..last (inclusive), each windowBytes long but the last. Pure. */
export function windowsOf(from: number, last: number, windowBytes: number): ByteRange[] {
  const out: ByteRange[] = [];
  for (let start = from; start <= last; start += windowBytes) out.push({ start, end: Math.min(last, start + windowBytes - 1) });
  return out;
}

/** The node answered a range request with 416: for a request of the whole file, an empty file. */
const unsatisfiable = (err: unknown) => isTesseraError(err) && err.details?.httpStatus === 416;

export async function downloadInRanges(o: RangedDownloadOptions): Promise<DownloadInfo> {
  const windowBytes = o.windowBytes ?? RANGE_WINDOW_BYTES;
  const inFlight = o.inFlight ?? RANGES_IN_FLIGHT;
  if (!Number.isSafeInteger(windowBytes) || windowBytes < 1 || !Number.isSafeInteger(inFlight) || inFlight < 1 || inFlight > MAX_RANGES_IN_FLIGHT) {
    throw new TesseraError('BAD_INPUT', `a ranged download needs a window of at least 1 byte and 1 to ${MAX_RANGES_IN_FLIGHT} windows in flight, not ${windowBytes} and ${inFlight}`);
  }
  const whole = o.start === undefined && o.end === undefined;
  const from = o.start ?? 0;
  // One window at a time would be one request after another: with one in flight the first
  // request asks for everything (no Range header for a whole file, as before ranges).
  const single = inFlight === 1;
  const first: ByteRange = single
    ? { start: from, end: o.end ?? Number.MAX_SAFE_INTEGER }
    : { start: from, end: o.end === undefined ? from + windowBytes - 1 : Math.min(o.end, from + windowBytes - 1) };

  const ac = new AbortController();
  const cancel = () => fail(new TesseraError('CANCELLED', 'download cancelled'));
  if (o.signal?.aborted) throw new TesseraError('CANCELLED', 'download cancelled');
  o.signal?.addEventListener('abort', cancel, { once: true });
  const order = o.sink.writeAt ? undefined : new InOrder(o.sink);
  let failure: unknown;
  let info: DownloadInfo | undefined;
  let windows: ByteRange[] = [];
  let next = 0;
  let active = 0;
  const pool: Buffer[] = [];
  let allDone!: () => void;
  const finished = new Promise<void>((r) => (allDone = r));

  function fail(err: unknown): void {
    if (failure !== undefined) return;
    failure = err;
    ac.abort(err);
    order?.abort(err);
  }

  const sinkFor = (index: number, w: ByteRange): DownloadSink => {
    if (order) return order.sinkFor(index);
    const writeAt = (o.sink.writeAt as NonNullable<DownloadSink['writeAt']>).bind(o.sink);
    let offset = w.start - from;
    return {
      write: (piece) => {
        const at = offset;
        offset += piece.length;
        return writeAt(piece, at);
      },
    };
  };

  const wrong = (w: ByteRange, got: DownloadInfo, what: string) =>
    new TesseraError('PROTOCOL', `the node API at ${o.address} answered the range bytes=${w.start}-${w.end} with ${what}; nothing was kept`);

  /** Checks a later window's answer: the same file, and exactly the bytes asked for. */
  const checkWindow = (w: ByteRange, got: DownloadInfo) => {
    const known = info as DownloadInfo;
    if (got.fileId !== known.fileId || got.totalSize !== known.totalSize) {
      throw wrong(w, got, `file ${got.fileId} of ${got.totalSize} bytes where the download began with ${known.fileId} of ${known.totalSize} bytes`);
    }
    if (got.start !== w.start || got.size !== w.end - w.start + 1) throw wrong(w, got, `bytes ${got.start}-${got.start + got.size - 1}`);
  };

  /** The first answer fixes the file and what is left to fetch. */
  const beginFirst = (got: DownloadInfo) => {
    const last = Math.min(o.end ?? Number.MAX_SAFE_INTEGER, got.totalSize - 1);
    const firstLast = Math.min(first.end, got.totalSize - 1);
    const exact = got.start === first.start && got.size === firstLast - first.start + 1;
    // A node that ignores Range answers the whole file: as good as one window when it was asked for.
    const everything = whole && got.start === 0 && got.size === got.totalSize;
    if (!exact && !everything) throw wrong(first, got, `bytes ${got.start}-${got.start + got.size - 1}`);
    info = { fileId: got.fileId, totalSize: got.totalSize, start: from, size: Math.max(0, last - from + 1) };
    o.sink.begin?.(info);
    if (!everything) windows = windowsOf(firstLast + 1, last, windowBytes);
    launch();
  };

  const run = (index: number, req: RangeRequest) => {
    active++;
    // A request that throws before it starts fails like one that fails later.
    new Promise<DownloadInfo>((resolve) => resolve(o.fetch(req)))
      .then(() => order?.finish(index), fail)
      .finally(() => {
        active--;
        launch();
      });
  };

  function launch(): void {
    while (failure === undefined && active < inFlight && next < windows.length) {
      const w = windows[next] as ByteRange;
      const index = ++next;
      const sink = sinkFor(index, w);
      run(index, {
        ref: (info as DownloadInfo).fileId,
        range: w,
        sink: { begin: (got) => checkWindow(w, got), write: sink.write },
        signal: ac.signal,
        batches: RANGE_BATCHES,
        pool,
      });
    }
    if (active === 0 && (failure !== undefined || next >= windows.length)) allDone();
  }

  const firstSink = sinkFor(0, first);
  // One request is the only window: its pieces go to the sink in order from the first byte, so a
  // sink that writes at once may take them straight from the socket (download.ts).
  const now = single && o.sink.writeNow ? { writeNow: o.sink.writeNow.bind(o.sink) } : {};
  run(0, { ref: o.ref, ...(single && whole ? {} : { range: first }), sink: { begin: beginFirst, write: firstSink.write, ...now }, signal: ac.signal, batches: RANGE_BATCHES, pool });
  try {
    await finished;
    if (failure !== undefined && info === undefined && whole && unsatisfiable(failure) && !o.signal?.aborted) {
      // Only an empty file has no first byte to ask for: it comes as a plain whole-file request.
      return await o.fetch({ ref: o.ref, sink: o.sink, signal: o.signal ?? new AbortController().signal, batches: RANGE_BATCHES, pool });
    }
    if (failure !== undefined) throw failure;
    return info as DownloadInfo;
  } finally {
    o.signal?.removeEventListener('abort', cancel);
  }
}

interface Held {
  piece: Buffer;
  resolve: () => void;
  reject: (err: unknown) => void;
}

/**
 * Puts the pieces of several byte ranges downloaded at once into one sink that takes bytes in
 * order (standard output). Window 0's pieces go straight through; a later window's piece waits
 * until every window before it is done, and its write does not resolve meanwhile, so that
 * window's download stops reading once its batches are full (download.ts). What waits for its turn
 * is therefore bounded by the batches of the windows in flight behind the first, not by the file.
 * No I/O of its own.
 */
export class InOrder {
  #head = 0;
  readonly #held = new Map<number, Held>();
  #failure: unknown;
  /** Most bytes ever waiting for their turn at once (for tests and benchmarks). */
  peakHeldBytes = 0;
  #heldBytes = 0;

  constructor(private readonly out: DownloadSink) {}

  /** The sink for window `index` (0, 1, …, in file order); each window's pieces come one at a time. */
  sinkFor(index: number): DownloadSink {
    return { write: (piece) => this.#write(index, piece) };
  }

  #write(index: number, piece: Buffer): Promise<void> {
    if (this.#failure !== undefined) return Promise.reject(this.#failure);
    if (index < this.#head) return Promise.reject(new TesseraError('INTERNAL', `a piece of window ${index} came after the window was done`));
    if (index === this.#head) return this.out.write(piece);
    if (this.#held.has(index)) return Promise.reject(new TesseraError('INTERNAL', `window ${index} wrote again before its last piece was taken`));
    return new Promise<void>((resolve, reject) => {
      this.#held.set(index, { piece, resolve, reject });
      this.#heldBytes += piece.length;
      this.peakHeldBytes = Math.max(this.peakHeldBytes, this.#heldBytes);
    });
  }

  /**
   * Window `index` has written all its pieces; the next window's turn begins with the piece it
   * has waiting, if any. Windows finish in order: only the head can have written everything.
   */
  finish(index: number): void {
    if (index !== this.#head) throw new TesseraError('INTERNAL', `window ${index} finished while window ${this.#head} had the turn`);
    this.#head++;
    const next = this.#held.get(this.#head);
    if (!next) return;
    this.#held.delete(this.#head);
    this.#heldBytes -= next.piece.length;
    this.out.write(next.piece).then(next.resolve, next.reject);
  }

  /** Refuses every waiting piece and any later one: a download that failed writes nothing more. */
  abort(err: unknown): void {
    this.#failure ??= err;
    for (const h of this.#held.values()) h.reject(this.#failure);
    this.#held.clear();
    this.#heldBytes = 0;
  }
}
