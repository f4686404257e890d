/** Shapes of the HTTP API's JSON bodies, shared by the server and the typed client. */
import type { TableStatus } from '../tables/index.js';
import type { DrainState, RepairStats } from '../files/repair.js';
import type { ScrubReport } from '../files/scrub.js';

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
  /** Redundancy state as this node sees it: what it must restore, and how far repair got. */
  repair?: RepairStatusView;
  /** Metadata tables, on nodes that hold the data key. */
  metadata?: TableStatus;
}

/** The API shows the repair loop's and the scrub's own reports as they are. */
export type RepairStatusView = RepairStats;
export type ScrubReportView = ScrubReport;

export type DrainStateView = DrainState;

export interface ApiErrorBody {
  error: { code: string; message: string };
}

/** Redundancy policy as text: `replicas:3/2` (R copies, write quorum W) or `ec:4+2`. */
export type PolicyText = string;

export interface PutResultView {
  /** Capability string: whoever holds it can read the file. */
  fileId: string;
  name: string | null;
  size: number;
  chunks: number;
  /** Chunks the holders did not have yet (the rest were deduplicated). */
  newChunks: number;
  policy: PolicyText;
  durationMs: number;
}

export interface FileEntryView {
  name: string;
  fileId: string;
  size: number;
  createdAt: string;
  policy: PolicyText;
}

export interface ChunkHealthView {
  index: number;
  id: string;
  size: number;
  /** Node ids that hold a verified copy (or shard) now. */
  holders: string[];
  /** Node ids placement wants it on. */
  expected: string[];
}

export interface FileStatView {
  fileId: string;
  name: string | null;
  size: number;
  chunkSize: number;
  chunks: number;
  policy: PolicyText;
  createdAt: string;
  health: { fullRedundancy: number; degraded: number; lost: number };
  /** Per-chunk detail, at most the first MAX_STAT_CHUNKS chunks. */
  chunkHealth: ChunkHealthView[];
}

export interface RmResultView {
  fileId: string;
  name: string | null;
}
