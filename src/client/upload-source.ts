/**
 * An upload source the client reads into buffers of its own, used again and again: a file read
 * through a stream gets a fresh buffer per read, and on a machine whose freed memory goes back to
 * the host each fresh megabyte is page-faulted in again (a 256 MiB `tessera put` spent more CPU
 * faulting and copying into new buffers than sending them). Here a few buffers go round: one is
 * read into while those filled before it are still being sent.
 */

/**
 * Bytes asked of the source per read, and sent per socket write. Against a local sink, 1 MiB
 * pieces cost the client 390–470 ms of CPU for 256 MiB, 256 KiB pieces 460–680, 64 KiB 800–1000:
 * each piece is a trip through the thread pool, a promise and the HTTP writer.
 */
export const UPLOAD_PIECE_BYTES = 1 << 20;
/** Pieces one upload may have read but not yet handed to the kernel: its memory bound. */
export const UPLOAD_PIECES = 4;

/** A source the client reads into its own buffers (a file), instead of taking pieces it is given. */
export interface PieceReader {
  /**
   * Reads the next bytes into `into`, resolving with how many were read, 0 at the end. `into` is
   * the client's and is filled again once sent: the reader must keep no reference to it.
   */
  readInto(into: Buffer): Promise<number>;
}

/** What a pump writes to: the write's callback runs once the bytes are handed to the kernel (or the write failed). */
export interface PieceWriter {
  write(piece: Buffer, done: (err?: Error | null) => void): unknown;
  /** Whether the upload has ended (answered, failed or cancelled): the pump stops. */
  stopped(): boolean;
  /** Registers a wake-up for when the writer goes away with writes still pending. */
  onGone(wake: () => void): () => void;
}

/**
 * Reads `reader` to its end through a ring of at most `pieces` buffers and writes each filled
 * one; a buffer is read into again only once its write is done. Resolves with the bytes read
 * (the caller checks them against what it announced), or undefined when the writer stopped first.
 * `onRead` sees each piece's length as it is read, and may throw to stop the upload.
 */
export async function pumpPieces(
  reader: PieceReader,
  writer: PieceWriter,
  onRead: (bytes: number) => void,
  pieceBytes = UPLOAD_PIECE_BYTES,
  pieces = UPLOAD_PIECES,
): Promise<number | undefined> {
  const free: Buffer[] = [];
  let allocated = 0;
  let wake: (() => void) | undefined;
  const unsubscribe = writer.onGone(() => wake?.());
  let total = 0;
  try {
    for (;;) {
      if (writer.stopped()) return undefined;
      let buf = free.pop();
      if (buf === undefined) {
        if (allocated < pieces) {
          buf = Buffer.allocUnsafeSlow(pieceBytes);
          allocated++;
        } else {
          await new Promise<void>((resolve) => (wake = resolve));
          wake = undefined;
          continue;
        }
      }
      const n = await reader.readInto(buf);
      if (n === 0) return total;
      if (!Number.isSafeInteger(n) || n < 0 || n > buf.length) throw new RangeError(`a piece reader returned ${n} for a ${buf.length}-byte buffer`);
      total += n;
      onRead(n);
      if (writer.stopped()) return undefined;
      const mine = buf;
      writer.write(buf.subarray(0, n), () => {
        free.push(mine);
        wake?.();
      });
    }
  } finally {
    unsubscribe();
  }
}
