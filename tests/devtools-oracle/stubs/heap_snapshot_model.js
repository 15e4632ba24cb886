// Stand-in for the front_end/models/heap_snapshot/heap_snapshot.js barrel, which
// also exports the UI-side HeapSnapshotProxy (built on Common.ObjectWrapper).
// The worker code only uses HeapSnapshotModel, exported here unchanged.
export * as HeapSnapshotModel from '../node_modules/chrome-devtools-frontend/front_end/models/heap_snapshot/HeapSnapshotModel.ts';
