#!/usr/bin/env node
// DevTools' own answers for one .heapsnapshot, as JSON on stdout: the Summary view's
// per-class rows, retained sizes of a sample of nodes, and the retainer chain the
// Retainers pane expands first for chosen objects. See README.md and compare.md.
//
//   node oracle.mjs FILE [--nodes N] [--ids ID,ID,…] [--class NAME]… [--per-class K] [--depth D]
//                        [--between A B | --id-range MIN MAX]
//
// Needs the bundle built by `./install.sh` (npm ci + node build.mjs).
import fs from 'node:fs';
import path from 'node:path';
import {fileURLToPath} from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const bundlePath = path.join(here, 'dist', 'devtools-heap-snapshot.mjs');

// The Retainers pane auto-expands this many levels: HeapSnapshotRetainingObjectNode.expand()
// calls expandRetainersChain(20) (panels/profiler/HeapSnapshotGridNodes.ts).
const PANE_EXPAND_LEVELS = 20;
// Read size; ORACLE_CHUNK_BYTES (tests only) makes chunk boundaries fall everywhere.
const CHUNK_BYTES = Number(process.env.ORACLE_CHUNK_BYTES) || 1 << 20;

function usage(message) {
  if (message) process.stderr.write(`oracle: ${message}\n`);
  process.stderr.write(
      'usage: node oracle.mjs FILE [--nodes N] [--ids ID,ID,...] [--class NAME]... [--per-class K] [--depth D]\n' +
      '                        [--between A B | --id-range MIN MAX]\n');
  process.exit(2);
}

function parseArgs(argv) {
  const args = {
    file: null,
    nodes: 200,
    ids: [],
    classes: [],
    perClass: 3,
    depth: PANE_EXPAND_LEVELS,
    between: null,
    idRange: null,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) usage(`${a} needs a value`);
      return argv[++i];
    };
    const count = text => {
      if (!/^\d+$/.test(text)) usage(`${a}: not a count: ${text}`);
      return Number(text);
    };
    if (a === '--nodes') {
      args.nodes = count(value());
    } else if (a === '--ids') {
      args.ids = value().split(',').filter(s => s !== '').map(count);
    } else if (a === '--class') {
      args.classes.push(value());
    } else if (a === '--per-class') {
      args.perClass = count(value());
    } else if (a === '--depth') {
      args.depth = count(value());
    } else if (a === '--between') {
      args.between = [value(), value()];
    } else if (a === '--id-range') {
      args.idRange = [count(value()), count(value())];
    } else if (a === '-h' || a === '--help') {
      usage();
    } else if (a.startsWith('--')) {
      usage(`unknown option ${a}`);
    } else if (args.file === null) {
      args.file = a;
    } else {
      usage(`unexpected argument ${a}`);
    }
  }
  if (args.file === null) usage('no snapshot file given');
  if (args.between && args.idRange) usage('--between and --id-range exclude each other');
  return args;
}

async function loadDevTools() {
  if (!fs.existsSync(bundlePath)) {
    process.stderr.write(`oracle: ${bundlePath} is missing; run ${path.join(here, 'install.sh')} first\n`);
    process.exit(2);
  }
  return import(bundlePath);
}

// Streams the file into DevTools' HeapSnapshotLoader in 1 MiB chunks (never one giant
// string), then lets DevTools build and initialise the JSHeapSnapshot exactly as its worker
// does, with the "second worker" half of the initialisation on a MessageChannel in this thread
// (as DevTools' own createJSHeapSnapshotForTesting does).
async function loadSnapshot(DT, file) {
  const loader = new DT.HeapSnapshotLoader.HeapSnapshotLoader(undefined);
  const stream = fs.createReadStream(file, {encoding: 'utf8', highWaterMark: CHUNK_BYTES});
  for await (const chunk of stream) {
    loader.write(chunk);
    // Let the loader's parser (promise continuations) consume the chunk before reading more.
    await new Promise(resolve => setImmediate(resolve));
  }
  loader.close();
  const channel = new MessageChannel();
  new DT.HeapSnapshot.SecondaryInitManager(channel.port2);
  try {
    return await loader.buildSnapshot(channel.port1);
  } finally {
    channel.port1.close();
    channel.port2.close();
  }
}

