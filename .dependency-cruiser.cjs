/**
 * The layer rule: imports point only down the layers of docs/architecture.md, and cross a layer
 * boundary only through that layer's index.ts (its public surface). `npm test` runs it
 * (test/unit/layers.test.ts), which also proves on a fixture that an upward import fails it.
 *
 * A layer is a folder under the root (src/, or a fixture's root); `block/nbd/` is a face of its
 * own inside `block/`. The modules at the root beside the folders are shared by every layer
 * (errors, limits, log, version, runtime-file, disk-io, http-pieces, worker-module, native-addon) except the composition root (node.ts) and the
 * library entry (index.ts), which may import any layer's index.
 */
const R = '^(?:src|test/fixtures/layers/[^/]+)';
/**
 * Each layer and the layers below it that it may import (besides itself and the shared modules).
 * `root` is the composition root: only the `tessera node` command starts it.
 */
const LAYERS = {
  cli: ['root', 'client', 'api', 'block/nbd', 'files', 'block', 'content', 'cluster'],
  client: ['api'],
  api: ['files', 'block', 'tables', 'content', 'cluster'],
  // The S3 face: like the API, it parses, authenticates and calls the services; the faces know nothing of each other.
  s3: ['files', 'tables', 'content', 'cluster'],
  'block/nbd': ['block'],
  files: ['tables', 'content', 'cluster', 'net', 'wire', 'store'],
  block: ['tables', 'content', 'cluster', 'net', 'wire', 'store'],
  tables: ['content', 'cluster', 'net', 'wire', 'store'],
  content: [],
  cluster: ['net', 'wire', 'store'],
  net: ['wire'],
  wire: [],
  store: [],
};
const SHARED = `${R}/(?:errors|limits|log|version|runtime-file|disk-io|http-pieces|worker-module|native-addon)\\.ts$`;
const folder = (layer) => {
  if (layer === 'root') return `${R}/node\\.ts$`;
  return layer === 'block' ? `${R}/block/(?!nbd/)` : `${R}/${layer}/`;
};

const upward = Object.entries(LAYERS).map(([layer, below]) => ({
  name: `layer-${layer.replace('/', '-')}`,
  comment: `${layer}/ may import only ${[layer, ...below].join(', ')} and the shared root modules`,
  severity: 'error',
  from: { path: folder(layer) },
  to: { path: `${R}/`, pathNot: [SHARED, ...[layer, ...below].map(folder)] },
}));

module.exports = {
  forbidden: [
    ...upward,
    {
      name: 'shared-imports-no-layer',
      comment: 'the shared root modules sit below every layer',
      severity: 'error',
      from: { path: SHARED },
      to: { path: `${R}/`, pathNot: SHARED },
    },
    {
      name: 'through-index',
      comment: 'cross a layer boundary only through the layer\'s index.ts',
      severity: 'error',
      from: { path: `${R}/((?!cli/|client/)[^/]+)/` },
      to: { path: `${R}/[^/]+/`, pathNot: [`${R}/$1/`, '/index\\.ts$'] },
    },
    {
      name: 'through-index-client-commands',
      comment:
        "the CLI's client commands and the typed client start in tens of milliseconds: they may name one " +
        'pure module (content/, cluster/identity.ts or data-files.ts, the API shapes, the NBD limits its help names) where an index would load the whole layer',
      severity: 'error',
      from: { path: `${R}/(?:cli|client)/` },
      to: {
        path: `${R}/(?!cli/|client/)[^/]+/`,
        pathNot: ['/index\\.ts$', `${R}/content/`, `${R}/cluster/(?:identity|data-files)\\.ts$`, `${R}/api/(?:types|volume-routes)\\.ts$`, `${R}/block/nbd/limits\\.ts$`],
      },
    },
    {
      name: 'nbd-through-index',
      comment: 'the NBD face is reached only through block/nbd/index.ts (the CLI may name its limits for its help text)',
      severity: 'error',
      from: { path: `${R}/(?!block/nbd/)(?!cli/commands/nbd\\.ts$)` },
      to: { path: `${R}/block/nbd/`, pathNot: '/index\\.ts$' },
    },
    {
      name: 'root-through-index',
      comment: 'the composition root and the library entry use each layer\'s index.ts',
      severity: 'error',
      from: { path: `${R}/(?:node|index)\\.ts$` },
      to: { path: `${R}/[^/]+/`, pathNot: '/index\\.ts$' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^src/api/dashboard/' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
  },
};
