import type { NbdCommandName } from './protocol.js';

export type OpResult = 'ok' | 'error';

/** Plain numbers so a metrics exporter can read them without depending on this layer. */
export interface NbdCounters {
  connectionsAccepted: number;
  connectionsActive: number;
  /** Refused because the server was at its connection limit or closing. */
  connectionsRejected: number;
  handshakesCompleted: number;
  handshakesFailed: number;
  /** Hard disconnects caused by a client breaking the protocol (bad magic, bad flags, …). */
  protocolErrors: number;
  /** Refused for TLS: no STARTTLS where TLS is required, or a failed TLS handshake (wrong key). */
  tlsRefused: number;
  /** Closed after the idle timeout with nothing in flight. */
  idleClosed: number;
  ops: Record<NbdCommandName, Record<OpResult, number>>;
  /** Payload bytes sent to clients by READ. */
  bytesRead: number;
  /** Payload bytes accepted from clients by WRITE. */
  bytesWritten: number;
}

const COMMANDS: NbdCommandName[] = ['read', 'write', 'disc', 'flush', 'trim', 'cache', 'write_zeroes', 'block_status', 'unknown'];

export function newCounters(): NbdCounters {
  const ops = {} as NbdCounters['ops'];
  for (const c of COMMANDS) ops[c] = { ok: 0, error: 0 };
  return {
    connectionsAccepted: 0,
    connectionsActive: 0,
    connectionsRejected: 0,
    tlsRefused: 0,
    idleClosed: 0,
    handshakesCompleted: 0,
    handshakesFailed: 0,
    protocolErrors: 0,
    ops,
    bytesRead: 0,
    bytesWritten: 0,
  };
}

export function snapshotCounters(c: NbdCounters): NbdCounters {
  const ops = {} as NbdCounters['ops'];
  for (const k of COMMANDS) ops[k] = { ...c.ops[k] };
  return { ...c, ops };
}
