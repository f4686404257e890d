import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { freePort, pickRangeBelow } from '../../../src/cli/free-port.js';

test('the pick range sits just below the ephemeral range, or is absent when there is no room', () => {
  assert.deepEqual(pickRangeBelow('32768\t60999\n'), { low: 16_384, high: 32_768 });
  assert.deepEqual(pickRangeBelow('10000 65000'), { low: 1_024, high: 10_000 });
  assert.equal(pickRangeBelow('1500 65000'), undefined);
  assert.equal(pickRangeBelow('garbage'), undefined);
  assert.equal(pickRangeBelow(''), undefined);
});

test('free ports are distinct and never in the kernel ephemeral range, so outgoing connections cannot take them', async (t) => {
  let text: string;
  try {
    text = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8');
  } catch {
    t.skip('no ephemeral range to compare with on this system');
    return;
  }
  const range = pickRangeBelow(text);
  if (!range) {
    t.skip('the ephemeral range leaves no room below it');
    return;
  }
  const ports = [];
  for (let i = 0; i < 50; i++) ports.push(await freePort());
  assert.equal(new Set(ports).size, ports.length);
  for (const p of ports) assert.ok(p >= range.low && p < range.high, `port ${p} outside [${range.low}, ${range.high})`);
});
