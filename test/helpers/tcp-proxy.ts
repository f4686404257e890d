/**
 * A loopback TCP proxy for tests that must see or disturb what crosses the wire between nodes:
 * it forwards every connection to `target`, keeps a copy of all bytes it carried, and lets a test
 * alter the bytes of bulk connections (those not starting with a TLS record) on their way.
 */
import * as net from 'node:net';

export interface ProxyOptions {
  /** host:port every accepted connection is forwarded to. */
  target: string;
  /** Called for each piece a bulk connection's dialer sends; returns the bytes to forward. */
  tamperBulk?: (piece: Buffer, offset: number) => Buffer;
  /** Keep a copy of everything carried (both directions), at most this many bytes. */
  recordBytes?: number;
}

export interface TcpProxy {
  addr: string;
  /** Connections seen, by kind of first byte. */
  counts: { tls: number; bulk: number };
  recorded(): Buffer;
  close(): Promise<void>;
}

const TLS_RECORD = 0x16;

export async function startProxy(o: ProxyOptions): Promise<TcpProxy> {
  const [host, port] = [o.target.slice(0, o.target.lastIndexOf(':')), Number(o.target.slice(o.target.lastIndexOf(':') + 1))];
  const pieces: Buffer[] = [];
  let kept = 0;
  const keep = (b: Buffer) => {
    if (o.recordBytes === undefined || kept >= o.recordBytes) return;
    pieces.push(Buffer.from(b));
    kept += b.length;
  };
  const counts = { tls: 0, bulk: 0 };
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect({ host, port });
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {});
    }
    let kind: 'tls' | 'bulk' | undefined;
    let offset = 0;
    client.on('data', (b: Buffer) => {
      if (kind === undefined) {
        kind = b[0] === TLS_RECORD ? 'tls' : 'bulk';
        counts[kind]++;
      }
      const out = kind === 'bulk' && o.tamperBulk ? o.tamperBulk(b, offset) : b;
      offset += b.length;
      keep(out);
      upstream.write(out);
    });
    upstream.on('data', (b: Buffer) => {
      keep(b);
      client.write(b);
    });
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const a = server.address() as net.AddressInfo;
  return {
    addr: `127.0.0.1:${a.port}`,
    counts,
    recorded: () => Buffer.concat(pieces),
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
