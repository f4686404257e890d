/**
 * A fault-injecting TCP proxy: every chunk of data in either direction is held for a delay
 * (mean ± jitter, order preserved, as on a long link), a fraction of connections is reset at a
 * random moment, and a fraction stalls (stops forwarding) for a while. It stands in for `tc netem`,
 * which this kernel lacks. Faults can be changed while connections are open.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';
import { createPrng } from '../../src/cluster/sim/prng.js';
import type { RandomSource } from '../../src/cluster/clock.js';

export interface FaultSpec {
  delayMs: number;
  jitterMs: number;
  /** Probability that a new connection is reset after a random 0–2 s. */
  resetFraction?: number;
  /** Probability that a data chunk starts a stall of `stallMs` on its connection. */
  stallFraction?: number;
  stallMs?: number;
}

export interface ProxyStats {
  connections: number;
  resets: number;
  stalls: number;
  bytes: number;
  /** How connections ended, first side to go and why ("client:close", "upstream:ECONNRESET"), counted. */
  endings: Record<string, number>;
  /** Delays applied, for the test's figures (ms, one direction). */
  delays: number[];
}

/** Delays kept for the figures; a bound, so a long test cannot grow memory. */
const MAX_DELAY_SAMPLES = 100_000;

export class FaultProxy {
  readonly stats: ProxyStats = { connections: 0, resets: 0, stalls: 0, bytes: 0, endings: {}, delays: [] };
  private readonly sockets = new Set<Socket>();
  /** Open connections, client side and upstream side, for resets on demand. */
  private readonly pairs = new Set<[Socket, Socket]>();
  private readonly random: RandomSource;

  private constructor(
    private readonly server: Server,
    public faults: FaultSpec,
    seed: number,
    private readonly target: { host: string; port: number },
  ) {
    this.random = createPrng(seed, 'fault-proxy');
    server.on('connection', (s) => this.accept(s));
  }

  static async start(o: { listenHost: string; target: { host: string; port: number }; faults: FaultSpec; seed: number }): Promise<FaultProxy> {
    const server = createServer({ allowHalfOpen: true });
    const p = new FaultProxy(server, o.faults, o.seed, o.target);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, o.listenHost, () => resolve());
    });
    return p;
  }

  get port(): number {
    return (this.server.address() as { port: number }).port;
  }

  private delay(): number {
    const d = Math.max(0, this.faults.delayMs + (this.random() * 2 - 1) * this.faults.jitterMs);
    if (this.stats.delays.length < MAX_DELAY_SAMPLES) this.stats.delays.push(d);
    return d;
  }

  private accept(client: Socket): void {
    this.stats.connections++;
    const upstream = connect({ port: this.target.port, host: this.target.host, allowHalfOpen: true });
    // When one side goes away, the other still gets what is held for it (its delay), then closes:
    // closing at once would drop bytes already "on the wire", which a real link delivers.
    const toUpstream = this.pipe(client, upstream);
    const toClient = this.pipe(upstream, client);
    const closeLater = (s: Socket, q: { releaseAt: number }) => {
      setTimeout(() => s.destroy(), Math.max(0, q.releaseAt - Date.now()) + 10);
    };
    const pair: [Socket, Socket] = [client, upstream];
    this.pairs.add(pair);
    client.on('close', () => this.pairs.delete(pair));
    for (const s of [client, upstream]) {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    }
    let ended = false;
    const ending = (what: string) => {
      if (ended) return;
      ended = true;
      this.stats.endings[what] = (this.stats.endings[what] ?? 0) + 1;
    };
    client.on('error', (e: NodeJS.ErrnoException) => (ending(`client:${e.code ?? 'error'}`), closeLater(upstream, toUpstream)));
    upstream.on('error', (e: NodeJS.ErrnoException) => (ending(`upstream:${e.code ?? 'error'}`), closeLater(client, toClient)));
    client.on('close', () => (ending('client:close'), closeLater(upstream, toUpstream)));
    upstream.on('close', () => (ending('upstream:close'), closeLater(client, toClient)));
    if (this.random() < (this.faults.resetFraction ?? 0)) {
      const t = setTimeout(() => {
        this.stats.resets++;
        ending('reset');
        client.resetAndDestroy();
        upstream.resetAndDestroy();
      }, this.random() * 2000);
      client.on('close', () => clearTimeout(t));
    }
  }

  /**
   * Forwards `from` → `to`, each chunk after its delay, never overtaking an earlier chunk; returns
   * the time the last chunk held is due, for a close that must not overtake it either. One queue and
   * one timer per direction: a timer per chunk would not keep order, since Node does not promise that
   * timers due in the same millisecond run in the order they were set (and one reordered segment
   * breaks the TLS stream inside).
   */
  private pipe(from: Socket, to: Socket): { releaseAt: number } {
    const q = { releaseAt: 0 };
    const held: Array<{ at: number; chunk: Buffer }> = [];
    let timer: NodeJS.Timeout | undefined;
    let ended = false;
    const pump = () => {
      timer = undefined;
      const now = Date.now();
      while (held.length > 0 && held[0]!.at <= now) {
        const { chunk } = held.shift()!;
        if (!to.destroyed && to.writable) to.write(chunk);
      }
      if (held.length > 0) timer = setTimeout(pump, held[0]!.at - now);
      else if (ended && !to.destroyed) to.end();
    };
    from.on('data', (chunk: Buffer) => {
      this.stats.bytes += chunk.length;
      const now = Date.now();
      let at = now + this.delay();
      if (this.random() < (this.faults.stallFraction ?? 0)) {
        this.stats.stalls++;
        at += this.faults.stallMs ?? 1000;
      }
      q.releaseAt = Math.max(q.releaseAt, at);
      held.push({ at: q.releaseAt, chunk });
      if (timer === undefined) timer = setTimeout(pump, q.releaseAt - now);
    });
    from.on('end', () => {
      ended = true;
      if (timer === undefined) pump();
    });
    return q;
  }

  /** Resets one open connection (the oldest), both sides at once; false when none is open. */
  resetOne(): boolean {
    const pair = this.pairs.values().next().value as [Socket, Socket] | undefined;
    if (!pair) return false;
    this.pairs.delete(pair);
    this.stats.resets++;
    this.stats.endings['reset'] = (this.stats.endings['reset'] ?? 0) + 1;
    pair[0].resetAndDestroy();
    pair[1].resetAndDestroy();
    return true;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
