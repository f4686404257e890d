/**
 * Zones: the failure domain a node declares (a rack, a room, a site). Placement spreads every
 * chunk's copies and shards over distinct zones, so the default must not split one machine's
 * processes apart: it is the host's name, the smallest domain that fails as a whole.
 */
import { hostname } from 'node:os';
import { TesseraError } from '../errors.js';
import { MAX_ZONE_CHARS, zoneSchema } from './membership-wire.js';

/** Zone of a node that names none: this host's name, cut to the zone limit. */
export function defaultZone(host: string = hostname()): string {
  const clean = host.replace(/[^\x21-\x7e]/g, '-').slice(0, MAX_ZONE_CHARS);
  return clean === '' ? 'default' : clean;
}

/** The zone an operator gave, or BAD_INPUT naming the rule. */
export function checkZone(zone: string, what = '--zone'): string {
  if (!zoneSchema.safeParse(zone).success) {
    throw new TesseraError('BAD_INPUT', `${what} must be 1 to ${MAX_ZONE_CHARS} printable ASCII characters without spaces (e.g. rack1), got ${JSON.stringify(zone)}`);
  }
  return zone;
}

/**
 * How many zones can fail at once while a chunk stays readable: `pieces` lists, for each copy (or
 * each distinct shard), the zones that hold it; the chunk needs `needed` pieces (1 for replicas, k
 * for k+m). The worst zones fail first: each step removes the zone whose loss destroys the most
 * remaining pieces. That is exact when every piece sits in one zone, as placement arranges, and
 * never overstates tolerance otherwise by more than the greedy choice can. -1: not readable now.
 */
export function zoneLossTolerance(pieces: ReadonlyArray<ReadonlyArray<string>>, needed: number): number {
  const alive = pieces.filter((z) => z.length > 0).map((z) => new Set(z));
  if (alive.length < needed) return -1;
  let tolerated = 0;
  for (;;) {
    const loss = new Map<string, number>();
    for (const zones of alive) if (zones.size === 1) for (const z of zones) loss.set(z, (loss.get(z) ?? 0) + 1);
    let worst: string | undefined;
    let worstLoss = -1;
    const every = new Set<string>();
    for (const zones of alive) for (const z of zones) every.add(z);
    for (const z of every) {
      const l = loss.get(z) ?? 0;
      if (l > worstLoss || (l === worstLoss && worst !== undefined && z < worst)) {
        worst = z;
        worstLoss = l;
      }
    }
    if (worst === undefined) return tolerated;
    for (let i = alive.length - 1; i >= 0; i--) {
      const zones = alive[i]!;
      zones.delete(worst);
      if (zones.size === 0) alive.splice(i, 1);
    }
    if (alive.length < needed) return tolerated;
    tolerated++;
  }
}
