/** A made-up object record for listings and load: a fresh file id, the index as size and mtime. */
import { randomBytes } from 'node:crypto';
import { formatFileId } from '../../src/content/ids.js';
import type { ObjectRecord } from '../../src/tables/records.js';

export function sampleObjectRecord(i: number): ObjectRecord {
  return {
    fileId: formatFileId(randomBytes(32), randomBytes(32)),
    size: i,
    etag: `"${i.toString(16).padStart(32, '0')}"`,
    checksums: {},
    contentType: 'application/octet-stream',
    userMeta: {},
    mtime: 1_700_000_000_000 + i,
  };
}
