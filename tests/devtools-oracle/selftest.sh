#!/usr/bin/env bash
# Self-test of the DevTools oracle on a real Node heap snapshot with three known leaks
# (fixtures/leaky.cjs): installs the oracle if needed, takes the snapshot, runs oracle.mjs and
# checks invariants that must hold for DevTools' numbers and the leaks' known answers.
#
#   tests/devtools-oracle/selftest.sh [COUNT]      (default 2000 objects per leak)
#
# Exit 0 and "selftest: ok …" on success; one "selftest: FAIL …" line per broken check, exit 1.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
count="${1:-2000}"

"$here/install.sh" >/dev/null
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

node "$here/fixtures/leaky.cjs" "$work/leaky.heapsnapshot" "$count" >/dev/null
node "$here/oracle.mjs" "$work/leaky.heapsnapshot" --nodes 500 \
  --class CachedEntry --class ListenerPayload --class TickRecord --per-class 3 >"$work/oracle.json"

node "$here/fixtures/edge-cases.mjs" "$work/edge.heapsnapshot"
node "$here/oracle.mjs" "$work/edge.heapsnapshot" --nodes 1000 --ids 33,29,25 >"$work/edge.json" 2>"$work/edge.err"

# Same answers when the file arrives in odd-sized pieces: boundaries inside numbers, tokens
# and (edge cases: raw UTF-8 property name) multi-byte characters.
same_in_small_chunks() {
  local out="$1" chunk="$2"
  shift 2
  ORACLE_CHUNK_BYTES="$chunk" node "$here/oracle.mjs" "$@" >"$work/small-chunks.json" 2>/dev/null
  if ! cmp -s "$out" "$work/small-chunks.json"; then
    echo "selftest: FAIL the oracle's output for $1 depends on the read chunk size ($chunk)"
    exit 1
  fi
}
same_in_small_chunks "$work/oracle.json" 4093 "$work/leaky.heapsnapshot" --nodes 500 \
  --class CachedEntry --class ListenerPayload --class TickRecord --per-class 3
same_in_small_chunks "$work/edge.json" 7 "$work/edge.heapsnapshot" --nodes 1000 --ids 33,29,25

node - "$work/oracle.json" "$count" "$work/edge.json" <<'EOF'
'use strict';
const fs = require('fs');
const [file, countText, edgeFile] = process.argv.slice(2);
const count = Number(countText);
const d = JSON.parse(fs.readFileSync(file, 'utf8'));
const failures = [];
const check = (ok, what) => { if (!ok) failures.push(what); };

// Totals: every node's (folded) self size is in exactly one class row and in the root's
// dominator subtree, so the Summary's self sizes add up to the root's retained size.
const selfSum = d.classes.reduce((s, c) => s + c.self, 0);
check(selfSum === d.root_retained, `sum of class self sizes ${selfSum} != root retained ${d.root_retained}`);
check(d.total_size >= d.root_retained, `total_size ${d.total_size} < root retained ${d.root_retained}`);
const keys = new Set(d.classes.map(c => c.key));
check(keys.size === d.classes.length, 'class keys are not unique');
for (const c of d.classes) {
  // Each object is counted in its class's Retained Size, itself or through a dominating
  // object of the same class.
  check(c.count > 0 && c.self > 0, `class ${c.key}: count ${c.count}, self ${c.self}`);
  check(c.self <= c.maxRet && c.maxRet <= d.root_retained, `class ${c.key}: self ${c.self}, maxRet ${c.maxRet}`);
  check(c.key === `,${c.name}` || c.key.endsWith(`,${c.name}`), `class key ${c.key} does not end with its name ${c.name}`);
}

// Sampled nodes: self <= retained <= root retained; the root retains everything.
check(d.nodes.length >= 400, `only ${d.nodes.length} sampled nodes`);
const root = d.nodes.find(n => n.id === d.root_id);
check(root && root.retained === d.root_retained, 'root node missing from the sample or wrong retained size');
for (const n of d.nodes) {
  check(n.self <= n.retained && n.retained <= d.root_retained, `node @${n.id}: self ${n.self}, retained ${n.retained}`);
  check(keys.has(n.class_key) || n.self === 0, `node @${n.id}: class key ${n.class_key} not among the classes`);
}

