/**
 * An NBD server in the test's own process on a loopback port, and a bounded wait for what it
 * reaches just after a client sees the effect.
 */
import assert from 'node:assert/strict';
import { NbdServer } from '../../src/block/nbd/index.js';
import type { VolumeProvider } from '../../src/block/device.js';

export async function startServer(provider: VolumeProvider, extra: Partial<ConstructorParameters<typeof NbdServer>[0]> = {}) {
  const server = new NbdServer({ provider, ...extra });
  const addr = await server.listen({ host: '127.0.0.1', port: 0 });
  return { server, addr };
}

/** Polls a condition the server reaches just after the client sees the effect (bounded). */
export async function waitFor(cond: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
