/**
 * HTTP routes of the files service. File bodies stream in both directions: an upload is read
 * only as fast as the cluster stores it, a download is written only as fast as the client reads.
 */
import type { ServerResponse } from 'node:http';
import { TesseraError, badInput } from '../errors.js';
import { DEFAULT_BUCKET, DEFAULT_OBJECT_PAGE, MAX_OBJECT_PAGE, type FileEntryView, type FileService, type ObjectService, type ResolvedRef } from '../files/index.js';
import { readJsonBody, sendJson } from './http-util.js';
import { sendPieces } from '../http-pieces.js';
import { checkPutPolicy, parseShards, resolvePutPolicy } from '../content/index.js';
import type { Route } from './server.js';

/** How long the rest of a refused upload is drained before the connection is closed. */
const REFUSED_UPLOAD_DRAIN_MS = 10_000;
/** Longest Range header parsed; a valid single range is far shorter. */
const MAX_RANGE_HEADER_CHARS = 100;
/** Most chunk ids one listing returns. */
const MAX_CHUNK_LISTING = 1_000_000;

function intParam(url: URL, key: string, what: string): number | undefined {
  const v = url.searchParams.get(key);
  if (v === null || v === '') return undefined;
  if (!/^\d{1,10}$/.test(v)) throw badInput(`${key}=${v.slice(0, 20)} is not a whole number (${what})`);
  return Number(v);
}

/**
 * A single byte range from a Range header, as [start, end). Undefined means "whole file".
 * Unsatisfiable or multi-part ranges are a 416.
 */
export function parseRangeHeader(header: string | undefined, size: number): { start: number; end: number } | undefined {
  if (header === undefined) return undefined;
  if (header.length > MAX_RANGE_HEADER_CHARS) throw rangeError(`Range header is longer than ${MAX_RANGE_HEADER_CHARS} characters`, size);
  const m = /^bytes=(\d{0,16})-(\d{0,16})$/.exec(header.trim());
  if (!m) throw rangeError(`Range '${header}' is not a single range of the form bytes=A-B, bytes=A- or bytes=-N`, size);
  const [, a, b] = m as unknown as [string, string, string];
  if (a === '' && b === '') throw rangeError('Range bytes=- names no bytes', size);
  if (a === '') {
    const n = Number(b);
    if (n === 0 || size === 0) throw rangeError(`Range ${header} selects no bytes of a ${size}-byte file`, size);
    return { start: Math.max(0, size - n), end: size };
  }
  const start = Number(a);
  const last = b === '' ? size - 1 : Math.min(Number(b), size - 1);
  if (start >= size || last < start) throw rangeError(`Range ${header} is outside the file's ${size} bytes`, size);
  return { start, end: last + 1 };
}

class RangeError416 extends TesseraError {
  constructor(message: string, readonly size: number) {
    super('BAD_INPUT', message, { size });
  }
}

function rangeError(message: string, size: number): RangeError416 {
  return new RangeError416(message, size);
}

const storageOnlyNames = () =>
  new TesseraError('AUTH', 'this node is storage-only (it joined without the data key): it holds no names and cannot remove files; send the request to a node that has the data key');

/** A name listing's query: prefix, after, token and limit, each bounded. */
function listQuery(url: URL): { prefix?: string; after?: string; token?: string; limit: number } {
  const limit = intParam(url, 'limit', 'names per page') ?? DEFAULT_OBJECT_PAGE;
  if (limit < 1 || limit > MAX_OBJECT_PAGE) throw badInput(`limit must be 1..${MAX_OBJECT_PAGE}, not ${limit}`);
  const out: { prefix?: string; after?: string; token?: string; limit: number } = { limit };
  for (const k of ['prefix', 'after', 'token'] as const) {
    const v = url.searchParams.get(k);
    if (v !== null && v !== '') out[k] = v;
  }
  return out;
}

/**
 * Names are objects of the default bucket (files/object-service.ts); a node without the data key
 * has no object service and answers name requests with AUTH.
 */
