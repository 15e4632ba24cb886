#!/usr/bin/env bash
# What a profile fetch costs the app's event loop on a 1 GiB heap (issue #20): big-app.js grows
# ~1 GiB of live objects with heapgate-proxy sampling (default interval) from the start; then
# ROUNDS fetches of /heapprofile, each measured as the app's longest event-loop delay around it
# (monitorEventLoopDelay) and the client's wall time; and, interleaved, ROUNDS idle windows of the
# same length (the baseline delay with no fetch). Usage: bench/profile/fetch.sh [ROUNDS] [MIB]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
rounds="${1:-10}"
mib="${2:-1024}"
node="${NODE:-node}"
proxy="${HEAPGATE_PROXY:-$root/target/debug/heapgate-proxy}"
heapgate="${HEAPGATE_CLI:-$root/target/debug/heapgate}"
export HEAPGATE_SECRET="fetch-bench-secret-0123456789ab"
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
work="$(mktemp -d /tmp/heapgate-fetch.XXXXXX)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
app_port=$(port); insp=$(port); listen=$(port); admin=$(port)
PORT=$app_port "$node" --max-old-space-size=4096 --inspect=127.0.0.1:$insp "$here/big-app.js" >"$work/app.out" 2>&1 & app=$!; pids+=($app)
until grep -q listening "$work/app.out"; do sleep 0.1; done
"$proxy" --upstream "http://127.0.0.1:$app_port" --inspector "http://127.0.0.1:$insp" \
  --listen "127.0.0.1:$listen" --admin-listen "127.0.0.1:$admin" --task-id big \
  --profile-min-interval 0s --watch-every 0s 2>"$work/proxy.log" & px=$!; pids+=($px)
until grep -q "inspector session opened" "$work/proxy.log"; do sleep 0.1; done
echo "grown: $(curl -s "http://127.0.0.1:$app_port/grow?mib=$mib")"
echo "round kind event_loop_max_ms wall_ms profile_bytes"
for i in $(seq 1 "$rounds"); do
  curl -s "http://127.0.0.1:$app_port/lag?reset" >/dev/null
  read -r wall bytes < <(curl -s -o "$work/p.json" -w '%{time_total} %{size_download}\n' "http://127.0.0.1:$listen/heapprofile?hash=$("$heapgate" mint --for profile)")
  lagged=$(curl -s "http://127.0.0.1:$app_port/lag?reset" | python3 -c 'import json,sys; print(json.load(sys.stdin)["max_ms"])')
  echo "$i fetch $lagged $(awk -v w="$wall" 'BEGIN {printf "%.0f", w * 1000}') $bytes"
  sleep "$wall"
  idle=$(curl -s "http://127.0.0.1:$app_port/lag?reset" | python3 -c 'import json,sys; print(json.load(sys.stdin)["max_ms"])')
  echo "$i idle $idle - -"
  sleep 1
done
python3 - "$work/p.json" <<'PY'
import json, sys
p = json.load(open(sys.argv[1]))
n, stack = 0, [p["head"]]
while stack:
    x = stack.pop(); n += 1; stack.extend(x.get("children", []))
print(f"last profile: {n} nodes, {len(p.get('samples', []))} live samples")
PY
