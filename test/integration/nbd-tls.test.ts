/**
 * The NBD face's TLS and bounds against a byte-level client over loopback: STARTTLS with a
 * pre-shared key or an X.509 certificate, what a client may do before TLS when it is required,
 * the bind policy, the unix socket's mode, the idle timeout and the shared in-flight budget.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type tls from 'node:tls';
import { NbdServer, type NbdAddress } from '../../src/block/nbd/index.js';
import { MemoryVolumeProvider } from '../helpers/memory-device.js';
import type { BlockDevice, VolumeProvider } from '../../src/block/device.js';
import * as P from '../../src/block/nbd/protocol.js';
import type { NbdTls } from '../../src/block/nbd/tls.js';
import { isTesseraError } from '../../src/errors.js';
import { startServer, waitFor } from '../helpers/nbd-in-process.js';
import { RawNbdClient, infoData } from '../helpers/nbd-raw-client.js';
import { CLI_PATH } from '../../src/cli/local-cluster.js';

const MiB = 1 << 20;
const KEY = randomBytes(32);
const PSK: NbdTls = { mode: 'require', credentials: { psk: new Map([['alice', KEY]]) } };
const pskClient = (key = KEY): tls.ConnectionOptions => ({
  pskCallback: () => ({ identity: 'alice', psk: key }),
  ciphers: 'TLS_AES_128_GCM_SHA256:PSK-AES256-GCM-SHA384',
  checkServerIdentity: () => undefined,
});

/** Greeting, STARTTLS, TLS handshake: the client is then inside TLS, still haggling. */
async function tlsClient(addr: NbdAddress, opts: tls.ConnectionOptions): Promise<RawNbdClient> {
  const c = await RawNbdClient.connect(addr);
  await c.start();
  c.sendOption(P.OPT_STARTTLS);
  const r = await c.optionReply();
  assert.equal(r.type, P.REP_ACK);
  await c.startTls(opts);
  return c;
}

/** GO on `name`, a write and a read back of 4 KiB, inside whatever the client has set up. */
async function roundTrip(c: RawNbdClient, name = 'disk'): Promise<void> {
  c.sendOption(P.OPT_GO, infoData(name, []));
  const rs = await c.optionReplies();
  assert.equal(rs.at(-1)!.type, P.REP_ACK);
  const data = randomBytes(4096);
  c.request(P.CMD_WRITE, 1n, 8192, data.length, 0, data);
  assert.equal((await c.simpleReply()).error, 0);
  c.request(P.CMD_READ, 2n, 8192, data.length);
  const back = await c.simpleReply(data.length);
  assert.deepEqual(back.data, data);
  c.request(P.CMD_DISC, 0n, 0, 0);
  await c.closed;
}

describe('NBD STARTTLS with a pre-shared key, TLS required', () => {
  let server: NbdServer;
  let addr: NbdAddress;
  before(async () => ({ server, addr } = await startServer(new MemoryVolumeProvider([{ name: 'disk', size: 8 * MiB }]), { tls: PSK })));
  after(() => server.close());

  it('answers every option but STARTTLS and ABORT with ERR_TLS_REQD and names no export', async () => {
    const c = await RawNbdClient.connect(addr);
    await c.start();
    c.sendOption(P.OPT_LIST);
    const list = await c.optionReply();
    assert.equal(list.type, P.REP_ERR_TLS_REQD);
    assert.equal(list.data.includes(Buffer.from('disk')), false);
    c.sendOption(P.OPT_GO, infoData('disk', []));
    assert.equal((await c.optionReply()).type, P.REP_ERR_TLS_REQD);
    c.sendOption(P.OPT_STRUCTURED_REPLY);
    assert.equal((await c.optionReply()).type, P.REP_ERR_TLS_REQD);
    c.sendOption(P.OPT_ABORT);
    assert.equal((await c.optionReply()).type, P.REP_ACK);
    await c.closed;
  });

  it('closes a client that picks an export with NBD_OPT_EXPORT_NAME before TLS', async () => {
    const before = server.counters.tlsRefused;
    const c = await RawNbdClient.connect(addr);
    await c.start();
    c.sendOption(P.OPT_EXPORT_NAME, Buffer.from('disk'));
    await c.closed;
    assert.equal(server.counters.tlsRefused, before + 1);
  });

  it('serves reads and writes inside TLS after STARTTLS, and refuses a second STARTTLS', async () => {
    const c = await tlsClient(addr, pskClient());
    c.sendOption(P.OPT_STARTTLS);
    assert.equal((await c.optionReply()).type, P.REP_ERR_INVALID);
    c.sendOption(P.OPT_LIST);
    const rs = await c.optionReplies();
    assert.equal(rs.at(-1)!.type, P.REP_ACK);
    assert.ok(rs.some((r) => r.type === P.REP_SERVER && r.data.includes(Buffer.from('disk'))));
    await roundTrip(c);
  });

  it('refuses a client whose key is wrong and keeps serving the right one', async () => {
    const before = server.counters.tlsRefused;
    await assert.rejects(tlsClient(addr, pskClient(randomBytes(32))));
    await waitFor(() => server.counters.tlsRefused === before + 1, 'the refusal to be counted');
    await roundTrip(await tlsClient(addr, pskClient()));
  });

  it('refuses STARTTLS with data, and a client that speaks before the TLS handshake', async () => {
    const c = await RawNbdClient.connect(addr);
    await c.start();
    c.sendOption(P.OPT_STARTTLS, Buffer.from('x'));
    assert.equal((await c.optionReply()).type, P.REP_ERR_INVALID);
    const before = server.counters.protocolErrors;
    // STARTTLS and another option in one write: the server must not read plaintext as TLS.
    const h = Buffer.alloc(32);
    h.writeBigUInt64BE(P.IHAVEOPT, 0); h.writeUInt32BE(P.OPT_STARTTLS, 8); h.writeUInt32BE(0, 12);
    h.writeBigUInt64BE(P.IHAVEOPT, 16); h.writeUInt32BE(P.OPT_LIST, 24); h.writeUInt32BE(0, 28);
    c.write(h);
    await c.closed;
    assert.equal(server.counters.protocolErrors, before + 1);
  });
});

