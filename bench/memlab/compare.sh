#!/usr/bin/env bash
# heapgate vs memlab on the cache corpus (tests/data/caches): for each real cache, three snapshots
# of the corpus app (written from a request callback), then `heapgate diff A B C --json` and
# `memlab find-leaks --trace-all-objects` on the same files, one after the other. Prints a
# markdown table: heapgate's groups for the leaked class and its top group's share of the kept
# Quotes, memlab's clusters and its top cluster's share of the objects it traced, wall times and
# their ratio. Not run in CI (memlab takes minutes); the corpus assertions are
# crates/cli/tests/corpus.rs.
#
# Needs: `npm ci` in tests/data/caches and (PUPPETEER_SKIP_DOWNLOAD=1) in bench/memlab, and a
# release build (`cargo build --release -p heapgate`).
# Usage: [KINDS="map set"] [HEAPGATE=path] bench/memlab/compare.sh [LEAKS]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
leaks="${1:-3000}"
heapgate="${HEAPGATE:-$root/target/release/heapgate}"
memlab="$root/bench/memlab/node_modules/.bin/memlab"
work="$(mktemp -d "${TMPDIR:-/tmp}/heapgate-memlab.XXXXXX")"
trap 'rm -rf "$work"' EXIT
default_kinds="lodash-string lodash-object memoizee lru-cache quick-lru node-cache dictionary
  null-prototype map set listener closure-array weakmap"
# shellcheck disable=SC2206 # a list of words
kinds=(${KINDS:-$default_kinds})
now() { date +%s.%N; }

echo "| cache | kept Quotes | heapgate groups | heapgate top group | heapgate holder | memlab clusters | memlab top cluster | heapgate s | memlab s | time ratio |"
echo "|---|---|---|---|---|---|---|---|---|---|"
for kind in "${kinds[@]}"; do
  dir="$work/$kind"
  mkdir -p "$dir"
  (cd "$root/tests/data/caches" && node app.js corpus "$kind" "$dir" "$leaks" >/dev/null)
  files=("$dir/a.heapsnapshot" "$dir/b.heapsnapshot" "$dir/c.heapsnapshot")
  t0=$(now)
  "$heapgate" diff "${files[@]}" --json --retainers 4 >"$dir/heapgate.json"
  t1=$(now)
  "$memlab" find-leaks --baseline "${files[0]}" --target "${files[1]}" --final "${files[2]}" \
    --trace-all-objects --work-dir "$dir/memlab" >"$dir/memlab.txt" 2>&1
  t2=$(now)
  rm -f "${files[@]}"
  node - "$kind" "$dir" "$t0" "$t1" "$t2" <<'JS'
const fs = require("fs");
const [kind, dir, t0, t1, t2] = process.argv.slice(2);
const rows = JSON.parse(fs.readFileSync(`${dir}/heapgate.json`, "utf8")).classes;
const quote = rows.find((r) => r.name === "Quote");
const groups = quote.retainers;
const top = groups[0];
// At most 3 groups are worked out per class: 3 means "3 or more".
const count = groups.length === 3 ? "≥ 3" : String(groups.length);
const text = fs.readFileSync(`${dir}/memlab.txt`, "utf8").replace(/\r/g, "\n").replace(/\x1b\[K/g, "");
const clusters = +(/MemLab found (\d+) leak/.exec(text) || [0, 0])[1];
const similar = [...text.matchAll(/Similar leaks in this run: (\d+)/g)].map((m) => +m[1]);
const traced = Math.max(0, ...[...text.matchAll(/clustering trace: \d+ \/ (\d+)/g)].map((m) => +m[1]));
const pct = (a, b) => (b ? (100 * a / b).toFixed(1) + " %" : "n/a");
const hg = t1 - t0, ml = t2 - t1;
const holder = top.holder ? `${top.holder.kind} \`${top.holder.name}\`` : "none";
console.log(`| ${kind} | ${quote.kept_count} | ${count} | ${pct(top.count, quote.kept_count)} | ${holder} | ${clusters} | ${pct(Math.max(0, ...similar), traced)} (${Math.max(0, ...similar)} of ${traced}) | ${hg.toFixed(2)} | ${ml.toFixed(2)} | ${(hg / ml).toFixed(2)}× |`);
JS
done
