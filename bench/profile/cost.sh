#!/usr/bin/env bash
# What the sampling heap profiler costs the app (issue #20): a JSON HTTP app (json-app.js, Node 20
# from PATH or $NODE) under wrk, with heapgate-proxy holding its inspector session with sampling
# on (--profile-interval 512KiB, the default) or off (--profile-interval 0: same session, no
# sampling). Rounds interleave on/off, each a fresh app + proxy, app pinned to CPU 1, wrk to CPU 0.
# Per round: req/s, p99 (ms), the app's RSS at the end (MiB). Prints rows and the on/off ratios of
# the medians. Usage: bench/profile/cost.sh [ROUNDS] [SECONDS]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
rounds="${1:-6}"
seconds="${2:-10}"
node="${NODE:-node}"
proxy="${HEAPGATE_PROXY:-$root/target/debug/heapgate-proxy}"
export HEAPGATE_SECRET="cost-secret-0123456789abcdef"
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
work="$(mktemp -d /tmp/heapgate-cost.XXXXXX)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
round() { # $1 = on|off
  local interval=0; [ "$1" = on ] && interval=512KiB
  local app_port insp listen admin app px
  app_port=$(port); insp=$(port); listen=$(port); admin=$(port)
  PORT=$app_port taskset -c 1 "$node" --inspect=127.0.0.1:$insp "$here/json-app.js" >"$work/app.out" 2>&1 & app=$!; pids+=($app)
  until grep -q listening "$work/app.out"; do sleep 0.1; done
  taskset -c 0 "$proxy" --upstream "http://127.0.0.1:$app_port" --inspector "http://127.0.0.1:$insp" \
    --listen "127.0.0.1:$listen" --admin-listen "127.0.0.1:$admin" --task-id cost \
    --profile-interval "$interval" --watch-every 1s 2>"$work/proxy.log" & px=$!; pids+=($px)
  until grep -q "inspector session opened" "$work/proxy.log"; do sleep 0.1; done
  taskset -c 0 wrk -t1 -c32 -d2s "http://127.0.0.1:$app_port/" >/dev/null  # warm up
  local out; out=$(taskset -c 0 wrk -t1 -c32 -d"${seconds}s" --latency "http://127.0.0.1:$app_port/")
  local rps p99 rss
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v*=1000}; print v}' <<<"$out")
  rss=$(awk '/VmRSS/ {printf "%.1f", $2/1024}' /proc/$app/status)
  kill $px $app; wait $px $app 2>/dev/null || true
  echo "$1 $rps $p99 $rss"
}
echo "round sampling req_s p99_ms app_rss_mib"
for i in $(seq 1 "$rounds"); do
  for mode in on off; do
    [ $((i % 2)) = 0 ] && mode=$([ $mode = on ] && echo off || echo on)  # alternate who goes first
    echo "$i $(round $mode)"
  done
done | tee "$work/rows"
python3 - "$work/rows" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]) if l[0].isdigit()]
def med(mode, col):
    return statistics.median(float(r[col]) for r in rows if r[1] == mode)
on, off = (lambda c: med("on", c)), (lambda c: med("off", c))
print(f"median req/s on {on(2):.0f} off {off(2):.0f} ratio {on(2)/off(2):.3f}")
print(f"median p99 ms on {on(3):.2f} off {off(3):.2f} ratio {on(3)/off(3):.3f}")
print(f"median app RSS MiB on {on(4):.1f} off {off(4):.1f} diff {on(4)-off(4):+.1f}")
PY
