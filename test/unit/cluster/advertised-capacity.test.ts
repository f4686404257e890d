import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AdvertisedCapacity, CAPACITY_RETELL_SHARE, capacityToTell } from '../../../src/cluster/advertised-capacity.js';
import { Peers } from '../../../src/files/peers.js';

const GIB = 2 ** 30;
/** The placement weight files/peers.ts derives from a told capacity. */
const weight = (capacity: number) => Math.max(1, Math.round(capacity / GIB));

test('the first capacity, and no capacity, are told at once', () => {
  assert.equal(capacityToTell(undefined, 70 * GIB), 70 * GIB);
  assert.equal(capacityToTell(70 * GIB, 0), 0, 'a draining node stops being chosen at once');
  assert.equal(capacityToTell(0, 70 * GIB), 70 * GIB, 'a node back from draining is chosen at once');
});

test('free space drained by others in steps of 256 MiB moves the placement weight once per tenth, not once per GiB', () => {
  const start = 69.75 * GIB;
  let told: number | undefined;
  const weights: number[] = [];
  let retold = 0;
  for (let drained = 0; drained <= 20 * GIB; drained += 256 << 20) {
    const before = told;
    told = capacityToTell(told, start - drained);
    if (before !== undefined && told !== before) retold++;
    if (weights.at(-1) !== weight(told)) weights.push(weight(told));
  }
  // Measured as is, the weight would have taken 21 values (70 down to 50); told by tenths, a few.
  assert.ok(weights.length <= 4, `weights told: ${weights.join(', ')}`);
  assert.ok(retold >= 2, `capacity must still follow a disk that fills: retold ${retold} times`);
  // Never more than a tenth away from the truth.
  assert.ok(Math.abs((told as number) - (start - 20 * GIB)) < (told as number) * CAPACITY_RETELL_SHARE);
});

test('a measurement that swings around a GiB boundary is told once', () => {
  let told = capacityToTell(undefined, 69.51 * GIB);
  for (let i = 0; i < 100; i++) told = capacityToTell(told, (i % 2 === 0 ? 69.49 : 69.51) * GIB);
  assert.equal(told, 69.51 * GIB);
});

test('a grown disk or quota is told once it is a tenth larger', () => {
  assert.equal(capacityToTell(100 * GIB, 105 * GIB), 100 * GIB);
  assert.equal(capacityToTell(100 * GIB, 110 * GIB), 110 * GIB);
  assert.equal(capacityToTell(100 * GIB, 90 * GIB), 90 * GIB);
});

test('a capacity that is not a finite number ≥ 0 is refused', () => {
  for (const bad of [-1, Number.NaN, Number.POSITIVE_INFINITY]) assert.throws(() => capacityToTell(undefined, bad), RangeError);
});

/**
 * A store on a filesystem others write to, as the node measures it: min(quota, free + used), with
 * free space the test moves as another program would (a writable stand-in for statfs).
 */
class SharedDisk {
  free: number;
  used = 0;
  constructor(free: number, readonly quota = Number.POSITIVE_INFINITY) {
    this.free = free;
  }
  capacity(): number {
    return Math.min(this.quota, this.free + this.used);
  }
}

/** The placement view of three nodes on one shared disk, as files/peers.ts builds it from what each tells. */
function threeNodesOn(disk: SharedDisk, tell: (measure: () => number) => () => number): Peers {
  const told = ['a', 'b', 'c'].map((nodeId) => ({ nodeId, capacity: tell(() => disk.capacity()) }));
  return new Peers({ selfId: 'a', live: () => told.map((n) => ({ nodeId: n.nodeId, capacity: n.capacity() })), caller: undefined as never });
}

test('free space drained across GiB boundaries by other programs: the placement view a repair pass keys on stays put until a tenth has gone', () => {
  const measured = (m: () => number) => m;
  const advertised = (m: () => number) => {
    const c = new AdvertisedCapacity(m);
    return () => c.now();
  };
  const runs = { measured: 0, advertised: 0 };
  for (const [name, tell] of [['measured', measured], ['advertised', advertised]] as const) {
    const disk = new SharedDisk(69.6 * GIB);
    const peers = threeNodesOn(disk, tell);
    let view = peers.live();
    // Another program writes 5 GiB in 128 MiB steps; each changed view starts a pass on every node (files/repair.ts).
    for (let written = 0; written < 5 * GIB; written += 128 << 20) {
      disk.free -= 128 << 20;
      const now = peers.live();
      if (now !== view) runs[name]++;
      view = now;
    }
  }
  assert.ok(runs.measured >= 4, `told as measured, the view changes with each GiB: ${runs.measured}`);
  assert.equal(runs.advertised, 0, 'told by tenths, 5 GiB drained from ~70 GiB changes no weight');
});

test("the node's own writes leave its told capacity alone; a tenth drained by others is told, and so is a drain to zero", () => {
  const disk = new SharedDisk(40 * GIB);
  const c = new AdvertisedCapacity(() => disk.capacity());
  const first = c.now();
  assert.equal(first, 40 * GIB);
  // Its own 3 GiB: free to used, capacity unchanged.
  disk.free -= 3 * GIB;
  disk.used += 3 * GIB;
  assert.equal(c.now(), first);
  disk.free -= 3.9 * GIB;
  assert.equal(c.now(), first, 'under a tenth drained: nothing new told');
  disk.free -= 0.2 * GIB;
  assert.equal(c.now(), disk.capacity(), 'a tenth drained: told anew');
  disk.free = 0;
  disk.used = 0;
  assert.equal(c.now(), 0, 'a store that can take nothing is told at once');
});

test('a quota below the free space holds the told capacity whatever others write', () => {
  const disk = new SharedDisk(60 * GIB, 10 * GIB);
  const c = new AdvertisedCapacity(() => disk.capacity());
  assert.equal(c.now(), 10 * GIB);
  disk.free -= 45 * GIB;
  assert.equal(c.now(), 10 * GIB);
});
