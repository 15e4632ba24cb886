'use strict';
// The checks of selftest.sh, on oracle.mjs outputs it has produced:
//
//   node selftest-checks.cjs LEAKY.json COUNT EDGE.json VARIED.json SERIES.json SERIES-EXPECTED.json
//
// LEAKY.json: fixtures/leaky.cjs COUNT, sampled; EDGE.json and VARIED.json: every node;
// SERIES.json: snapshot C of fixtures/series.cjs with --between A B, and what the fixture
// printed (the kept counts it knows).
// Prints one "selftest: FAIL …" line per broken check and exits 1, or one "selftest: ok" line.
const fs = require('fs');

const [leakyFile, countText, edgeFile, variedFile, seriesFile, seriesExpectedFile] = process.argv.slice(2);
const count = Number(countText);
const read = file => JSON.parse(fs.readFileSync(file, 'utf8'));
const failures = [];
const check = (ok, what) => {
  if (!ok) failures.push(what);
};

// What must hold for any snapshot: every node's (folded) self size is in exactly one class row
// and in the root's dominator subtree; each object counts in its class's Retained Size, itself
// or through a dominating object of the same class.
function invariants(d, label) {
  const selfSum = d.classes.reduce((s, c) => s + c.self, 0);
  check(selfSum === d.root_retained, `${label}: class self sizes add up to ${selfSum}, root retains ${d.root_retained}`);
  check(d.total_size >= d.root_retained, `${label}: total_size ${d.total_size} < root retained ${d.root_retained}`);
  const keys = new Set(d.classes.map(c => c.key));
  check(keys.size === d.classes.length, `${label}: class keys are not unique`);
  for (const c of d.classes) {
    check(c.count > 0 && c.self > 0, `${label}: class ${c.key}: count ${c.count}, self ${c.self}`);
    check(c.self <= c.maxRet && c.maxRet <= d.root_retained, `${label}: class ${c.key}: self ${c.self}, maxRet ${c.maxRet}`);
    check(c.key === `,${c.name}` || c.key.endsWith(`,${c.name}`), `${label}: class key ${c.key} does not end with ${c.name}`);
  }
  const root = d.nodes.find(n => n.id === d.root_id);
  check(root && root.retained === d.root_retained && root.dominator_id === d.root_id,
        `${label}: root node missing or wrong`);
  for (const n of d.nodes) {
    check(n.self <= n.retained && n.retained <= d.root_retained, `${label}: @${n.id}: self ${n.self}, retained ${n.retained}`);
    check(keys.has(n.class_key) || n.self === 0, `${label}: @${n.id}: class key ${n.class_key} has no row`);
  }
  for (const [id, chain] of Object.entries(d.retainers)) {
    const path = d.paths[id];
    check(path && path.length === chain.length + 1, `${label}: @${id}: paths and retainers disagree`);
    for (let i = 1; i < chain.length; i++) {
      check(chain[i].distance > chain[i - 1].distance, `${label}: @${id}: chain distances not increasing at step ${i}`);
    }
  }
}

// With every node present, the per-node numbers must rebuild the class rows and each other:
// retained = self + retained of the nodes it immediately dominates; a class's rows from its
// nodes with self > 0; maxRet from the dominator chains.
function wholeGraph(d, label) {
  check(d.nodes.length === d.node_count, `${label}: ${d.nodes.length} of ${d.node_count} nodes`);
  const byId = new Map(d.nodes.map(n => [n.id, n]));
  const childSum = new Map();
  for (const n of d.nodes) {
    if (n.id === d.root_id) continue;
    childSum.set(n.dominator_id, (childSum.get(n.dominator_id) || 0) + n.retained);
  }
  for (const n of d.nodes) {
    const want = n.self + (childSum.get(n.id) || 0);
    check(n.retained === want, `${label}: @${n.id}: retained ${n.retained}, self + dominated ${want}`);
  }
  const rows = new Map();
  for (const n of d.nodes) {
    if (n.self === 0) continue;
    const row = rows.get(n.class_key) || {count: 0, self: 0, maxRet: 0};
    row.count++;
    row.self += n.self;
    let top = true;
    for (let up = byId.get(n.dominator_id); up && up.id !== d.root_id; up = byId.get(up.dominator_id)) {
      if (up.class_key === n.class_key && up.self > 0) {
        top = false;
        break;
      }
    }
    if (top) row.maxRet += n.retained;
    rows.set(n.class_key, row);
  }
  check(rows.size === d.classes.length, `${label}: ${rows.size} classes from nodes, ${d.classes.length} rows`);
  for (const c of d.classes) {
    const r = rows.get(c.key);
    check(r && r.count === c.count && r.self === c.self && r.maxRet === c.maxRet,
          `${label}: class ${c.key}: row ${[c.count, c.self, c.maxRet]}, from nodes ${r && [r.count, r.self, r.maxRet]}`);
  }
}

const leaky = read(leakyFile);
const edge = read(edgeFile);
const varied = read(variedFile);
invariants(leaky, 'leaky');
invariants(edge, 'edge cases');
invariants(varied, 'varied');
wholeGraph(edge, 'edge cases');
wholeGraph(varied, 'varied');
check(leaky.nodes.length >= 400, `leaky: only ${leaky.nodes.length} sampled nodes`);

