/** Shapes of the HTTP API's JSON bodies, shared by the server and the typed client. */

export interface PeerView {
  nodeId: string;
  addr: string;
  state: 'alive' | 'suspect' | 'dead' | 'left';
  incarnation: number;
  capacity: number;
  used: number;
  /** Milliseconds since the last direct evidence that the member was alive (null for self). */
  lastSeenAgoMs: number | null;
  self: boolean;
}

export interface StatusView {
  nodeId: string;
  clusterId: string;
  version: string;
  listen: string;
  api: string;
  uptimeSec: number;
  members: { alive: number; suspect: number; dead: number; left: number };
  store: { engine: 'disk' | 'memory'; used: number; count: number; capacity: number; quota: number | null };
  peers: PeerView[];
}

export interface ApiErrorBody {
  error: { code: string; message: string };
}