function nodeInfo(snapshot, nodeIndex) {
  const node = snapshot.createNode(nodeIndex);
  const dominator = snapshot.createNode(node.dominatorIndex());
  return {
    id: node.id(),
    ordinal: node.ordinal(),
    type: node.type(),
    name: shorten(node.name()),
    class: node.className(),
    class_key: publicClassKey(snapshot, node),
    self: node.selfSize(),
    retained: node.retainedSize(),
    distance: node.distance(),
    dominator_id: dominator.id(),
  };
}

// Display names of strings are their contents: keep the JSON small.
const NAME_LIMIT = 200;
function shorten(name) {
  return name.length > NAME_LIMIT ? `${name.slice(0, NAME_LIMIT)}…` : name;
}

// The same chain as heapgate's PathStep list: every node with the edge that holds it (from the
// previous step), root side first, the object itself last; the first step has no edge.
function asPath(snapshot, chain, nodeIndex) {
  const object = snapshot.createNode(nodeIndex);
  const nodes = [...chain, {node: object.className(), name: shorten(object.name())}];
  return nodes.map((step, i) => ({
    node: step.node,
    name: step.name,
    edge: i === 0 ? '' : chain[i - 1].edge,
    edge_type: i === 0 ? '' : chain[i - 1].edge_type,
  }));
}

// HeapSnapshot.#classKeyFromClassKey (private) applied to classKeyInternal(): the key the
// Summary rows carry (",Name", or "scriptId,line,column,Name" for located objects).
function publicClassKey(snapshot, node) {
  const key = node.classKeyInternal();
  return typeof key === 'number' ? `,${snapshot.strings[key]}` : key;
}

// The chain DevTools' Retainers pane opens for an object: its retainers (weak and
// invisible edges and the synthetic root left out, retainingEdgesFilter) sorted as the pane
// sorts them by default (distance ascending, then the retainer's name, then position:
// ComparatorConfig('!edgeDistance', true, 'name', true) through DevTools' own provider), and
// the first one expanded again while its distance is > 1 and reachable, up to `depth` levels
// (the pane: 20; clicking on, the user sees the same rule continue).
// Returned root side first; each step = the retainer and the edge from it toward the object.
function retainerChain(DT, snapshot, nodeIndex, depth) {
  const {ComparatorConfig, baseUnreachableDistance} = DT.HeapSnapshotModel;
  const comparator = new ComparatorConfig('!edgeDistance', true, 'name', true);
  const steps = [];
  const seen = new Set([nodeIndex]);
  let current = nodeIndex;
  for (let level = 0; level < depth; level++) {
    const provider = snapshot.createRetainingEdgesProvider(current);
    provider.sortAndRewind(comparator);
    const first = provider.serializeItemsRange(0, 1).items[0];
    if (!first) break;
    const retainer = first.node;
    const retainerNode = snapshot.createNode(retainer.nodeIndex);
    steps.push({
      node: retainerNode.className(),
      class_key: publicClassKey(snapshot, retainerNode),
      name: shorten(retainer.name),
      id: retainer.id,
      distance: retainer.distance,
      edge: first.name,
      edge_type: first.type,
    });
    // expandRetainersChain: go on only through a reachable retainer farther than the user roots.
    if (!(retainer.distance > 1 && retainer.distance < baseUnreachableDistance)) break;
    if (seen.has(retainer.nodeIndex)) break;  // cannot happen for reachable nodes; a guard
    seen.add(retainer.nodeIndex);
    current = retainer.nodeIndex;
  }
  return steps.reverse();
}

// What heapgate's object view shows of one object, from DevTools: every retainer in the
// Retainers pane's order (its own provider: weak and invisible edges and the root left out,
// sorted by distance, then name) and every outgoing edge in the snapshot's order (the raw edge
// iterator), each with the other end's id, distance and retained size.
function objectDetail(DT, snapshot, nodeIndex) {
  const {ComparatorConfig} = DT.HeapSnapshotModel;
  const provider = snapshot.createRetainingEdgesProvider(nodeIndex);
  provider.sortAndRewind(new ComparatorConfig('!edgeDistance', true, 'name', true));
  const retainers = provider.serializeItemsRange(0, 1e9).items.map(e => ({
    id: e.node.id,
    class: snapshot.createNode(e.node.nodeIndex).className(),
    edge: e.name,
    edge_type: e.type,
    distance: e.node.distance,
    retained: e.node.retainedSize,
  }));
  const edges = [];
  const node = snapshot.createNode(nodeIndex);
  for (let it = node.edges(); it.hasNext(); it.next()) {
    const edge = it.item();
    const target = edge.node();
    edges.push({
      id: target.id(),
      edge: edge.name(),
      edge_type: edge.type(),
      class: target.className(),
      distance: target.distance(),
      retained: target.retainedSize(),
    });
  }
  return {retainers, edges};
}

