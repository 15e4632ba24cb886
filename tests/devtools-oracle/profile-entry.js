// What the profile bundle exposes: DevTools' own sampling heap profile model
// (SamplingHeapProfileModel in panels/profiler/HeapProfileView.ts, on models/cpu_profile's
// ProfileTreeModel), unchanged. Everything else HeapProfileView.ts imports is UI, replaced by
// stubs/inert.cjs (build.mjs).
import './stubs/polyfills.js';
export {SamplingHeapProfileModel} from './node_modules/chrome-devtools-frontend/front_end/panels/profiler/HeapProfileView.ts';
