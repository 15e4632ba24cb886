// Reads heapgate's outputs with code nobody here wrote and prints what it found, as JSON:
//   node check.mjs PROFILE.heapprofile PROFILE.pb.gz
// - the .heapprofile through DevTools' own SamplingHeapProfileModel (the Memory tab's model,
//   bundled by ../devtools-oracle/build.mjs): its total and the self bytes per call frame;
// - the pprof through pprof-format (an independent profile.proto decoder, pinned here): sample
//   types, period, totals, and bytes and objects per allocating (first) frame.
// Frames are keyed "function url:line:column", 1-based, as heapgate shows them.
import fs from 'node:fs';
import zlib from 'node:zlib';
import path from 'node:path';
import {fileURLToPath} from 'node:url';
import {Profile} from 'pprof-format';

const here = path.dirname(fileURLToPath(import.meta.url));
const {SamplingHeapProfileModel} = await import(
  path.join(here, '../devtools-oracle/dist/devtools-heap-profile.mjs'));

const key = (name, url, line, column) =>
  `${name || '(anonymous)'} ${url}:${line}:${column}`;

// DevTools: the model's tree (pruned of empty branches, as the Memory tab shows it).
const heapprofile = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const model = new SamplingHeapProfileModel(heapprofile);
const devtoolsSites = {};
const stack = [model.root];
while (stack.length) {
  const node = stack.pop();
  stack.push(...node.children);
  if (node === model.root || !node.self) continue;
  const f = node.callFrame;
  const k = key(f.functionName, f.url, f.lineNumber + 1, f.columnNumber + 1);
  devtoolsSites[k] = (devtoolsSites[k] || 0) + node.self;
}

// pprof-format.
const profile = Profile.decode(zlib.gunzipSync(fs.readFileSync(process.argv[3])));
const str = (i) => profile.stringTable.strings[Number(i)];
const types = profile.sampleType.map((t) => `${str(t.type)}/${str(t.unit)}`);
const functions = new Map(profile.function.map((f) => [Number(f.id), f]));
const locations = new Map(profile.location.map((l) => [Number(l.id), l]));
const totals = types.map(() => 0);
const pprofSites = {};
for (const sample of profile.sample) {
  sample.value.forEach((v, i) => { totals[i] += Number(v); });
  const loc = locations.get(Number(sample.locationId[0]));
  const line = loc.line[0];
  const fn = functions.get(Number(line.functionId));
  const k = key(str(fn.name), str(fn.filename), Number(line.line), Number(line.column));
  const site = pprofSites[k] || (pprofSites[k] = [0, 0]);
  site[0] += Number(sample.value[0]);
  site[1] += Number(sample.value[1]);
}
console.log(JSON.stringify({
  devtools: {total: model.root.total, sites: devtoolsSites},
  pprof: {
    types,
    default: str(profile.defaultSampleType),
    period: Number(profile.period),
    periodType: profile.periodType ? `${str(profile.periodType.type)}/${str(profile.periodType.unit)}` : null,
    totals,
    sites: pprofSites,
  },
}));
