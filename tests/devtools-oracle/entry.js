// What the bundle exposes: DevTools' heap snapshot worker code, unchanged.
import './stubs/polyfills.js';
export * as HeapSnapshot from './node_modules/chrome-devtools-frontend/front_end/entrypoints/heap_snapshot_worker/HeapSnapshot.ts';
export * as HeapSnapshotLoader from './node_modules/chrome-devtools-frontend/front_end/entrypoints/heap_snapshot_worker/HeapSnapshotLoader.ts';
export * as HeapSnapshotModel from './node_modules/chrome-devtools-frontend/front_end/models/heap_snapshot/HeapSnapshotModel.ts';