function mustBeFile(file) {
  let stat;
  try {
    stat = fs.statSync(file);
  } catch (e) {
    process.stderr.write(`oracle: cannot read ${file}: ${e.message}\n`);
    process.exit(1);
  }
  if (!stat.isFile()) {
    process.stderr.write(`oracle: not a file: ${file}\n`);
    process.exit(1);
  }
}

// Summary rows from aggregatesWithFilter(filter), largest Retained Size first.
function summaryRows(snapshot, filter) {
  const aggregates = snapshot.aggregatesWithFilter(filter);
  const rows = Object.entries(aggregates).map(([key, a]) => ({
    key,
    name: a.name,
    count: a.count,
    self: a.self,
    maxRet: a.maxRet,
    distance: a.distance,
  }));
  rows.sort((a, b) => b.maxRet - a.maxRet || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  return rows;
}

// The node id range of the Summary filter "Objects allocated between A and B" (as DevTools
// sets it with A and B as the two snapshots before FILE: HeapSnapshotConstructorsDataGrid.
// filterSelectIndexChanged): (A's maxJSObjectId, B's maxJSObjectId]. Each is loaded alone.
async function allocatedBetween(DT, a, b) {
  const maxJsId = async file => {
    const s = await loadSnapshot(DT, file);
    return s.updateStaticData().maxJSObjectId;
  };
  return [await maxJsId(a), await maxJsId(b)];
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  for (const file of [args.file, ...(args.between ?? [])]) mustBeFile(file);
  const DT = await loadDevTools();
  const idRange = args.between ? await allocatedBetween(DT, ...args.between) : args.idRange;
  const snapshot = await loadSnapshot(DT, args.file);

  // Summary view: aggregatesWithFilter(new NodeFilter()) — the "allObjects" aggregates.
  const classes = summaryRows(snapshot, new DT.HeapSnapshotModel.NodeFilter());
  // The same view restricted to ids in (min, max]: NodeFilter(min, max).
  const filtered = idRange ? summaryRows(snapshot, new DT.HeapSnapshotModel.NodeFilter(...idRange)) : null;

  const {nodeCount, nodeFieldCount} = snapshot;
  const wanted = new Set(args.ids);
  // Objects of the named classes (first K by id) get a retainer chain too.
  const byClass = new Map(args.classes.map(name => [name, []]));
  const idToIndex = new Map();
  const node = snapshot.createNode(0);
  for (let ordinal = 0; ordinal < nodeCount; ordinal++) {
    node.nodeIndex = ordinal * nodeFieldCount;
    const id = node.id();
    if (wanted.has(id)) idToIndex.set(id, node.nodeIndex);
    if (byClass.size && node.selfSize() > 0) {
      const list = byClass.get(node.className());
      if (list) list.push([id, node.nodeIndex]);
    }
  }
  const missing = args.ids.filter(id => !idToIndex.has(id));
  if (missing.length) {
    process.stderr.write(`oracle: no node with id ${missing.join(', ')} in ${args.file}\n`);
    process.exit(1);
  }
  const classIds = {};
  for (const [name, list] of byClass) {
    list.sort((a, b) => a[0] - b[0]);
    const picked = list.slice(0, args.perClass);
    classIds[name] = picked.map(([id]) => id);
    for (const [id, index] of picked) idToIndex.set(id, index);
  }

  // Sample: every k-th node by ordinal (ordinal 0 first), then the asked-for ids. (No Set of
  // sampled nodes: JS Sets stop at 2^24 entries, fewer than big snapshots have nodes.)
  const sampleIndexes = [];
  const step = args.nodes > 0 ? Math.max(1, Math.ceil(nodeCount / args.nodes)) : 0;
  for (let ordinal = 0; step && ordinal < nodeCount; ordinal += step) sampleIndexes.push(ordinal * nodeFieldCount);
  const sampled = index => step > 0 && (index / nodeFieldCount) % step === 0;
  for (const index of new Set(idToIndex.values())) {
    if (!sampled(index)) sampleIndexes.push(index);
  }

  const retainers = {};
  const paths = {};
  const objects = {};
  for (const [id, index] of idToIndex) {
    const chain = retainerChain(DT, snapshot, index, args.depth);
    retainers[id] = chain;
    paths[id] = asPath(snapshot, chain, index);
    objects[id] = objectDetail(DT, snapshot, index);
  }

  const root = snapshot.rootNode();
  const result = {
    devtools: `chrome-devtools-frontend@${devtoolsVersion()}`,
    file: args.file,
    node_count: nodeCount,
    edge_count: snapshot.containmentEdges.length / snapshot.edgeFieldsCount,
    root_id: root.id(),
    root_retained: root.retainedSize(),
    total_size: snapshot.totalSize,
    classes,
    ...(idRange ? {id_range: {min_exclusive: idRange[0], max_inclusive: idRange[1]}, filtered_classes: filtered} : {}),
    nodes: new LazyList(sampleIndexes, index => nodeInfo(snapshot, index)),
    class_ids: classIds,
    retainers,
    paths,
    objects,
  };
  await writeOut(render(result));
}

// A list whose items are made only when written out (every node of a big snapshot).
class LazyList {
  constructor(source, make) {
    this.source = source;
    this.make = make;
  }
  get length() {
    return this.source.length;
  }
  * [Symbol.iterator]() {
    for (const item of this.source) yield this.make(item);
  }
}

// Plain JSON, laid out for diffing and grepping: one line per class, node and chain. Yields
// pieces, so that every node of a multi-million-node snapshot never becomes one string.
function* render(result) {
  const entries = Object.entries(result);
  yield '{\n';
  for (let k = 0; k < entries.length; k++) {
    const [key, value] = entries[k];
    const tail = k + 1 < entries.length ? ',\n' : '\n';
    const list = Array.isArray(value) || value instanceof LazyList;
    const items = list ? new LazyList(value, v => JSON.stringify(v)) :
        value && typeof value === 'object' ?
                  Object.entries(value).map(([k2, v]) => `${JSON.stringify(k2)}: ${JSON.stringify(v)}`) :
                  null;
    if (items === null) {
      yield ` ${JSON.stringify(key)}: ${JSON.stringify(value)}${tail}`;
      continue;
    }
    const [open, close] = list ? ['[', ']'] : ['{', '}'];
    if (items.length === 0) {
      yield ` ${JSON.stringify(key)}: ${open}${close}${tail}`;
      continue;
    }
    yield ` ${JSON.stringify(key)}: ${open}\n`;
    let i = 0;
    for (const item of items) yield `  ${item}${++i < items.length ? ',' : ''}\n`;
    yield ` ${close}${tail}`;
  }
  yield '}\n';
}

// Writes the pieces in batches of ~1 MB, waiting for stdout to drain.
async function writeOut(pieces) {
  let batch = [];
  let size = 0;
  const flush = () => new Promise((resolve, reject) => {
    const text = batch.join('');
    batch = [];
    size = 0;
    process.stdout.write(text, e => (e ? reject(e) : resolve()));
  });
  for (const piece of pieces) {
    batch.push(piece);
    size += piece.length;
    if (size >= 1 << 20) await flush();
  }
  if (batch.length) await flush();
}

function devtoolsVersion() {
  const pkg = path.join(here, 'node_modules', 'chrome-devtools-frontend', 'package.json');
  return JSON.parse(fs.readFileSync(pkg, 'utf8')).version;
}

main().catch(e => {
  // One line (DevTools' own message, e.g. a truncated file); the stack with ORACLE_DEBUG=1.
  const detail = process.env.ORACLE_DEBUG ? (e?.stack ?? e) : (e?.message ?? e);
  process.stderr.write(`oracle: ${detail}\n`);
  process.exit(1);
});
