/** The library API: `import { connect } from 'tessera'`. */
export { connect, TesseraClient, type ConnectOptions } from './client/index.js';
export { TesseraError, type ErrorCode } from './errors.js';
export type { PeerView, StatusView, PutResultView, FileEntryView, FileListView, FileStatView, ChunkHealthView, RmResultView, PolicyText } from './api/index.js';
