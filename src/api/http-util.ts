import type { IncomingMessage, ServerResponse } from 'node:http';
import { HTTP_STATUS, TesseraError, badInput, tooLarge } from '../errors.js';
import type { ApiErrorBody } from './types.js';

/** Largest JSON request body the API accepts; file contents are streamed, never parsed as JSON. */
export const MAX_JSON_BODY_BYTES = 64 << 10;

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

export function sendError(res: ServerResponse, err: unknown): void {
  const e = err instanceof TesseraError ? err : new TesseraError('INTERNAL', (err as Error)?.message ?? String(err));
  const body: ApiErrorBody = { error: { code: e.code, message: e.message } };
  if (res.headersSent) {
    res.destroy(e);
    return;
  }
  sendJson(res, HTTP_STATUS[e.code], body);
}

export async function readJsonBody(req: IncomingMessage): Promise<unknown> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > MAX_JSON_BODY_BYTES) throw tooLarge(`JSON body of ${declared} bytes is over the ${MAX_JSON_BODY_BYTES}-byte limit`);
  const parts: Buffer[] = [];
  let total = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    total += chunk.length;
    if (total > MAX_JSON_BODY_BYTES) throw tooLarge(`JSON body is over the ${MAX_JSON_BODY_BYTES}-byte limit`);
    parts.push(chunk);
  }
  if (total === 0) return {};
  try {
    return JSON.parse(Buffer.concat(parts).toString('utf8'));
  } catch {
    throw badInput('request body is not valid JSON');
  }
}

export function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || host === '::1' || host.startsWith('127.');
}

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