// The three leaks: one row each with every object, and the chain DevTools shows first names
// the variable that holds the collection.
const leaks = {
  CachedEntry: [['cacheByKey', 'context'], ['table', 'internal']],
  ListenerPayload: [['bus', 'context'], ['_events', 'property'], ['received', 'context']],
  TickRecord: [['_onTimeout', 'property'], ['ticks', 'context']],
};
for (const [name, expected] of Object.entries(leaks)) {
  const rows = d.classes.filter(c => c.name === name);
  check(rows.length === 1, `${name}: ${rows.length} class rows`);
  const row = rows[0];
  if (row) {
    check(row.count === count, `${name}: count ${row.count}, expected ${count}`);
    check(/^\d+,\d+,\d+,/.test(row.key), `${name}: class key ${row.key} has no script location`);
  }
  const ids = d.class_ids[name] || [];
  check(ids.length === 3, `${name}: ${ids.length} sample ids`);
  for (const id of ids) {
    const chain = d.retainers[id];
    const node = d.nodes.find(n => n.id === id);
    check(node && node.class === name, `${name} @${id}: not in nodes`);
    if (!chain || chain.length === 0) {
      failures.push(`${name} @${id}: empty retainer chain`);
      continue;
    }
    check(chain[0].distance <= 1, `${name} @${id}: chain starts at distance ${chain[0].distance}`);
    for (let i = 1; i < chain.length; i++) {
      check(chain[i].distance > chain[i - 1].distance, `${name} @${id}: distances not increasing at step ${i}`);
    }
    check(node && chain[chain.length - 1].distance < node.distance, `${name} @${id}: last retainer not closer than the object`);
    // The expected edges appear in this order along the chain.
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
const e = JSON.parse(fs.readFileSync(edgeFile, 'utf8'));
const expected = {
  1: [0, 1102, 1, 100000000], 3: [0, 77, 1, 100000001], 5: [100, 820, 1, 1], 7: [10, 10, 5, 2],
  9: [20, 20, 1, -5], 11: [30, 30, 1, -5], 13: [40, 150, 1, -5], 15: [50, 110, 13, -5], 17: [60, 60, 15, -5],
  19: [70, 77, 3, 100000002], 21: [216, 216, 5, 2], 23: [24, 104, 5, 2], 25: [390, 390, 5, 2],
  27: [5, 5, 1, 3], 29: [7, 7, 19, 100000003], 31: [0, 0, 21, 3], 33: [80, 80, 23, 4], 35: [0, 0, 25, 3],
};
check(e.nodes.length === Object.keys(expected).length, `edge cases: ${e.nodes.length} nodes`);
for (const n of e.nodes) {
  const want = expected[n.id];
  const got = [n.self, n.retained, n.dominator_id, n.distance];
  check(want && want.join() === got.join(), `edge cases @${n.id} (${n.name}): [self, retained, dominator, distance] = ${got}, expected ${want}`);
}
const chain = e.retainers[33].map(s => `${s.name}.${s.edge_type}`).join(' -> ');
check(chain === 'global.property -> Key.internal', `edge cases: chain of Val is ${chain}`);
const holder = e.retainers[25].map(s => `${s.name}.${s.edge}`).join(' -> ');
check(holder === 'global.ключ ✓ 😀', `edge cases: chain of Holder is ${holder}`);

if (failures.length) {
  for (const f of failures) console.log(`selftest: FAIL ${f}`);
  process.exit(1);
}
console.log(`selftest: ok (${d.devtools}; ${d.node_count} nodes, ${d.classes.length} classes, ` +
            `${d.nodes.length} sampled nodes, ${Object.keys(d.retainers).length} chains)`);
EOF
