export { TableService, isSealedError, DEFAULT_TABLE_REPLICAS, type TableNet, type TableServiceOptions, type ListOptions, type ListPage, type TableStatus, type TableCounters } from './table-service.js';
export { EntryStore } from './entry-store.js';
export { BucketTable, ObjectTable, type BucketEntry, type BucketAccess, type ObjectEntry, type Page } from './buckets-objects.js';
export * from './records.js';
export { openTables, registerTableHandlers, type OpenTablesOptions, type Tables } from './open.js';
export * from './multipart-records.js';
export { AccessKeyTable, ACCESS_KEY_PERMISSIONS, isAccessKeyId, type AccessKeyPermission, type AccessKeyView } from './access-keys.js';
