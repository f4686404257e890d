import { chunkStoreContract } from './contract.js';
import { MemoryChunkStore } from '../../../src/store/memory-store.js';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isTesseraError } from '../../../src/errors.js';

chunkStoreContract({
  name: 'memory',
  open: async (opts) => new MemoryChunkStore(opts),
  rot: async (s, id) => (s as MemoryChunkStore).corruptForTest(id, 5),
});

test('memory: a negative or fractional quota is BAD_INPUT', () => {
  assert.throws(() => new MemoryChunkStore({ quota: -1 }), (e) => isTesseraError(e, 'BAD_INPUT'));
  assert.throws(() => new MemoryChunkStore({ quota: 1.5 }), (e) => isTesseraError(e, 'BAD_INPUT'));
});
