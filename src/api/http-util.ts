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
  // Listeners rather than an async iterator: a small body (one object record) arrives in one chunk,
  // and the iterator's promise per chunk cost more than the parse.
  const body = await new Promise<Buffer>((resolve, reject) => {
    const parts: Buffer[] = [];
    let total = 0;
    const done = (err?: unknown) => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      req.off('close', onClose);
      if (err !== undefined) reject(err);
      else resolve(parts.length === 1 ? parts[0]! : Buffer.concat(parts, total));
    };
    const onData = (chunk: Buffer) => {
      total += chunk.length;
      if (total > MAX_JSON_BODY_BYTES) {
        done(tooLarge(`JSON body is over the ${MAX_JSON_BODY_BYTES}-byte limit`));
        // Nothing more of it is read: the connection goes, as a client sending without limit must not hold it.
        req.destroy();
        return;
      }
      parts.push(chunk);
    };
    const onEnd = () => done();
    const cutOff = () => new TesseraError('BAD_INPUT', 'the request was cut off before its body ended');
    // A client that goes away mid-body shows as an 'aborted' error before the close.
    const onError = (err: Error) => done(req.complete ? err : cutOff());
    const onClose = () => {
      if (!req.complete) done(cutOff());
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
    req.on('close', onClose);
  });
  if (body.length === 0) return {};
  try {
    return JSON.parse(body.toString('utf8'));
  } catch {
    throw badInput('request body is not valid JSON');
  }
}

export function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || host === '::1' || host.startsWith('127.');
}