describe('NBD TLS settings', () => {
  const provider = new MemoryVolumeProvider([{ name: 'disk', size: 4 * MiB }]);

  it('with TLS off, answers STARTTLS with ERR_POLICY and serves plaintext', async () => {
    const { server, addr } = await startServer(provider);
    try {
      const c = await RawNbdClient.connect(addr);
      await c.start();
      c.sendOption(P.OPT_STARTTLS);
      assert.equal((await c.optionReply()).type, P.REP_ERR_POLICY);
      await roundTrip(c);
    } finally {
      await server.close();
    }
  });

  it('with TLS on, serves both plaintext clients and TLS clients', async () => {
    const { server, addr } = await startServer(provider, { tls: { ...PSK, mode: 'on' } });
    try {
      const plain = await RawNbdClient.connect(addr);
      await plain.start();
      await roundTrip(plain);
      await roundTrip(await tlsClient(addr, pskClient()));
    } finally {
      await server.close();
    }
  });

  it('refuses to listen beyond loopback without required TLS, before binding', async () => {
    for (const tlsSetting of [undefined, { ...PSK, mode: 'on' as const }]) {
      const server = new NbdServer({ provider, ...(tlsSetting ? { tls: tlsSetting } : {}) });
      await assert.rejects(server.listen({ host: '0.0.0.0', port: 0 }), (e: unknown) => isTesseraError(e, 'BAD_INPUT') && /--tls require/.test((e as Error).message));
      assert.equal(server.address, null);
    }
    await assert.rejects(new NbdServer({ provider, tls: { mode: 'require' } }).listen({ host: '127.0.0.1', port: 0 }), /needs credentials/);
  });

  it('tessera nbd refuses to start beyond loopback without TLS, naming the fixes', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'nbd-cli-'));
    try {
      // Nothing is bound: the check runs before the node starts, so the port is never opened.
      const r = spawnSync(process.execPath, [CLI_PATH, 'nbd', '--data', dir, '--listen', '0.0.0.0:1', '--peer', '127.0.0.1:1'], { encoding: 'utf8', timeout: 30_000 });
      assert.notEqual(r.status, 0);
      assert.match(r.stderr, /without TLS/);
      assert.match(r.stderr, /--tls require/);
      assert.match(r.stderr, /--allow-plaintext/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('serves X.509 certificates, and with a CA refuses clients without a certificate', { skip: process.platform !== 'linux' }, async () => {
    const dir = await mkdtemp(join(tmpdir(), 'nbd-x509-'));
    try {
      const sh = promisify(execFile);
      const ca = join(dir, 'ca');
      await sh('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1', '-subj', '/CN=test-ca', '-keyout', `${ca}.key`, '-out', `${ca}.pem`]);
      for (const who of ['server', 'client']) {
        const p = join(dir, who);
        await sh('openssl', ['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', `/CN=${who === 'server' ? 'localhost' : 'alice'}`, '-keyout', `${p}.key`, '-out', `${p}.csr`]);
        await sh('openssl', ['x509', '-req', '-in', `${p}.csr`, '-CA', `${ca}.pem`, '-CAkey', `${ca}.key`, '-CAcreateserial', '-days', '1', '-out', `${p}.pem`]);
      }
      const [caPem, serverPem, serverKey, clientPem, clientKey] = await Promise.all([`${ca}.pem`, 'server.pem', 'server.key', 'client.pem', 'client.key'].map((f) => readFile(f.startsWith('/') ? f : join(dir, f))));
      const { server, addr } = await startServer(provider, { tls: { mode: 'require', credentials: { cert: { cert: serverPem!, key: serverKey!, ca: caPem! } } } });
      try {
        await roundTrip(await tlsClient(addr, { ca: caPem!, cert: clientPem!, key: clientKey!, servername: 'localhost' }));
        await assert.rejects(tlsClient(addr, { ca: caPem!, servername: 'localhost' }).then((c) => roundTrip(c)));
      } finally {
        await server.close();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('NBD bounds', () => {
  it('creates its unix socket readable and writable by the owner only', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'nbd-sock-'));
    const server = new NbdServer({ provider: new MemoryVolumeProvider([{ name: 'disk', size: MiB }]) });
    try {
      const path = join(dir, 'nbd.sock');
      await server.listen({ socket: path });
      assert.equal((await stat(path)).mode & 0o777, 0o600);
      await roundTrip(await RawNbdClient.connect({ socket: path }).then(async (c) => { await c.start(); return c; }));
    } finally {
      await server.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('closes a connection idle past the idle timeout, but not one waiting on the device', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const mem = new MemoryVolumeProvider([{ name: 'disk', size: MiB }]);
    const slow: VolumeProvider = {
      list: () => mem.list(),
      open: async (name) => {
        const d = await mem.open(name);
        return Object.assign(Object.create(d) as BlockDevice, { flush: async () => { await gate; } });
      },
    };
    const { server, addr } = await startServer(slow, { idleTimeoutMs: 150 });
    try {
      const idle = await RawNbdClient.connect(addr);
      await idle.go('disk');
      const busy = await RawNbdClient.connect(addr);
      await busy.go('disk');
      busy.request(P.CMD_FLUSH, 9n, 0, 0);
      await idle.closed;
      assert.equal(server.counters.idleClosed, 1);
      await new Promise((r) => setTimeout(r, 400));
      assert.equal(busy.isClosed, false, 'a request in flight keeps the connection');
      release();
      assert.equal((await busy.simpleReply()).error, 0);
    } finally {
      release();
      await server.close();
    }
  });

  it('bounds write bytes in flight across all connections together', async () => {
    const BUDGET = MiB;
    const WRITE = 256 << 10;
    let inFlight = 0;
    let peak = 0;
    let release!: () => void;
    let gate = new Promise<void>((r) => (release = r));
    const mem = new MemoryVolumeProvider([{ name: 'disk', size: 16 * MiB }]);
    const gated: VolumeProvider = {
      list: () => mem.list(),
      open: async (name) => {
        const d = await mem.open(name);
        return Object.assign(Object.create(d) as BlockDevice, {
          write: async (offset: number, data: Buffer) => {
            inFlight += data.length;
            peak = Math.max(peak, inFlight);
            await gate;
            inFlight -= data.length;
            return d.write(offset, data);
          },
        });
      },
    };
    const { server, addr } = await startServer(gated, { maxTotalInFlightBytes: BUDGET, maxInFlightBytes: 64 * MiB });
    try {
      const clients = await Promise.all([0, 1, 2].map(async () => { const c = await RawNbdClient.connect(addr); await c.go('disk'); return c; }));
      // 3 connections × 4 writes of 256 KiB = 3 MiB offered against a 1 MiB budget.
      clients.forEach((c, i) => { for (let n = 0; n < 4; n++) c.request(P.CMD_WRITE, BigInt(n), (i * 4 + n) * WRITE, WRITE, 0, randomBytes(WRITE)); });
      await waitFor(() => inFlight === BUDGET, 'the budget to fill');
      await new Promise((r) => setTimeout(r, 200));
      assert.equal(peak, BUDGET, 'no more than the shared budget reached the device');
      for (let round = 0; round < 3; round++) {
        const open = release;
        gate = new Promise<void>((r) => (release = r));
        open();
        await new Promise((r) => setTimeout(r, 50));
      }
      release();
      for (const c of clients) for (let n = 0; n < 4; n++) assert.equal((await c.simpleReply()).error, 0);
      assert.equal(peak, BUDGET);
    } finally {
      release();
      await server.close();
    }
  });
});
