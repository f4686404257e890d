/**
 * A file download over one HTTP/1.1 connection, read straight into buffers that are used again and
 * again. Node's HTTP client hands over each socket read as a fresh 64 KiB buffer and runs it
 * through its parser and a stream: on loopback that halved the speed a node serves a file at,
 * next to curl. Here the socket fills a 4 MiB batch read after read; a full batch goes to the
 * sink (one piece) while the next batch fills; when every batch waits for the sink, the socket is
 * no longer read until one is free. A sink that writes at once (writeNow: a file, /dev/null) is
 * instead handed each read from one small buffer before the next read, as curl writes: for a
 * 256 MiB `get -o` that took the client's CPU for the bytes from about 340 to about 200 ms
 * (the batches' first touches, a trip through libuv's thread pool and a promise per 128 KiB
 * write), and TCP pushes back on the node while a write runs.
 */
import type { OnReadOpts, Socket } from 'node:net';
import { TesseraError } from '../errors.js';
import { MAX_RESPONSE_HEAD_BYTES, bodyLength, parseResponseHead, type ResponseHead } from './http-head.js';

/** Size of one batch: large writes, few system calls. */
export const DOWNLOAD_BATCH_BYTES = 4 << 20;
/** Batches one download may hold: its memory bound, whatever the file's size. */
export const DOWNLOAD_BATCHES = 4;
/** A read is not asked to fill less than this; a batch with less room left is handed on. */
const MIN_READ_BYTES = 64 << 10;
/**
 * Most bytes kept aside while every batch waits for the sink. A TLS socket goes on handing over
 * records it had decrypted before pause() took effect (a plain one does not): at most what one
 * read from the kernel held, far below this.
 */
const MAX_HELD_WHILE_PAUSED_BYTES = 1 << 20;
/**
 * Size of the one buffer a download reads into when its sink writes at once (writeNow): each
 * socket read goes to the sink from it before the next read, as curl writes its file. Small
 * enough to stay in the CPU's cache; a write of this size gets small page-cache folios (see
 * FILE_WRITE_BYTES in cli/download-sinks.ts).
 */
export const DIRECT_READ_BYTES = 256 << 10;
/** Largest error body buffered (a JSON error is a few hundred bytes). */
const MAX_ERROR_BODY_BYTES = 64 << 10;

export interface DownloadInfo {
  fileId: string;
  /** Bytes in this answer (the range's length, or the whole file). */
  size: number;
  /** The whole file's size. */
  totalSize: number;
  /** Offset in the file of the answer's first byte: Content-Range's first byte, 0 for a whole file. */
  start: number;
}

/** Where downloaded bytes go. */
export interface DownloadSink {
  /** Called once the node has answered with the file, before any bytes. */
  begin?(info: DownloadInfo): void;
  /**
   * Takes the next piece of the file; the piece's memory is used again once the promise resolves.
   * Called one piece at a time, in order.
   */
  write(piece: Buffer): Promise<void>;
  /**
   * Takes a piece at `offset` bytes from the start of the download, in any order and while other
   * pieces are being written. A sink that has it (a file being made) lets a large download come
   * as several byte ranges at once, each written where it belongs; one without it gets the
   * ranges' pieces through `write`, in order (see ranges.ts).
   */
  writeAt?(piece: Buffer, offset: number): Promise<void>;
  /**
   * Takes the next piece of the file and writes it before returning; the piece's memory is used
   * again right after. A sink that has it (a file, /dev/null) is handed each socket read as it
   * comes, in order, from one small buffer: no batches, no trips through libuv's thread pool and
   * no promise per piece. A download in several ranges at once uses write or writeAt instead.
   */
  writeNow?(piece: Buffer): void;
}

