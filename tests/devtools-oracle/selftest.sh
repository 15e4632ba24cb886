#!/usr/bin/env bash
# Self-test of the DevTools oracle: installs it if needed, takes real Node heap snapshots
# (fixtures/leaky.cjs: three known leaks; fixtures/varied.cjs: DevTools' special cases;
# fixtures/series.cjs: three snapshots of one process for "allocated between A and B"), writes
# the synthetic fixtures/edge-cases.mjs, runs oracle.mjs on them and checks (selftest-checks.cjs)
# invariants of DevTools' numbers, the leaks' retainer chains and the edge cases' known answers.
#
#   tests/devtools-oracle/selftest.sh [COUNT]      (default 2000 objects per leak)
#
# Exit 0 and "selftest: ok …" on success; one "selftest: FAIL …" line per broken check, exit 1.
# About 10 s on a 2-core machine once installed.
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
node "$here/fixtures/varied.cjs" "$work/varied.heapsnapshot" 300 >/dev/null
node "$here/oracle.mjs" "$work/varied.heapsnapshot" --nodes 1000000000 --class Item >"$work/varied.json" 2>/dev/null

same_in_small_chunks "$work/oracle.json" 4093 "$work/leaky.heapsnapshot" --nodes 500 \
  --class CachedEntry --class ListenerPayload --class TickRecord --per-class 3
same_in_small_chunks "$work/edge.json" 7 "$work/edge.heapsnapshot" --nodes 1000 --ids 33,29,25

mkdir "$work/series"
node "$here/fixtures/series.cjs" "$work/series" 301 >"$work/series.expected.json"
node "$here/oracle.mjs" "$work/series/c.heapsnapshot" --nodes 0 \
  --between "$work/series/a.heapsnapshot" "$work/series/b.heapsnapshot" >"$work/series.json" 2>/dev/null

node "$here/selftest-checks.cjs" "$work/oracle.json" "$count" "$work/edge.json" "$work/varied.json" \
  "$work/series.json" "$work/series.expected.json"
