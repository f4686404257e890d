/** Shared pieces of the files integration tests: deterministic data, scans of data dirs, memory peaks. */
import { createCipheriv, createHash } from 'node:crypto';
import { open, readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';

/** Deterministic pseudo-random bytes: the AES-256-CTR keystream of a seed, generated piece by piece. */
export async function* seededBytes(seed: string, size: number, pieceBytes = 256 << 10): AsyncGenerator<Buffer> {
  const key = createHash('sha256').update(seed).digest();
  const cipher = createCipheriv('aes-256-ctr', key, Buffer.alloc(16));
  const zeros = Buffer.alloc(pieceBytes);
  for (let left = size; left > 0; left -= pieceBytes) {
    const n = Math.min(pieceBytes, left);
    yield cipher.update(zeros.subarray(0, n));
  }
}

export async function seededBuffer(seed: string, size: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const p of seededBytes(seed, size)) parts.push(p);
  return Buffer.concat(parts, size);
}

/** An upload source from buffers in memory. */
export async function* pieces(...parts: Buffer[]): AsyncGenerator<Buffer> {
  for (const p of parts) yield p;
}

export async function collect(stream: AsyncIterable<unknown>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const p of stream) parts.push(p as Buffer);
  return Buffer.concat(parts);
}

export async function sha256Of(stream: AsyncIterable<unknown>): Promise<{ hex: string; bytes: number }> {
  const h = createHash('sha256');
  let bytes = 0;
  for await (const p of stream) {
    h.update(p as Buffer);
    bytes += (p as Buffer).length;
  }
  return { hex: h.digest('hex'), bytes };
}

/** Peak resident set (VmHWM) of a live process, in bytes. */
export async function peakRss(pid: number): Promise<number> {
  const text = await readFile(`/proc/${pid}/status`, 'utf8');
  const m = /VmHWM:\s+(\d+) kB/.exec(text);
  if (!m) throw new Error(`no VmHWM for pid ${pid}`);
  return Number(m[1]) * 1024;
}

export async function* walk(dir: string): AsyncGenerator<string> {
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return;
  }
  for (const e of entries) {
    const p = join(dir, e.name);
    if (e.isDirectory()) yield* walk(p);
    else if (e.isFile()) yield p;
  }
}

/** Files under `dir` whose raw bytes contain any of the needles (read in overlapping pieces). */
export async function filesContaining(dir: string, needles: Buffer[]): Promise<string[]> {
  const hits: string[] = [];
  const overlap = Math.max(...needles.map((n) => n.length));
  const piece = 4 << 20;
  for await (const path of walk(dir)) {
    const size = (await stat(path)).size;
    const fh = await open(path, 'r');
    try {
      const buf = Buffer.alloc(piece + overlap);
      for (let at = 0; at < size; at += piece) {
        const { bytesRead } = await fh.read(buf, 0, piece + overlap, at);
        const view = buf.subarray(0, bytesRead);
        if (needles.some((n) => view.includes(n))) {
          hits.push(path);
          break;
        }
      }
    } finally {
      await fh.close();
    }
  }
  return hits;
}

/** Status and parsed error body of a raw API request. */
export async function apiStatus(api: string, path: string, init: RequestInit & { token?: string } = {}): Promise<{ status: number; code?: string; headers: Headers }> {
  const headers = new Headers(init.headers);
  if (init.token) headers.set('authorization', `Bearer ${init.token}`);
  const res = await fetch(`http://${api}${path}`, { ...init, headers });
  const text = await res.text();
  let code: string | undefined;
  try {
    code = (JSON.parse(text) as { error?: { code?: string } }).error?.code;
  } catch {
    /* not an error body */
  }
  return { status: res.status, ...(code ? { code } : {}), headers: res.headers };
}
