#!/usr/bin/env bash
# The sampling heap profiler's memory over time (issue #20): two copies of churn-app.js side by
# side for DURATION seconds (default 3600), one with heapgate-proxy holding its inspector session
# with sampling on (default interval, bookkeeping check every minute), one without a session
# (control). Every minute: both apps' RSS and heap, and the profile's stack nodes and live samples.
# Output: a table (CSV) in OUT (default bench/profile/flatness.csv).
# Usage: bench/profile/flatness.sh [DURATION] [OUT]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
duration="${1:-3600}"
out="${2:-$here/flatness.csv}"
proxy="${HEAPGATE_PROXY:-$root/target/debug/heapgate-proxy}"
heapgate="${HEAPGATE_CLI:-$root/target/debug/heapgate}"
work="$(mktemp -d /tmp/heapgate-flatness.XXXXXX)"
export HEAPGATE_SECRET="flatness-secret-of-24-bytes"
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
app_on=$(port); app_off=$(port); insp=$(port); listen=$(port); admin=$(port)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
MEMLOG="$work/on.jsonl" PORT=$app_on timeout $((duration + 120)) node --inspect=127.0.0.1:$insp "$here/churn-app.js" 2>"$work/on.err" & pids+=($!); on=$!
MEMLOG="$work/off.jsonl" PORT=$app_off timeout $((duration + 120)) node "$here/churn-app.js" & pids+=($!); off=$!
sleep 1
timeout $((duration + 120)) "$proxy" --upstream "http://127.0.0.1:$app_on" --inspector "http://127.0.0.1:$insp" \
  --listen "127.0.0.1:$listen" --admin-listen "127.0.0.1:$admin" --task-id flat --profile-check 1m \
  --profile-min-interval 1s --watch-every 0s 2>"$work/proxy.log" & pids+=($!)
sleep 3
# The node processes under `timeout`.
on=$(pgrep -P "$on" node); off=$(pgrep -P "$off" node)
rss() { awk '/VmRSS/ {print $2 * 1024}' "/proc/$1/status"; }
echo "minute,rss_on_mib,rss_off_mib,heap_on_mib,heap_off_mib,profile_nodes,profile_samples,profile_bytes,restarts" >"$out"
start=$(date +%s)
minute=0
while [ $(( $(date +%s) - start )) -le "$duration" ]; do
  hash=$("$heapgate" mint --for profile)
  curl -s -D "$work/h" -o "$work/p.json" "http://127.0.0.1:$listen/heapprofile?hash=$hash" || true
  restarts=$(awk -F': ' 'tolower($1)=="x-heapgate-profile-restarts" {print $2+0}' "$work/h")
  read -r nodes samples bytes < <(python3 - "$work/p.json" <<'PY'
import json, sys, os
try:
    p = json.load(open(sys.argv[1]))
except Exception:
    print(-1, -1, -1); sys.exit()
n, stack = 0, [p["head"]]
while stack:
    x = stack.pop(); n += 1; stack.extend(x.get("children", []))
print(n, len(p.get("samples", [])), os.path.getsize(sys.argv[1]))
PY
)
  last() { tail -1 "$1" | python3 -c 'import json,sys; d=json.loads(sys.stdin.read()); print(round(d["heapUsed"]/1048576,1))'; }
  printf '%s,%.1f,%.1f,%s,%s,%s,%s,%s,%s\n' "$minute" "$(echo "$(rss $on)/1048576" | bc -l)" "$(echo "$(rss $off)/1048576" | bc -l)" \
    "$(last "$work/on.jsonl")" "$(last "$work/off.jsonl")" "$nodes" "$samples" "$bytes" "${restarts:-}" >>"$out"
  minute=$((minute + 1))
  sleep 60
done
grep -c "restarting the sampling" "$work/proxy.log" | sed 's/^/restarts logged: /' >>"$out.log" || true
cat "$out"