export function filesRoutes(files: FileService, objects?: ObjectService): Route[] {
  const resolve = async (ref: string): Promise<ResolvedRef> => (objects ? objects.resolveRef(ref) : { fileId: ref, name: null });
  const needObjects = (): ObjectService => {
    if (!objects) throw storageOnlyNames();
    return objects;
  };
  return [
    {
      method: 'PUT',
      path: '/api/v1/files',
      write: true,
      transfer: true,
      handle: async ({ req, res, url }) => {
        const ac = new AbortController();
        res.on('close', () => {
          if (!res.writableFinished) ac.abort(new TesseraError('CANCELLED', 'the client closed the upload before it finished'));
        });
        try {
          const name = url.searchParams.get('name');
          const replicas = intParam(url, 'replicas', 'the number of copies');
          const quorum = intParam(url, 'quorum', 'copies that must be stored before success');
          const chunkSize = intParam(url, 'chunkSize', 'bytes per chunk');
          const ecText = url.searchParams.get('ec');
          const ec = ecText !== null && ecText !== '' ? parseShards(ecText) : undefined;
          const redundancy = checkPutPolicy({
            ...(replicas !== undefined ? { replicas } : {}),
            ...(quorum !== undefined ? { quorum } : {}),
            ...(ec !== undefined ? { ec } : {}),
          });
          // Read without destroying the request when the put gives up early, so the refusal below
          // can drain it and the client reads the answer instead of a broken pipe.
          const body = req.iterator({ destroyOnReturn: false });
          if (name === null) {
            sendJson(res, 201, await files.put(body, { ...redundancy, ...(chunkSize !== undefined ? { chunkSize } : {}), signal: ac.signal }));
            return;
          }
          const policy = resolvePutPolicy(redundancy, files.defaultPolicy);
          const stored = await needObjects().putName(name, body, { policy, ...(chunkSize !== undefined ? { chunkSize } : {}), signal: ac.signal });
          sendJson(res, 201, { ...stored.file, name: stored.key });
        } catch (e) {
          if (!req.complete) {
            // The rest of a refused upload is read and dropped, so the client sees this answer
            // instead of a broken pipe; a client that keeps sending anyway is cut off.
            req.resume();
            const cutoff = setTimeout(() => req.socket.destroy(), REFUSED_UPLOAD_DRAIN_MS);
            cutoff.unref();
            req.once('end', () => clearTimeout(cutoff));
          }
          throw e;
        }
      },
    },
    {
      method: 'GET',
      path: '/api/v1/files',
      handle: async ({ res, url }) => {
        const page = await needObjects().listObjects(DEFAULT_BUCKET, listQuery(url));
        const list: FileEntryView[] = page.items.map((o) => ({ name: o.key, fileId: o.fileId, size: o.size, createdAt: new Date(o.mtime).toISOString(), etag: o.etag }));
        sendJson(res, 200, { files: list, token: page.token });
      },
    },
    {
      method: 'GET',
      path: '/api/v1/files/:ref/stat',
      handle: async ({ res, params }) => {
        const r = await resolve(params.ref ?? '');
        const inline = r.entry && objects ? objects.inlineStat(r.entry, r.name) : null;
        sendJson(res, 200, inline ?? { ...(await files.stat(r.fileId)), name: r.name });
      },
    },
    {
      method: 'DELETE',
      path: '/api/v1/files/:ref',
      write: true,
      handle: async ({ res, params }) => {
        sendJson(res, 200, await needObjects().removeRef(params.ref ?? ''));
      },
    },
    {
      method: 'GET',
      path: '/api/v1/files/:ref',
      transfer: true,
      handle: async ({ req, res, params }) => {
        const r = await resolve(params.ref ?? '');
        const file = (r.entry && objects?.inlineFile(r.entry)) || (await files.open(r.fileId));
        const size = file.totalSize;
        let range: { start: number; end: number } | undefined;
        try {
          range = parseRangeHeader(req.headers.range, size);
        } catch (e) {
          if (!(e instanceof RangeError416)) throw e;
          const text = JSON.stringify({ error: { code: e.code, message: e.message } });
          res.writeHead(416, { 'content-type': 'application/json; charset=utf-8', 'content-range': `bytes */${size}`, 'content-length': Buffer.byteLength(text) });
          res.end(text);
          return;
        }
        const start = range?.start ?? 0;
        const end = range?.end ?? size;
        const headers: Record<string, string | number> = {
          'content-type': 'application/octet-stream',
          'content-length': end - start,
          'accept-ranges': 'bytes',
          'x-tessera-file-id': file.fileId,
          'x-tessera-size': size,
          'last-modified': new Date(file.createdAt).toUTCString(),
        };
        if (range) headers['content-range'] = `bytes ${start}-${end - 1}/${size}`;
        if (req.method === 'HEAD') {
          res.writeHead(range ? 206 : 200, headers);
          res.end();
          return;
        }
        const ac = new AbortController();
        res.on('close', () => {
          if (!res.writableFinished) ac.abort(new TesseraError('CANCELLED', 'the client closed the download'));
        });
        // Pieces are decrypted into buffers used again, each once the socket has taken the one
        // before: a download allocates a window of buffers, not one per chunk.
        await sendPieces(res, range ? 206 : 200, headers, file.read(start, end, ac.signal, { reuse: true }));
      },
    },
    { method: 'GET', path: '/api/v1/repair', handle: ({ res }) => sendJson(res, 200, files.repairStats()) },
    { method: 'GET', path: '/api/v1/scrub', handle: ({ res }) => sendJson(res, 200, files.scrubStats()) },
    { method: 'POST', path: '/api/v1/scrub', write: true, handle: async ({ res }) => sendJson(res, 200, await files.scrub()) },
    {
      method: 'GET',
      path: '/api/v1/drain',
      handle: async ({ res, url }) => sendJson(res, 200, await files.drainState(url.searchParams.get('node')?.slice(0, 128) ?? undefined)),
    },
    {
      method: 'POST',
      path: '/api/v1/drain',
      write: true,
      handle: async ({ req, res }) => {
        const body = (await readJsonBody(req)) as { node?: unknown; cancel?: unknown } | null;
        const node = body?.node;
        if (node !== undefined && (typeof node !== 'string' || node.length > 128)) throw badInput('node must be a node id or id prefix');
        if (body?.cancel !== undefined && typeof body.cancel !== 'boolean') throw badInput('cancel must be true or false');
        sendJson(res, 200, await files.drain(node, body?.cancel !== true));
      },
    },
    /** Chunk ids this node stores (for operators and tests checking placement); bounded by `limit`. */
    {
      method: 'GET',
      path: '/api/v1/chunks',
      handle: async ({ res, url }) => {
        const limit = intParam(url, 'limit', 'most ids to list') ?? MAX_CHUNK_LISTING;
        if (limit > MAX_CHUNK_LISTING) throw badInput(`limit must be at most ${MAX_CHUNK_LISTING}`);
        sendJson(res, 200, await files.listChunks(limit));
      },
    },
    {
      method: 'GET',
      path: '/api/v1/counters/files',
      handle: ({ res }) => sendJson(res, 200, { ...files.counters, ...files.host.counters, ...files.fetcher.counters }),
    },
  ];
}
