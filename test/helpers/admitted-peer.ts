/**
 * A cluster member under a test's control: a real node identity initialised with the cluster's
 * keys, which completes the real TLS handshake and admission with a node and then hands the test
 * the raw socket, so it can send what no honest node would.
 */
import * as tls from 'node:tls';
import { initDataDir, type ClusterKeys, type NodeIdentity } from '../../src/cluster/identity.js';
import { PROTOCOL_VERSION } from '../../src/limits.js';
import { silentLogger } from '../../src/log.js';
import { parseAddr } from '../../src/net/addr.js';
import { runHandshake } from '../../src/net/handshake.js';
import { RpcConnection } from '../../src/net/connection.js';
import { newCounters, type PeerHello } from '../../src/net/types.js';
import type { FrameDecoder } from '../../src/wire/index.js';

export interface AdmittedPeer {
  identity: NodeIdentity;
  /** Dials `addr`, completes TLS and admission, and returns the open socket. */
  dial(addr: string): Promise<{ socket: tls.TLSSocket; decoder: FrameDecoder; peer: PeerHello }>;
  /** Dials and wraps the socket in the project's RPC connection, for well-formed calls. */
  rpc(addr: string): Promise<RpcConnection>;
}

/** `existing`: speak as a node that already exists (a stopped master, say) instead of a new identity. */
export async function admittedPeer(dataDir: string, keys: ClusterKeys, existing?: NodeIdentity): Promise<AdmittedPeer> {
  const identity = existing ?? await initDataDir(dataDir, keys);
  const dial = async (addr: string) => {
    const { host, port } = parseAddr(addr);
    const socket = await new Promise<tls.TLSSocket>((resolve, reject) => {
      const s = tls.connect({
        host, port,
        key: identity.credentials.privateKeyPem, cert: identity.credentials.certificatePem,
        minVersion: 'TLSv1.3', maxVersion: 'TLSv1.3',
        rejectUnauthorized: false, checkServerIdentity: () => undefined,
      });
      s.once('secureConnect', () => resolve(s));
      s.once('error', reject);
    });
    const { peer, decoder } = await runHandshake(socket, {
      role: 'dialer', credentials: identity.credentials, clusterId: keys.clusterId, clusterSecret: keys.clusterSecret,
      capabilities: ['membership/1'], listenAddr: '', protocolVersion: PROTOCOL_VERSION, timeoutMs: 10_000,
      remote: addr, logger: silentLogger,
    });
    return { socket, decoder, peer };
  };
  return {
    identity,
    dial,
    async rpc(addr: string) {
      const { socket, decoder, peer } = await dial(addr);
      return new RpcConnection(socket, decoder, {
        role: 'dialer', peer, logger: silentLogger, counters: newCounters(),
        handler: () => Promise.reject(new Error('this peer serves nothing')),
        maxInFlight: 8, maxInboundHandlers: 1, maxQueuedInbound: 1, maxQueuedInboundBytes: 1 << 20, defaultTimeoutMs: 10_000,
      });
    },
  };
}

/** Resolves when the peer closes the socket, or with false after `ms`. */
export function closedWithin(socket: tls.TLSSocket, ms: number): Promise<boolean> {
  if (socket.destroyed) return Promise.resolve(true);
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(false), ms);
    socket.once('close', () => {
      clearTimeout(t);
      resolve(true);
    });
  });
}
