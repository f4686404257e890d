/** The files layer's public surface for the composition root and the faces. */
export { FileService, type FileServiceOptions, type FileServiceParts, type FilesTuning, type PutOptions, type OpenedFile, type FilesCounters } from './service.js';
export type { FilesNet } from './peers.js';
export { composeFiles, type FilesNode } from './files-node.js';
export * from './limits.js';
export type { PolicyText, PutResultView, FileEntryView, FileListView, ChunkHealthView, FileStatView, RmResultView } from './views.js';
export type { DrainState, RepairStats } from './repair.js';
export type { ScrubReport } from './scrub.js';
export * from './repair-limits.js';
export { ObjectService, DEFAULT_BUCKET, DEFAULT_BUCKET_ID, FILE_REF_TABLE, MAX_OBJECT_PAGE, DEFAULT_OBJECT_PAGE, type ObjectWriteOptions, type ObjectListOptions, type ObjectServiceOptions, type ObjectPutResult, type ResolvedRef, objectEntryView } from './object-service.js';
export { NameMigration, migrateNameRecords, type NameMigrationReport } from './name-migration.js';
export { MultipartService, multipartEtag, multipartFault, MIN_PART_BYTES, MAX_PART_BYTES, DEFAULT_ABANDON_AFTER_MS, MAX_ABANDON_AFTER_MS, MAX_MULTIPART_PAGE, type MultipartFault, type MultipartServiceOptions, type UploadView, type PartView, type CompletedPart } from './multipart.js';
