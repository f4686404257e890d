import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { test } from 'node:test';
import { freePort, freePortIn, pickRangeBelow } from '../../../src/cli/free-port.js';

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

test('with no room below the ephemeral range, or every pick taken, a port comes from the kernel instead', async () => {
  const fromKernel = await freePortIn(undefined);
  assert.ok(fromKernel > 0 && fromKernel < 65_536);
  // A one-port range whose port is held by a listener: every attempt fails, then the fallback answers.
  const holder = createServer();
  await new Promise<void>((r) => holder.listen(0, '127.0.0.1', () => r()));
  const held = (holder.address() as AddressInfo).port;
  try {
    const got = await freePortIn({ low: held, high: held + 1 });
    assert.notEqual(got, held);
  } finally {
    await new Promise<void>((r) => holder.close(() => r()));
  }
});