// The three leaks: one row each with every object, split by location, and the chain DevTools
// shows first names the variable that holds the collection (these edges, in this order).
const leaks = {
  CachedEntry: [['cacheByKey', 'context'], ['table', 'internal']],
  ListenerPayload: [['bus', 'context'], ['_events', 'property'], ['received', 'context']],
  TickRecord: [['_onTimeout', 'property'], ['ticks', 'context']],
};
for (const [name, expected] of Object.entries(leaks)) {
  const rows = leaky.classes.filter(c => c.name === name);
  check(rows.length === 1, `${name}: ${rows.length} class rows`);
  if (rows[0]) {
    check(rows[0].count === count, `${name}: count ${rows[0].count}, expected ${count}`);
    check(/^\d+,\d+,\d+,/.test(rows[0].key), `${name}: class key ${rows[0].key} has no script location`);
  }
  const ids = leaky.class_ids[name] || [];
  check(ids.length === 3, `${name}: ${ids.length} sample ids`);
  for (const id of ids) {
    const chain = leaky.retainers[id] || [];
    const node = leaky.nodes.find(n => n.id === id);
    check(node && node.class === name, `${name} @${id}: not in nodes`);
    if (chain.length === 0) {
      failures.push(`${name} @${id}: empty retainer chain`);
      continue;
    }
    check(chain[0].distance <= 1, `${name} @${id}: chain starts at distance ${chain[0].distance}`);
    check(node && chain[chain.length - 1].distance < node.distance, `${name} @${id}: last retainer not closer than the object`);
    let at = 0;
    for (const step of chain) {
      if (at < expected.length && step.edge === expected[at][0] && step.edge_type === expected[at][1]) at++;
    }
    check(at === expected.length,
          `${name} @${id}: chain lacks ${JSON.stringify(expected[at])}: ${chain.map(s => `${s.node}.${s.edge}`).join(' -> ')}`);
  }
}

// Known answers on the synthetic edge cases (fixtures/edge-cases.mjs explains each node):
// id: [folded self, retained, dominator id, distance].
const expected = {
  1: [0, 1102, 1, 100000000], 3: [0, 77, 1, 100000001], 5: [100, 820, 1, 1], 7: [10, 10, 5, 2],
  9: [20, 20, 1, -5], 11: [30, 30, 1, -5], 13: [40, 150, 1, -5], 15: [50, 110, 13, -5], 17: [60, 60, 15, -5],
  19: [70, 77, 3, 100000002], 21: [216, 216, 5, 2], 23: [24, 104, 5, 2], 25: [390, 390, 5, 2],
  27: [5, 5, 1, 3], 29: [7, 7, 19, 100000003], 31: [0, 0, 21, 3], 33: [80, 80, 23, 4], 35: [0, 0, 25, 3],
};
check(edge.nodes.length === Object.keys(expected).length, `edge cases: ${edge.nodes.length} nodes`);
for (const n of edge.nodes) {
  const want = expected[n.id];
  const got = [n.self, n.retained, n.dominator_id, n.distance];
  check(want && want.join() === got.join(),
        `edge cases @${n.id} (${n.name}): [self, retained, dominator, distance] = ${got}, expected ${want}`);
}
const val = edge.retainers[33].map(s => `${s.name}.${s.edge_type}`).join(' -> ');
check(val === 'global.property -> Key.internal', `edge cases: chain of Val is ${val}`);
const holder = edge.retainers[25].map(s => `${s.name}.${s.edge}`).join(' -> ');
check(holder === 'global.ключ ✓ 😀', `edge cases: chain of Holder is ${holder}`);

// Two classes named Item at two places: two rows.
check(varied.classes.filter(c => c.name === 'Item').length === 2, 'varied: Item is not split into two rows');

// Three snapshots: DevTools' "Objects allocated between A and B" on C keeps exactly the
// objects new in B and still alive in C.
const series = read(seriesFile);
const seriesExpected = read(seriesExpectedFile);
check(series.id_range && series.id_range.min_exclusive < series.id_range.max_inclusive,
      `series: id range ${JSON.stringify(series.id_range)}`);
for (const [name, want] of Object.entries(seriesExpected.kept)) {
  const rows = series.filtered_classes.filter(c => c.name === name);
  const got = rows.reduce((s, c) => s + c.count, 0);
  check(got === want, `series: ${name} kept ${got}, expected ${want}`);
  const all = series.classes.filter(c => c.name === name).reduce((s, c) => s + c.count, 0);
  check(all >= want, `series: ${name}: ${all} in C, fewer than the ${want} kept`);
  for (const row of rows) check(row.self <= row.maxRet, `series: ${name}: self ${row.self} > maxRet ${row.maxRet}`);
}
const allRows = new Map(series.classes.map(c => [c.key, c]));
for (const row of series.filtered_classes) {
  const whole = allRows.get(row.key);
  check(whole && row.count <= whole.count && row.self <= whole.self,
        `series: filtered row ${row.key} exceeds the unfiltered one`);
}

if (failures.length) {
  for (const f of failures.slice(0, 50)) console.log(`selftest: FAIL ${f}`);
  if (failures.length > 50) console.log(`selftest: FAIL … and ${failures.length - 50} more`);
  process.exit(1);
}
console.log(`selftest: ok (${leaky.devtools}; leaky ${leaky.node_count} nodes, ${leaky.classes.length} classes, ` +
            `${Object.keys(leaky.retainers).length} chains; varied ${varied.node_count} nodes checked whole; ` +
            `${edge.node_count} edge-case answers; series kept ${JSON.stringify(seriesExpected.kept)})`);