export interface DownloadOptions {
  /** Opens the connection, reading with `onread`: the connection is the client's to make (address, TLS). */
  open: (onread: OnReadOpts) => Socket;
  /** The whole request head, blank line included. */
  request: string;
  sink: DownloadSink;
  signal?: AbortSignal;
  /** Longest time without a byte from the node while it is being read. */
  idleTimeoutMs: number;
  connectionError: (err: NodeJS.ErrnoException) => TesseraError;
  /** The error for a status of 400 or more, from the answer's body. */
  statusError: (status: number, body: Buffer) => TesseraError;
  address: string;
  /** Batches this download may hold; DOWNLOAD_BATCHES unless given (a download that is one of several holds fewer). */
  batches?: number;
  /**
   * Free batches shared by the downloads of one file's ranges: taken from before allocating, and
   * given back when this download ends, so a file in many ranges touches the memory of a few
   * batches, not fresh memory for every range (each first touch is a page fault).
   */
  pool?: Buffer[];
}

/**
 * Where the answer's bytes start in the file, checked against what the answer says of itself: a
 * 206 must carry a Content-Range of exactly its Content-Length's bytes within the file's size,
 * and a 200 the whole file. A range answered otherwise would put bytes at the wrong place.
 */
function answerStart(head: ResponseHead, size: number, totalSize: number, address: string): number {
  if (head.status === 200) {
    if (size !== totalSize) throw new TesseraError('PROTOCOL', `the node API at ${address} answered with ${size} bytes of a ${totalSize}-byte file but no Content-Range`);
    return 0;
  }
  const text = head.headers.get('content-range') ?? '';
  const m = /^bytes (\d{1,16})-(\d{1,16})\/(\d{1,16})$/.exec(text);
  const [first, last, total] = m ? [Number(m[1]), Number(m[2]), Number(m[3])] : [NaN, NaN, NaN];
  if (!m || last < first || last - first + 1 !== size || total !== totalSize || last >= total) {
    throw new TesseraError(
      'PROTOCOL',
      `the node API at ${address} answered a range with Content-Range '${text.slice(0, 60)}', which does not describe its ${size} bytes of a ${totalSize}-byte file`,
    );
  }
  return first;
}

