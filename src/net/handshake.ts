/**
 * Post-TLS handshake: check the peer's certificate and derive its node id, prove the cluster
 * secret both ways (HMAC over the TLS exporter, so a proof is useless outside this session),
 * then exchange hellos (the dialer's first; the acceptor replies only if it accepts it). Runs on
 * a TLS socket that has completed its own handshake.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import { TesseraError, type ErrorCode } from '../errors.js';
import type { Logger } from '../log.js';
import { ADMITTED_FRAME_LIMITS, FrameDecoder, FrameKind, encodeFrame, decodeControl, encodeControl, FRAME_KIND_NAMES, type Frame, type FrameLimits } from '../wire/index.js';
import { nodeIdFromCertificate, type NodeCredentials } from './credentials.js';
import type { RefusalLog } from './refusal-log.js';
import { errorControl, helloControl, toErrorCode, truncateMessage } from './messages.js';
import type { PeerHello, Role } from './types.js';

export const ADMISSION_EXPORTER_LABEL = 'EXPORTER-tessera-admission';
const ADMISSION_MAC_LABEL = 'tessera-admission-v1';
const ADMISSION_MAC_BYTES = 32;
/**
 * Secrets a node proves at once: its cluster secret, and during a rotation the one it replaces.
 * An ADMIT frame carries one MAC per secret; a peer is admitted when any of them matches a MAC
 * of any secret this node accepts, so rotated and not-yet-rotated nodes admit each other.
 */
export const MAX_ADMISSION_SECRETS = 2;
export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 10_000;

const HANDSHAKE_CONTROL_BYTES = 4096;
/** Before admission a peer is a stranger: nothing it sends may cost more than a few KiB. */
export const HANDSHAKE_FRAME_LIMITS: FrameLimits = {
  maxControlBytes: HANDSHAKE_CONTROL_BYTES,
  maxPayloadBytes: ADMISSION_MAC_BYTES * MAX_ADMISSION_SECRETS,
  byKind: {
    [FrameKind.ADMIT]: { maxControlBytes: 0, maxPayloadBytes: ADMISSION_MAC_BYTES * MAX_ADMISSION_SECRETS },
    [FrameKind.HELLO]: { maxControlBytes: HANDSHAKE_CONTROL_BYTES, maxPayloadBytes: 0 },
    [FrameKind.ERROR]: { maxControlBytes: HANDSHAKE_CONTROL_BYTES, maxPayloadBytes: 0 },
  },
};

export interface HandshakeParams {
  role: Role;
  credentials: NodeCredentials;
  clusterId: string;
  clusterSecret: Buffer;
  /** The secret being rotated out (tessera secret rotate): still proved and accepted until `secret finish`. */
  previousClusterSecret?: Buffer | undefined;
  capabilities: string[];
  listenAddr: string;
  protocolVersion: number;
  timeoutMs: number;
  /** Refuse a peer whose certificate is for another node. */
  expectNodeId?: string;
  /** For log lines and messages. */
  remote: string;
  logger: Logger;
  /** Where refusals are logged, one line per source per interval; without it, one line each. */
  refusals?: RefusalLog;
}

export interface HandshakeResult {
  peer: PeerHello;
  /** Holds any bytes the peer sent after its hello; the socket is paused. */
  decoder: FrameDecoder;
}

/** The address part of "host:port" or "[v6]:port": refusals are counted per host, not per socket. */
function sourceOf(remote: string): string {
  const m = /^\[?(.*?)\]?:\d+$/.exec(remote);
  return m?.[1] ?? remote;
}

export function admissionMac(secret: Buffer, role: Role, keyingMaterial: Buffer): Buffer {
  return createHmac('sha256', secret).update(ADMISSION_MAC_LABEL).update(role).update(keyingMaterial).digest();
}

