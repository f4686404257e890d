/**
 * Server-sent events: `GET /api/v1/events` streams a status snapshot to each client at a steady
 * pace, so the dashboard updates without polling every endpoint. Snapshots carry cumulative byte
 * counters; the page turns consecutive ones into rates. One timer serves every client, and the
 * number of clients and the bytes queued for a slow one are bounded.
 */
import type { ServerResponse } from 'node:http';
import { TesseraError, badInput } from '../errors.js';
import type { Logger } from '../log.js';
import type { MetricsSources, RepairBacklog } from './metrics.js';
import type { Route } from './server.js';
import type { StatusView } from './types.js';
import type { VolumeView } from './volume-routes.js';

/** Open event streams per node; each costs a socket and a snapshot serialisation per tick. */
export const MAX_SSE_CLIENTS = 16;
export const DEFAULT_EVENT_INTERVAL_MS = 1_000;
export const MIN_EVENT_INTERVAL_MS = 200;
export const MAX_EVENT_INTERVAL_MS = 60_000;
/** A client that lets this much pile up unread is dropped rather than buffered for. */
export const MAX_SSE_QUEUED_BYTES = 1 << 20;

export interface EventSnapshot {
  /** Increases by one per snapshot sent on a stream. */
  seq: number;
  at: string;
  status: StatusView;
  /** Cumulative bytes since the node started. */
  traffic: { peerIn: number; peerOut: number; apiIn: number; apiOut: number; nbdRead: number; nbdWritten: number };
  /** File operations so far: a change tells the page to reload the file list. */
  files: { puts: number; removes: number } | null;
  /** Null until the repair loop reports. */
  redundancy: (RepairBacklog & { repairedChunks: number }) | null;
  volumes: VolumeView[];
}

export interface EventSources {
  status(): StatusView;
  volumes(): VolumeView[];
  metrics: MetricsSources;
  repairBacklog(): RepairBacklog | null;
}

export function buildSnapshot(src: EventSources, seq: number): EventSnapshot {
  const t = src.metrics.transport();
  const api = src.metrics.apiBytes?.() ?? { in: 0, out: 0 };
  const nbd = src.metrics.nbd?.();
  const files = src.metrics.files?.();
  const status = src.status();
  // The repair loop's own report, when this node's status carries one, is the freshest source.
  const repair = (status as StatusView & { repair?: { underReplicatedChunks: number; underReplicatedBytes: number } }).repair;
  const backlog = repair ? { chunks: repair.underReplicatedChunks, bytes: repair.underReplicatedBytes } : src.repairBacklog();
  return {
    seq,
    at: new Date().toISOString(),
    status,
    traffic: {
      peerIn: t.bytesIn ?? 0,
      peerOut: t.bytesOut ?? 0,
      apiIn: api.in,
      apiOut: api.out,
      nbdRead: nbd?.bytesRead ?? 0,
      nbdWritten: nbd?.bytesWritten ?? 0,
    },
    files: files ? { puts: files.putsOk ?? 0, removes: files.removes ?? 0 } : null,
    redundancy: backlog ? { ...backlog, repairedChunks: src.metrics.fetcher?.().copiesRepaired ?? 0 } : null,
    volumes: src.volumes(),
  };
}

interface Client {
  res: ServerResponse;
  intervalMs: number;
  nextAt: number;
  seq: number;
}

export class EventHub {
  private readonly clients = new Set<Client>();
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(private readonly opts: { sources: EventSources; logger: Logger; maxClients?: number }) {}

  get clientCount(): number {
    return this.clients.size;
  }

  route(): Route {
    return { method: 'GET', path: '/api/v1/events', handle: ({ res, url }) => this.open(res, url) };
  }

  private open(res: ServerResponse, url: URL): void {
    if (this.closed) throw new TesseraError('UNAVAILABLE', 'the node is stopping');
    const max = this.opts.maxClients ?? MAX_SSE_CLIENTS;
    if (this.clients.size >= max) {
      throw new TesseraError('UNAVAILABLE', `too many event streams open on this node (${max}); close a dashboard tab or try another node`);
    }
    const raw = url.searchParams.get('interval');
    let intervalMs = DEFAULT_EVENT_INTERVAL_MS;
    if (raw !== null) {
      intervalMs = Number(raw);
      if (!/^\d{1,6}$/.test(raw) || intervalMs < MIN_EVENT_INTERVAL_MS || intervalMs > MAX_EVENT_INTERVAL_MS) {
        throw badInput(`interval=${raw.slice(0, 20)} must be a whole number of milliseconds from ${MIN_EVENT_INTERVAL_MS} to ${MAX_EVENT_INTERVAL_MS}`);
      }
    }
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      'x-accel-buffering': 'no',
    });
    // The stream is meant to stay open; the request socket's idle timeout must not cut it.
    res.socket?.setTimeout(0);
    const client: Client = { res, intervalMs, nextAt: 0, seq: 0 };
    this.clients.add(client);
    res.once('close', () => this.clients.delete(client));
    res.write(`retry: ${Math.max(1000, intervalMs)}\n\n`);
    this.send(client, Date.now());
    this.timer ??= setInterval(() => this.tick(), MIN_EVENT_INTERVAL_MS);
  }

  private tick(): void {
    if (this.clients.size === 0) {
      clearInterval(this.timer);
      this.timer = undefined;
      return;
    }
    const now = Date.now();
    for (const c of this.clients) if (now >= c.nextAt) this.send(c, now);
  }

  private send(c: Client, now: number): void {
    c.nextAt = now + c.intervalMs;
    if (c.res.writableLength > MAX_SSE_QUEUED_BYTES) {
      this.opts.logger.debug({ queued: c.res.writableLength }, 'dropping an event stream that is not being read');
      c.res.destroy();
      this.clients.delete(c);
      return;
    }
    let data: string;
    try {
      data = JSON.stringify(buildSnapshot(this.opts.sources, ++c.seq));
    } catch (err) {
      this.opts.logger.warn({ err }, 'status snapshot failed');
      return;
    }
    c.res.write(`event: status\nid: ${c.seq}\ndata: ${data}\n\n`);
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    for (const c of this.clients) c.res.end();
    this.clients.clear();
  }
}
