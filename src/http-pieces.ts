/**
 * Writing a download to an HTTP response one piece at a time, shared by the faces that serve
 * file bytes (the HTTP API and the S3 face).
 */
import type { ServerResponse } from 'node:http';

/**
 * Writes a piece of a download and resolves once the socket is done with its bytes (or the
 * connection closed), so the buffer may be filled again: downloads read with `reuse`.
 */
function writeOut(res: ServerResponse, piece: Buffer): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off('close', done);
      resolve();
    };
    res.on('close', done);
    // An error here also closes the response, which the loop below notices.
    res.write(piece, () => done());
  });
}

/**
 * Answers with a body of pieces that may each be valid only until the next is asked for (reads
 * with `reuse`). The first piece is fetched before the status line, so a body that cannot be
 * read gets a real error status; waiting for each write to be taken is the backpressure, so a
 * slow client slows the reads.
 */
export async function sendPieces(res: ServerResponse, status: number, headers: Record<string, string | number>, pieces: AsyncIterable<Buffer>): Promise<void> {
  const stream = pieces[Symbol.asyncIterator]();
  try {
    let next = await stream.next();
    res.writeHead(status, headers);
    try {
      while (!next.done) {
        await writeOut(res, next.value);
        if (res.destroyed) return;
        next = await stream.next();
      }
      res.end();
    } catch (e) {
      // Headers are gone: cutting the connection short is the only way left to say it failed.
      res.destroy(e as Error);
    }
  } finally {
    await stream.return?.(undefined);
  }
}
