/** Shapes of the HTTP API's JSON bodies, shared by the server and the typed client. */
import type { TableStatus } from '../tables/index.js';

export type { BucketEntry, ObjectEntry, ObjectRecord } from '../tables/index.js';
export type { RedundancyPolicy } from '../content/index.js';
import type { DrainState, RepairStats, ScrubReport } from '../files/index.js';

export type { PolicyText, PutResultView, FileEntryView, FileListView, ChunkHealthView, FileStatView, RmResultView } from '../files/index.js';

export interface PeerView {
  nodeId: string;
  addr: string;
  /** Failure domain the member declared ('' when it declares none). */
  zone: string;
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
  /** This node's failure domain. */
  zone: string;
  /** Distinct zones among the members that are up (alive or suspect): how many copies can be kept apart. */
  zonesUp: number;
  members: { alive: number; suspect: number; dead: number; left: number };
  store: { engine: 'disk' | 'memory'; used: number; count: number; capacity: number; quota: number | null };
  peers: PeerView[];
  /** Redundancy state as this node sees it: what it must restore, and how far repair got. */
  repair?: RepairStatusView;
  /** Metadata tables, on nodes that hold the data key. */
  metadata?: TableStatus & {
    /** Whether the table store runs on lmdb built with a bounded page cache (docs/tables.md), with its path or why not; absent from older nodes. */
    lmdb?: { bounded: boolean; detail: string };
  };
}

/** The API shows the repair loop's and the scrub's own reports as they are. */
export type RepairStatusView = RepairStats;
export type ScrubReportView = ScrubReport;

export type DrainStateView = DrainState;

export interface ApiErrorBody {
  error: { code: string; message: string };
}
