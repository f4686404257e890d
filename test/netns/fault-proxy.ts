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
  /** Delays applied, for the test's figures (ms, one direction). */
  delays: number[];
}

/** Delays kept for the figures; a bound, so a long test cannot grow memory. */
const MAX_DELAY_SAMPLES = 100_000;

export class FaultProxy {
  readonly stats: ProxyStats = { connections: 0, resets: 0, stalls: 0, bytes: 0, delays: [] };
  private readonly sockets = new Set<Socket>();
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
    const server = createServer();
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
    const upstream = connect(this.target.port, this.target.host);
    for (const s of [client, upstream]) {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
      s.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
    }
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
    this.pipe(client, upstream);
    this.pipe(upstream, client);
    if (this.random() < (this.faults.resetFraction ?? 0)) {
      const t = setTimeout(() => {
        this.stats.resets++;
        client.resetAndDestroy();
        upstream.resetAndDestroy();
      }, this.random() * 2000);
      client.on('close', () => clearTimeout(t));
    }
  }

  /** Forwards `from` → `to`, each chunk after its delay, never overtaking an earlier chunk. */
  private pipe(from: Socket, to: Socket): void {
    let releaseAt = 0;
    from.on('data', (chunk: Buffer) => {
      this.stats.bytes += chunk.length;
      const now = Date.now();
      let at = now + this.delay();
      if (this.random() < (this.faults.stallFraction ?? 0)) {
        this.stats.stalls++;
        at += this.faults.stallMs ?? 1000;
      }
      releaseAt = Math.max(releaseAt, at);
      setTimeout(() => {
        if (!to.destroyed) to.write(chunk);
      }, releaseAt - now);
    });
    from.on('end', () => {
      setTimeout(() => to.end(), Math.max(0, releaseAt - Date.now()));
    });
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
