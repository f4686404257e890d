/**
 * A map that holds at most `max` entries, forgetting the oldest inserted first: for values that
 * can always be read again from where they are kept, so forgetting one costs a read, never a
 * wrong answer. Pure, no I/O.
 */
import { badInput } from '../errors.js';

export class BoundedCache<V> {
  readonly #map = new Map<string, V>();

  constructor(readonly max: number) {
    if (!Number.isInteger(max) || max < 1) throw badInput(`cache bound must be a positive integer, got ${max}`);
  }

  get size(): number {
    return this.#map.size;
  }

  get(key: string): V | undefined {
    return this.#map.get(key);
  }

  set(key: string, value: V): void {
    // Deleting first moves a known key to the young end, so a value in use stays.
    this.#map.delete(key);
    this.#map.set(key, value);
    if (this.#map.size > this.max) this.#map.delete(this.#map.keys().next().value as string);
  }

  clear(): void {
    this.#map.clear();
  }
}
