import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { TesseraError } from '../errors.js';

/**
 * Ports for local clusters come from just below the kernel's ephemeral range.
 * A port the kernel hands out for `listen(0)` is in that range, and once closed
 * it can be taken as the source port of any outgoing connection (other tests
 * open thousands) before the node binds it or while a killed node is down.
 * Below the range only a listener can take it.
 */
const EPHEMERAL_RANGE_FILE = '/proc/sys/net/ipv4/ip_local_port_range';
const PICK_SPAN = 16_384;
/** Fewer ports than this below the range would make clashes between test processes likely. */
const MIN_PICK_SPAN = 1_024;
const LOWEST_PICK = 1_024;
const PICK_ATTEMPTS = 64;

/** The [low, high) range to pick from, or undefined where the ephemeral range leaves no room below it. */
export function pickRangeBelow(ephemeralRangeText: string): { low: number; high: number } | undefined {
  const low = Number(ephemeralRangeText.trim().split(/\s+/)[0]);
  if (!Number.isInteger(low) || low - LOWEST_PICK < MIN_PICK_SPAN) return undefined;
  return { low: Math.max(LOWEST_PICK, low - PICK_SPAN), high: low };
}

function readPickRange(): { low: number; high: number } | undefined {
  try {
    return pickRangeBelow(readFileSync(EPHEMERAL_RANGE_FILE, 'utf8'));
  } catch {
    return undefined;
  }
}

const handedOut = new Set<number>();

function tryListen(port: number): Promise<number | undefined> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(undefined));
    srv.listen({ port, host: '127.0.0.1', exclusive: true }, () => {
      const bound = (srv.address() as { port: number }).port;
      srv.close(() => resolve(bound));
    });
  });
}

/** A loopback port that was free a moment ago and that no outgoing connection will take. */
export function freePort(): Promise<number> {
  return freePortIn(readPickRange());
}

/** Picks within `range`; with no range, or none free after a few tries, takes what the kernel gives. */
export async function freePortIn(range: { low: number; high: number } | undefined): Promise<number> {
  if (range) {
    for (let i = 0; i < PICK_ATTEMPTS; i++) {
      const port = range.low + Math.floor(Math.random() * (range.high - range.low));
      if (handedOut.has(port)) continue;
      if ((await tryListen(port)) !== undefined) {
        handedOut.add(port);
        return port;
      }
    }
  }
  const port = await tryListen(0);
  if (port === undefined) throw new TesseraError('UNAVAILABLE', 'no free port on 127.0.0.1');
  return port;
}