/** Downloads one file; resolves once every byte is in the sink, with what the node said of the file. */
export function download(opts: DownloadOptions): Promise<DownloadInfo> {
  return new Promise<DownloadInfo>((resolve, reject) => {
    let head: ResponseHead | undefined;
    let headBuf: Buffer | undefined = Buffer.allocUnsafe(MAX_RESPONSE_HEAD_BYTES);
    let headFilled = 0;
    let info: DownloadInfo | undefined;
    let errorParts: Buffer[] | undefined;
    let errorBytes = 0;
    let errorLength: number | undefined;

    // The batch the socket fills now, those waiting for the sink, and those free again.
    let current: Buffer | undefined;
    let filled = 0;
    const waiting: Array<{ piece: Buffer; batch: Buffer }> = [];
    const free: Buffer[] = [];
    let allocated = 0;
    let received = 0;
    let writing = false;
    let pausedForSink = false;
    const held: Buffer[] = [];
    let heldBytes = 0;
    let failure: unknown;
    let settled = false;
    const maxBatches = Math.max(1, Math.min(DOWNLOAD_BATCHES, opts.batches ?? DOWNLOAD_BATCHES));
    // A sink that writes at once takes each read from one buffer; the batches are never made.
    const writeNow = opts.sink.writeNow?.bind(opts.sink);
    const direct = writeNow ? Buffer.allocUnsafe(DIRECT_READ_BYTES) : undefined;
    /** Every batch this download took, to give back to the pool when it ends. */
    const pooledBatches: Buffer[] = [];

    const settle = (err: unknown) => {
      if (settled) return;
      settled = true;
      // No write of the sink's is in flight now (see fail): every batch is free again.
      opts.pool?.push(...pooledBatches);
      opts.signal?.removeEventListener('abort', onAbort);
      socket.destroy();
      if (err === undefined) resolve(info as DownloadInfo);
      else reject(err);
    };
    // A write the sink has begun must end before the caller hears of a failure: it may close the
    // file the write goes to.
    const fail = (err: unknown) => {
      failure ??= err;
      socket.destroy();
      if (!writing) settle(failure);
    };
    const done = () => info !== undefined && received === info.size && current === undefined && waiting.length === 0 && !writing;

    const nextBatch = (): Buffer | undefined => {
      const reuse = free.pop();
      if (reuse) return reuse;
      if (allocated >= maxBatches) return undefined;
      allocated++;
      const left = (info as DownloadInfo).size - received;
      // A pooled batch outlives this download, so it is always whole.
      const batch = opts.pool ? (opts.pool.pop() ?? Buffer.allocUnsafeSlow(DOWNLOAD_BATCH_BYTES)) : Buffer.allocUnsafeSlow(Math.max(1, Math.min(DOWNLOAD_BATCH_BYTES, left)));
      if (opts.pool) pooledBatches.push(batch);
      return batch;
    };

    const pump = () => {
      if (writing || failure !== undefined) return;
      const next = waiting.shift();
      if (!next) {
        if (done()) settle(undefined);
        return;
      }
      writing = true;
      opts.sink.write(next.piece).then(
        () => {
          writing = false;
          free.push(next.batch);
          if (failure !== undefined) return settle(failure);
          if (pausedForSink && current === undefined) {
            current = nextBatch();
            filled = 0;
            pausedForSink = false;
            // Bytes that arrived while paused go first; they may fill the batch and pause again.
            while (current !== undefined && held.length > 0) {
              const piece = held.shift() as Buffer;
              heldBytes -= piece.length;
              takeBody(piece.length, piece);
            }
            if (!pausedForSink) socket.resume();
          }
          pump();
        },
        (err: unknown) => {
          writing = false;
          fail(err);
        },
      );
    };

    /** Hands the current batch to the sink and starts the next; pauses the socket when none is free. */
    const handOn = () => {
      if (current && filled > 0) waiting.push({ piece: current.subarray(0, filled), batch: current });
      current = undefined;
      filled = 0;
      if (received < (info as DownloadInfo).size) {
        current = nextBatch();
        if (!current) {
          pausedForSink = true;
          socket.pause();
        }
      }
      pump();
    };

    /** Hands bytes read into the direct buffer (or the head's) to the sink, before the next read. */
    const takeDirect = (piece: Uint8Array) => {
      const size = (info as DownloadInfo).size;
      if (received + piece.length > size) throw new TesseraError('PROTOCOL', `the node API at ${opts.address} sent more than the ${size} bytes it announced`);
      (writeNow as (piece: Buffer) => void)(Buffer.from(piece.buffer, piece.byteOffset, piece.length));
      received += piece.length;
      if (received === size) settle(undefined);
    };

    /** Counts `bytes` read into the current batch, or copies them there from `from`. */
    const takeBody = (bytes: number, from?: Uint8Array) => {
      const size = (info as DownloadInfo).size;
      if (received + bytes > size) throw new TesseraError('PROTOCOL', `the node API at ${opts.address} sent more than the ${size} bytes it announced`);
      if (from) (current as Buffer).set(from.subarray(0, bytes), filled);
      received += bytes;
      filled += bytes;
      if (received === size || (current as Buffer).length - filled < MIN_READ_BYTES) handOn();
    };

    const takeHead = () => {
      head = parseResponseHead((headBuf as Buffer).subarray(0, headFilled));
      if (!head) return;
      const rest = (headBuf as Buffer).subarray(head.length, headFilled);
      if (head.status >= 400) {
        const len = head.headers.get('content-length');
        errorLength = len !== undefined && /^\d{1,9}$/.test(len) ? Math.min(Number(len), MAX_ERROR_BODY_BYTES) : MAX_ERROR_BODY_BYTES;
        errorParts = [];
        headBuf = undefined;
        takeError(Buffer.from(rest));
        return;
      }
      if (head.status !== 200 && head.status !== 206) throw new TesseraError('PROTOCOL', `the node API at ${opts.address} answered a file read with HTTP ${head.status}`);
      const size = bodyLength(head);
      const totalSize = Number(head.headers.get('x-tessera-size'));
      const fileId = head.headers.get('x-tessera-file-id') ?? '';
      if (!Number.isSafeInteger(totalSize) || totalSize < size || fileId === '') {
        throw new TesseraError('PROTOCOL', `node API at ${opts.address} answered a file read without its size or id headers`);
      }
      info = { fileId, size, totalSize, start: answerStart(head, size, totalSize, opts.address) };
      opts.sink.begin?.(info);
      headBuf = undefined;
      if (size === 0) return pump();
      if (direct) {
        if (rest.length > 0) takeDirect(rest);
        return;
      }
      current = nextBatch();
      if (rest.length > 0) takeBody(rest.length, rest);
    };

    const takeError = (piece: Buffer) => {
      (errorParts as Buffer[]).push(piece);
      errorBytes += piece.length;
      if (errorBytes >= (errorLength as number)) {
        const body = Buffer.concat(errorParts as Buffer[]).subarray(0, errorLength);
        fail(opts.statusError((head as ResponseHead).status, body));
      }
    };
    const scratch = Buffer.allocUnsafe(MIN_READ_BYTES);

    // Node asks for the next read's buffer right after each read, not when reading resumes: a
    // read after a pause for the sink lands in the scratch buffer and is copied into the batch.
    const socket = opts.open({
      buffer: () => {
        if (headBuf) return headBuf.subarray(headFilled);
        if (errorParts) return scratch;
        if (direct) return direct;
        if (!current) return scratch;
        return current.subarray(filled);
      },
      callback: (bytes: number, buf: Uint8Array) => {
        if (failure !== undefined) return false;
        try {
          if (headBuf) {
            headFilled += bytes;
            takeHead();
          } else if (errorParts) {
            takeError(Buffer.from(scratch.subarray(0, bytes)));
          } else if (direct && info !== undefined) {
            takeDirect(buf.subarray(0, bytes));
          } else if (current) {
            takeBody(bytes, buf === scratch ? scratch : undefined);
          } else if (pausedForSink && info !== undefined && received + heldBytes + bytes <= info.size) {
            if (heldBytes + bytes > MAX_HELD_WHILE_PAUSED_BYTES) {
              throw new TesseraError('INTERNAL', `the connection to ${opts.address} went on delivering ${heldBytes + bytes} bytes after it was paused`);
            }
            held.push(Buffer.from(scratch.subarray(0, bytes)));
            heldBytes += bytes;
          } else {
            throw new TesseraError('PROTOCOL', `the node API at ${opts.address} sent bytes after the ${info?.size ?? 0} it announced`);
          }
        } catch (err) {
          fail(err);
          return false;
        }
        return true;
      },
    });

    const onAbort = () => fail(new TesseraError('CANCELLED', 'download cancelled'));
    if (opts.signal?.aborted) return fail(new TesseraError('CANCELLED', 'download cancelled'));
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    socket.setTimeout(opts.idleTimeoutMs, () => {
      // Waiting for a slow disk is not the node's silence.
      if (!pausedForSink) fail(new TesseraError('TIMEOUT', `node API at ${opts.address} sent nothing for ${opts.idleTimeoutMs} ms`));
    });
    socket.on('error', (err: NodeJS.ErrnoException) => fail(err instanceof TesseraError ? err : opts.connectionError(err)));
    socket.on('close', () => {
      if (failure !== undefined || settled) return;
      if (errorParts) {
        return fail(opts.statusError((head as ResponseHead).status, Buffer.concat(errorParts)));
      }
      if (!info) return fail(new TesseraError('UNAVAILABLE', `the node API at ${opts.address} closed the connection before answering`));
      if (received + heldBytes < info.size) {
        return fail(new TesseraError('UNAVAILABLE', `the node sent ${received} of ${info.size} bytes before the connection closed; nothing was kept`));
      }
      pump();
    });
    // Queued by the socket until it is connected.
    socket.write(opts.request);
  });
}