/** True when the ADMIT payload (whole MACs, at most MAX_ADMISSION_SECRETS) holds one of the expected MACs. */
function anyMacMatches(payload: Buffer, expected: Buffer[]): boolean {
  if (payload.length === 0 || payload.length % ADMISSION_MAC_BYTES !== 0 || payload.length > ADMISSION_MAC_BYTES * MAX_ADMISSION_SECRETS) return false;
  let ok = false;
  for (let at = 0; at < payload.length; at += ADMISSION_MAC_BYTES) {
    const mac = payload.subarray(at, at + ADMISSION_MAC_BYTES);
    // Every comparison runs, so timing says nothing about which secret matched.
    for (const e of expected) if (timingSafeEqual(mac, e)) ok = true;
  }
  return ok;
}

/** Codes this layer reports a handshake failure with; anything else is folded into PROTOCOL. */
function handshakeError(code: ErrorCode, msg: string): TesseraError {
  return new TesseraError(code === 'AUTH' ? 'AUTH' : 'PROTOCOL', msg);
}

export function runHandshake(socket: TLSSocket, p: HandshakeParams): Promise<HandshakeResult> {
  return new Promise<HandshakeResult>((resolve, reject) => {
    const decoder = new FrameDecoder(HANDSHAKE_FRAME_LIMITS);
    const peerRole: Role = p.role === 'dialer' ? 'acceptor' : 'dialer';
    let done = false;
    let peerId = '';
    let expectedMacs: Buffer[] = [];
    let admitted = false;

    const cleanup = () => {
      done = true;
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('close', onClose);
      socket.off('error', onError);
    };
    /** Tells the peer why (best effort), then closes. */
    const fail = (err: TesseraError, tellPeer: boolean) => {
      if (done) return;
      cleanup();
      const fields = { remote: p.remote, role: p.role, code: err.code, reason: err.message };
      if (p.refusals !== undefined) p.refusals.refused(sourceOf(p.remote), fields, 'handshake refused');
      else p.logger.warn(fields, 'handshake refused');
      if (tellPeer && !socket.destroyed) {
        try {
          const parts = encodeFrame(FrameKind.ERROR, 0, encodeControl({ c: err.code, m: truncateMessage(err.message) }));
          socket.cork();
          for (const b of parts) socket.write(b);
          socket.uncork();
          socket.end();
          // A peer that never reads must not keep the socket open.
          setTimeout(() => socket.destroy(), 1000).unref();
        } catch {
          socket.destroy();
        }
      } else {
        socket.destroy();
      }
      reject(err);
    };
    const send = (kind: FrameKind, control: Buffer | undefined, payload?: Buffer) => {
      const parts = encodeFrame(kind, 0, control, payload);
      socket.cork();
      for (const b of parts) socket.write(b);
      socket.uncork();
    };

    const sendHello = () => {
      const hello = { v: p.protocolVersion, id: p.credentials.nodeId, cluster: p.clusterId, caps: p.capabilities, addr: p.listenAddr };
      send(FrameKind.HELLO, encodeControl(hello));
    };

    const onFrame = (f: Frame): boolean => {
      if (f.kind === FrameKind.ERROR) {
        let reason = 'no reason given';
        let code: ErrorCode = 'PROTOCOL';
        try {
          const e = decodeControl(f.control, errorControl);
          reason = e.m;
          code = toErrorCode(e.c);
        } catch {
          /* keep the generic reason */
        }
        fail(handshakeError(code, `peer ${p.remote} refused the connection: ${reason}`), false);
        return false;
      }
      if (!admitted) {
        if (f.kind !== FrameKind.ADMIT) {
          fail(new TesseraError('PROTOCOL', `peer ${p.remote} sent ${FRAME_KIND_NAMES[f.kind]} before proving cluster membership`), true);
          return false;
        }
        if (!anyMacMatches(f.payload, expectedMacs)) {
          fail(new TesseraError('AUTH', `peer ${p.remote} failed cluster admission: its proof of the cluster secret does not verify (different secret, or a replayed handshake)`), true);
          return false;
        }
        admitted = true;
        // The acceptor answers only a hello it accepts, so a dialer that sees the acceptor's
        // hello knows it has been let in.
        if (p.role === 'dialer') sendHello();
        return true;
      }
      if (f.kind !== FrameKind.HELLO) {
        fail(new TesseraError('PROTOCOL', `peer ${p.remote} sent ${FRAME_KIND_NAMES[f.kind]} instead of its hello`), true);
        return false;
      }
      let h;
      try {
        h = decodeControl(f.control, helloControl);
      } catch (e) {
        fail(new TesseraError('PROTOCOL', `peer ${p.remote} sent a malformed hello: ${(e as Error).message}`), true);
        return false;
      }
      if (h.v !== p.protocolVersion) {
        // Our hello lets the peer report the mismatch in its own terms.
        if (p.role === 'acceptor') sendHello();
        fail(new TesseraError('PROTOCOL', `peer ${p.remote} runs protocol version ${h.v}, this node speaks ${p.protocolVersion}; upgrade the older node`), true);
        return false;
      }
      if (h.id !== peerId) {
        fail(new TesseraError('AUTH', `peer ${p.remote} claims node id ${h.id} but its certificate is for ${peerId}`), true);
        return false;
      }
      if (h.cluster !== p.clusterId) {
        fail(new TesseraError('AUTH', `peer ${p.remote} belongs to cluster ${JSON.stringify(h.cluster)}, this node to ${JSON.stringify(p.clusterId)}`), true);
        return false;
      }
      if (p.role === 'acceptor') sendHello();
      cleanup();
      socket.pause();
      // Admission does not lift the bounds: a member is trusted with the cluster's work, not with
      // this node's memory.
      decoder.setLimits(ADMITTED_FRAME_LIMITS);
      resolve({
        peer: { nodeId: h.id, clusterId: h.cluster, protocolVersion: h.v, capabilities: h.caps, listenAddr: h.addr },
        decoder,
      });
      return false;
    };

    const onData = (chunk: Buffer) => {
      try {
        decoder.push(chunk);
        for (;;) {
          const f = decoder.next();
          if (f === undefined || !onFrame(f)) return;
        }
      } catch (e) {
        const msg = e instanceof TesseraError ? e.message : String(e);
        fail(new TesseraError('PROTOCOL', `peer ${p.remote} broke the handshake framing: ${msg}`), true);
      }
    };
    const onClose = () => fail(new TesseraError('PROTOCOL', `peer ${p.remote} closed the connection during the handshake`), false);
    const onError = (e: Error) => fail(new TesseraError('PROTOCOL', `connection to ${p.remote} failed during the handshake: ${e.message}`), false);
    const timer = setTimeout(
      () => fail(new TesseraError('PROTOCOL', `handshake with ${p.remote} did not complete within ${p.timeoutMs} ms`), true),
      p.timeoutMs,
    );
    socket.on('data', onData);
    socket.on('close', onClose);
    socket.on('error', onError);

    try {
      if (socket.getProtocol() !== 'TLSv1.3') throw new TesseraError('PROTOCOL', `peer ${p.remote} negotiated ${socket.getProtocol() ?? 'no TLS'}, TLSv1.3 is required`);
      const cert = socket.getPeerX509Certificate();
      if (cert === undefined) throw new TesseraError('AUTH', `peer ${p.remote} presented no certificate`);
      peerId = nodeIdFromCertificate(cert);
      if (peerId === p.credentials.nodeId) throw new TesseraError('PROTOCOL', `peer ${p.remote} is this node itself (node id ${peerId})`);
      if (p.expectNodeId !== undefined && peerId !== p.expectNodeId) {
        throw new TesseraError('AUTH', `peer at ${p.remote} is node ${peerId}, expected ${p.expectNodeId}`);
      }
      const ekm = socket.exportKeyingMaterial(32, ADMISSION_EXPORTER_LABEL, Buffer.alloc(0));
      const secrets = p.previousClusterSecret !== undefined ? [p.clusterSecret, p.previousClusterSecret] : [p.clusterSecret];
      expectedMacs = secrets.map((s) => admissionMac(s, peerRole, ekm));
      send(FrameKind.ADMIT, undefined, Buffer.concat(secrets.map((s) => admissionMac(s, p.role, ekm))));
    } catch (e) {
      const err = e instanceof TesseraError ? handshakeError(e.code, e.message) : new TesseraError('PROTOCOL', `handshake with ${p.remote} failed: ${String(e)}`);
      fail(err, false);
    }
  });
}
