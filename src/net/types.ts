/** Shapes shared by the handshake, the RPC connection and the transport. */

export interface PeerHello {
  nodeId: string;
  clusterId: string;
  protocolVersion: number;
  capabilities: string[];
  listenAddr: string;
}

export interface IncomingRequest {
  method: string;
  body: unknown;
  payload: Buffer;
  peer: PeerHello;
  /** Aborts when the caller cancels or times out, or the connection dies. */
  signal: AbortSignal;
  /** The frame's `recycle` (see wire/frame.ts): a handler done with `payload` for good may call it. */
  recycle?: () => void;
  /**
   * The payload is a chunk whose id this very process computed from these bytes. Only a node's
   * call to itself sets it (cluster/node-caller.ts); a request from the network never does, so its
   * chunk is hashed before it is stored.
   */
  verifiedPayload?: boolean;
}

export interface Reply {
  body?: unknown;
  payload?: Buffer | Buffer[];
}

export type RequestHandler = (req: IncomingRequest) => Promise<Reply>;

export interface CallOptions {
  timeoutMs?: number;
  signal?: AbortSignal;
  /** Refuse (AUTH) if the node answering at the address has another id. */
  expectNodeId?: string;
}

export interface CallResult {
  body: unknown;
  payload: Buffer;
  peer: PeerHello;
}

export type Role = 'dialer' | 'acceptor';

/** Plain numbers, read by the metrics layer. */
export interface TransportCounters {
  bytesIn: number;
  bytesOut: number;
  callsOk: number;
  callsFailed: number; // the remote answered with an error
  callsTimedOut: number;
  callsCancelled: number;
  callsUnavailable: number; // connection could not be made or died
  requestsServed: number;
  requestsFailed: number;
  requestsCancelled: number;
  connectionsAccepted: number;
  connectionsDialed: number;
  connectionsClosed: number;
  handshakesFailed: number;
  protocolViolations: number;
  /** Payload bytes sent and received on the bulk plane (also counted in bytesOut and bytesIn). */
  bulkBytesOut: number;
  bulkBytesIn: number;
  /** Bulk connections refused (stranger, wrong session, replay) or closed on bad bytes. */
  bulkRefused: number;
}

export function newCounters(): TransportCounters {
  return {
    bytesIn: 0,
    bytesOut: 0,
    callsOk: 0,
    callsFailed: 0,
    callsTimedOut: 0,
    callsCancelled: 0,
    callsUnavailable: 0,
    requestsServed: 0,
    requestsFailed: 0,
    requestsCancelled: 0,
    connectionsAccepted: 0,
    connectionsDialed: 0,
    connectionsClosed: 0,
    handshakesFailed: 0,
    protocolViolations: 0,
    bulkBytesOut: 0,
    bulkBytesIn: 0,
    bulkRefused: 0,
  };
}
