#!/usr/bin/env bash
# Cluster figures as ratios to a single node in the same run (docs/cluster.md, "Measurements"):
#
#   1. latency: one sender and one listener per room; on one node, then with the sender on one
#      node and the listener on another (the room's owner is the sender's node: it joins first);
#   2. throughput: the same fan-out load on one node, then spread over 2 and 3 nodes; deliveries
#      per CPU-second of the whole site (every node plus nats-server).
#
# usage: bench/cluster.sh            (builds target/release/mppd and mppd-bench first)
# environment:
#   NATS=nats-server      the NATS server binary
#   LAT_ARGS, LOAD_ARGS   fanout options of the two measurements (defaults below)
# Everything runs on loopback; every process is stopped at the end.
set -euo pipefail

root=$(git rev-parse --show-toplevel)
cd "$root"
cargo build -q --release -p mppd -p mppd-bench
mppd=target/release/mppd
bench=target/release/mppd-bench
nats_bin=${NATS:-$(command -v nats-server || echo /usr/sbin/nats-server)}
read -r -a lat_args <<<"${LAT_ARGS:---rooms 20 --room-size 2 --senders 1 --rate 20 --duration 8 --warmup 2}"
read -r -a load_args <<<"${LOAD_ARGS:---rooms 6 --room-size 12 --senders 3 --rate 50 --duration 8 --warmup 2}"

tmp=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

wait_log() { # FILE TEXT
  for _ in $(seq 1 200); do
    grep -q "$2" "$1" 2>/dev/null && return 0
    sleep 0.05
  done
  echo "never logged $2: $1" >&2
  cat "$1" >&2
  exit 1
}

# start_site N: a fresh nats-server (N > 1) and N nodes; sets $servers and $site_pids.
start_site() {
  local n=$1 nats_url="" i port
  servers=""
  site_pids=""
  if [[ $n -gt 1 ]]; then
    local nats_port
    nats_port=$(free_port)
    "$nats_bin" -js -a 127.0.0.1 -p "$nats_port" -sd "$tmp/nats-$n" >"$tmp/nats-$n.log" 2>&1 &
    pids+=($!)
    site_pids=$!
    nats_url="nats://127.0.0.1:$nats_port"
    wait_log "$tmp/nats-$n.log" "Server is ready"
  fi
  for i in $(seq 1 "$n"); do
    port=$(free_port)
    local args=(--listen "127.0.0.1:$port" --salt bench --data-dir "$tmp/data-$n-$i" --log-level warn)
    if [[ -n $nats_url ]]; then args+=(--nats "$nats_url" --node "n$i" --log-level info); fi
    "$mppd" "${args[@]}" >"$tmp/node-$n-$i.log" 2>&1 &
    pids+=($!)
    site_pids="${site_pids:+$site_pids,}$!"
    servers="${servers:+$servers,}127.0.0.1:$port"
    if [[ -n $nats_url ]]; then wait_log "$tmp/node-$n-$i.log" "joined the site"; fi
  done
  sleep 1
}

stop_site() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  pids=()
}

run() { # LABEL FANOUT-ARGS...
  local label=$1
  shift
  "$bench" fanout --server "$servers" --server-pid "$site_pids" --json "$@" >"$tmp/$label.out" 2>&1 || {
    cat "$tmp/$label.out" >&2
    exit 1
  }
  tail -n 1 "$tmp/$label.out" >"$tmp/$label.json"
}

field() { python3 -c "import json,sys; print(json.load(open('$tmp/$1.json')).get('$2'))"; }

start_site 1
run lat1 "${lat_args[@]}"
run load1 "${load_args[@]}"
stop_site
start_site 2
run lat2 "${lat_args[@]}"
run load2 "${load_args[@]}"
stop_site
start_site 3
run load3 "${load_args[@]}"
stop_site

printf '\n%-44s %12s %12s %8s\n' "figure" "one node" "cluster" "ratio"
row() { # NAME ONE CLUSTER
  python3 -c "
one, cl = float('$2'), float('$3')
print('%-44s %12.3f %12.3f %8.2f' % ('$1', one, cl, cl / one if one else float('nan')))"
}
row "latency p50 ms (sender, listener on 2 nodes)" "$(field lat1 latency_p50_ms)" "$(field lat2 latency_p50_ms)"
row "latency p99 ms (sender, listener on 2 nodes)" "$(field lat1 latency_p99_ms)" "$(field lat2 latency_p99_ms)"
row "deliveries per site CPU-s, 2 nodes" "$(field load1 deliveries_per_server_cpu_s)" "$(field load2 deliveries_per_server_cpu_s)"
row "deliveries per site CPU-s, 3 nodes" "$(field load1 deliveries_per_server_cpu_s)" "$(field load3 deliveries_per_server_cpu_s)"
row "deliveries/s, 2 nodes" "$(field load1 deliveries_per_s)" "$(field load2 deliveries_per_s)"
row "deliveries/s, 3 nodes" "$(field load1 deliveries_per_s)" "$(field load3 deliveries_per_s)"
for f in lat1 lat2 load1 load2 load3; do
  printf '%s: losses %s, failed %s\n' "$f" "$(field $f lost)" "$(field $f failed)"
done
