/**
 * The dashboard's side of the HTTP API: the token, JSON calls, uploads with progress and the
 * status event stream. Runs in the browser; it shares only type declarations with the server.
 */
import type { EventSnapshot } from '../events.js';
import type { FileListView, PutResultView } from '../types.js';

const TOKEN_KEY = 'tessera.apiToken';
/** One SSE record is a status snapshot; anything far bigger means the stream is not ours. */
const MAX_EVENT_BUFFER_CHARS = 8 << 20;

export class ApiError extends Error {
  constructor(readonly status: number, readonly code: string, message: string) {
    super(message);
  }
}

/**
 * The token comes from the URL fragment (`tessera dashboard` prints such a link; a fragment never
 * reaches a server or a log) or from what the user typed before, kept in this origin's storage.
 */
export function initialToken(): string {
  const m = /(?:^#|&)token=([^&]+)/.exec(location.hash);
  if (m?.[1]) {
    saveToken(decodeURIComponent(m[1]));
    history.replaceState(null, '', location.pathname + location.search);
  }
  return localStorage.getItem(TOKEN_KEY) ?? '';
}

export function saveToken(token: string): void {
  if (token) localStorage.setItem(TOKEN_KEY, token);
  else localStorage.removeItem(TOKEN_KEY);
}

function authHeaders(token: string): Record<string, string> {
  return token ? { authorization: `Bearer ${token}` } : {};
}

async function errorOf(res: Response): Promise<ApiError> {
  try {
    const body = (await res.json()) as { error?: { code?: string; message?: string } };
    return new ApiError(res.status, body.error?.code ?? 'HTTP', body.error?.message ?? res.statusText);
  } catch {
    return new ApiError(res.status, 'HTTP', `${res.status} ${res.statusText}`);
  }
}

async function json<T>(token: string, path: string, init: RequestInit = {}): Promise<T> {
  const res = await fetch(path, { ...init, headers: { ...authHeaders(token), ...(init.headers as Record<string, string> | undefined) }, cache: 'no-store' });
  if (!res.ok) throw await errorOf(res);
  return (await res.json()) as T;
}

/** The first page of names (up to 1,000): the browser is for a person's files, not a bucket's millions. */
export const listFiles = async (token: string) => (await json<FileListView>(token, '/api/v1/files?limit=1000')).files;
export const removeFile = (token: string, ref: string) => json<unknown>(token, `/api/v1/files/${encodeURIComponent(ref)}`, { method: 'DELETE' });

/** XMLHttpRequest, because fetch reports no upload progress; the browser streams the File from disk. */
export function uploadFile(token: string, file: File, name: string, onProgress: (loaded: number, total: number) => void): { done: Promise<PutResultView>; abort(): void } {
  const xhr = new XMLHttpRequest();
  const done = new Promise<PutResultView>((resolve, reject) => {
    xhr.open('PUT', `/api/v1/files?name=${encodeURIComponent(name)}`);
    if (token) xhr.setRequestHeader('authorization', `Bearer ${token}`);
    xhr.setRequestHeader('content-type', 'application/octet-stream');
    xhr.upload.onprogress = (e) => onProgress(e.loaded, e.lengthComputable ? e.total : file.size);
    xhr.onload = () => {
      let body: { error?: { code?: string; message?: string } } & Partial<PutResultView> = {};
      try {
        body = JSON.parse(xhr.responseText) as typeof body;
      } catch {
        /* a non-JSON answer is reported by status below */
      }
      if (xhr.status >= 200 && xhr.status < 300) resolve(body as PutResultView);
      else reject(new ApiError(xhr.status, body.error?.code ?? 'HTTP', body.error?.message ?? `upload failed with status ${xhr.status}`));
    };
    xhr.onerror = () => reject(new ApiError(0, 'NETWORK', 'the node did not answer the upload'));
    xhr.onabort = () => reject(new ApiError(0, 'CANCELLED', 'upload cancelled'));
    xhr.send(file);
  });
  return { done, abort: () => xhr.abort() };
}

/** Fetches a file with progress; the page then hands the bytes to the browser as a download. */
export async function downloadFile(token: string, ref: string, onProgress: (loaded: number, total: number) => void): Promise<Blob> {
  const res = await fetch(`/api/v1/files/${encodeURIComponent(ref)}`, { headers: authHeaders(token), cache: 'no-store' });
  if (!res.ok || !res.body) throw await errorOf(res);
  const total = Number(res.headers.get('content-length') ?? 0);
  const parts: Uint8Array[] = [];
  let loaded = 0;
  const reader = res.body.getReader();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    parts.push(value);
    loaded += value.length;
    onProgress(loaded, total);
  }
  return new Blob(parts as BlobPart[], { type: 'application/octet-stream' });
}

export type StreamState = { kind: 'connecting' } | { kind: 'live' } | { kind: 'retrying'; error: string; auth: boolean };

/**
 * Reads `/api/v1/events` with fetch rather than EventSource, because EventSource cannot send the
 * Authorization header a non-loopback API requires. Reconnects with backoff until stopped.
 */
export function streamEvents(token: string, onSnapshot: (s: EventSnapshot) => void, onState: (s: StreamState) => void): () => void {
  const ac = new AbortController();
  let delay = 500;
  const run = async (): Promise<void> => {
    while (!ac.signal.aborted) {
      onState({ kind: 'connecting' });
      try {
        const res = await fetch('/api/v1/events', { headers: authHeaders(token), signal: ac.signal, cache: 'no-store' });
        if (!res.ok || !res.body) throw await errorOf(res);
        onState({ kind: 'live' });
        delay = 500;
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        let buf = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += value;
          if (buf.length > MAX_EVENT_BUFFER_CHARS) throw new Error('event stream record too large');
          let end: number;
          while ((end = buf.indexOf('\n\n')) >= 0) {
            const record = buf.slice(0, end);
            buf = buf.slice(end + 2);
            let event = 'message';
            const data: string[] = [];
            for (const line of record.split('\n')) {
              if (line.startsWith('event:')) event = line.slice(6).trim();
              else if (line.startsWith('data:')) data.push(line.slice(5).trimStart());
            }
            if (event === 'status' && data.length) onSnapshot(JSON.parse(data.join('\n')) as EventSnapshot);
          }
        }
        throw new Error('the node closed the event stream');
      } catch (err) {
        if (ac.signal.aborted) return;
        const e = err as Error;
        onState({ kind: 'retrying', error: e.message, auth: err instanceof ApiError && err.status === 401 });
        await new Promise((r) => setTimeout(r, delay));
        delay = Math.min(delay * 2, 8_000);
      }
    }
  };
  void run();
  return () => ac.abort();
}
