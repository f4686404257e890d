/**
 * The capacity a node tells the cluster, which weights placement (in whole GiB, files/peers.ts).
 *
 * A store's capacity is min(quota, free + used): its own writes move space from free to used and
 * leave it alone, but anything else writing to the same filesystem (other nodes sharing a disk,
 * logs, a user's files) drains it. Told as measured, it crossed a GiB boundary with every GiB
 * written elsewhere, every node's placement weights changed, and every node ran a repair pass over
 * all its chunks, asking peers about each: 1–2 s of CPU per node per GiB at 8 GiB stored, on a
 * machine where three nodes share one disk. Told only when it has moved by a tenth since it was
 * last told, the weights change about once per tenth of the disk, and placement still follows a
 * disk that fills or grows. Being what is broadcast, it is the same number on every node, so
 * every node places by the same weights, this one included.
 */

/** The share of the told capacity the measured one must differ by before it is told anew. */
export const CAPACITY_RETELL_SHARE = 0.1;

/**
 * What to tell now, given what was told last (undefined: nothing yet) and what is measured. No
 * capacity (a draining node, a store that cannot take more) and the first capacity are told at
 * once: placement must stop or start choosing the node without waiting for a tenth.
 */
export function capacityToTell(told: number | undefined, measured: number): number {
  if (!Number.isFinite(measured) || measured < 0) throw new RangeError(`capacity must be a finite number ≥ 0, got ${measured}`);
  if (told === undefined || told === 0 || measured === 0) return measured;
  return Math.abs(measured - told) >= told * CAPACITY_RETELL_SHARE ? measured : told;
}

/**
 * A node's told capacity, kept between readings of its measured one. Every reader (the
 * membership's gossip and this node's own placement view) goes through `now()`, so the number
 * this node places by is the one its peers were told.
 */
export class AdvertisedCapacity {
  #told: number | undefined;

  constructor(private readonly measure: () => number) {}

  now(): number {
    this.#told = capacityToTell(this.#told, this.measure());
    return this.#told;
  }
}
