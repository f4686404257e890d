/**
 * The shapes the files service answers with. The service owns them; the HTTP API and the typed
 * client re-export them as the bodies they send and receive.
 */
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

/** A named file: an object of the default bucket. */
export interface FileEntryView {
  name: string;
  fileId: string;
  size: number;
  /** When the name was last written (ISO 8601). */
  createdAt: string;
  /** Hex MD5 of the contents (empty for names taken over from a data directory of an older version). */
  etag: string;
}

/** One page of names in byte order; pass `token` back (or the last name as `after`) for the next. */
export interface FileListView {
  files: FileEntryView[];
  token: string | null;
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
  /** Distinct zones among the live nodes. */
  zones: number;
  /**
   * How many zones may fail at once with every chunk still readable, as the copies lie now (the
   * fewest over all chunks); -1 when some chunk is unreadable already.
   */
  zoneLossesSurvived: number;
  /** Per-chunk detail, at most the first MAX_STAT_CHUNKS chunks. */
  chunkHealth: ChunkHealthView[];
}

export interface RmResultView {
  fileId: string;
  name: string | null;
}
