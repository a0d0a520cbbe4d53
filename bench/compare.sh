#!/usr/bin/env bash
# Benchmark regression guard: runs the same fanout scenario against the server built from the
# previous commit and from the current tree, alternating, and prints medians and the ratio
# current/previous.
#
# usage: bench/compare.sh [BASE_REV] [-- fanout options]
#   BASE_REV   what "previous" is (default: HEAD when the tree has uncommitted changes to the
#              server, else HEAD~1); "current" is always the working tree
# environment:
#   RUNS=3                runs per side (the median is reported)
#   SERVER_CORE=0         core the server is pinned to; BENCH_CORE=1 for the generator
#   SERVER_ARGS=""        extra server arguments (after --listen 127.0.0.1:PORT)
#   FAIL_BELOW=0.9        exit 1 if deliveries per server CPU-second fell below this ratio
set -euo pipefail

root=$(git rev-parse --show-toplevel)
cd "$root"

base=""
if [[ $# -gt 0 && $1 != "--" ]]; then
  base=$1
  shift
fi
if [[ $# -gt 0 && $1 == "--" ]]; then
  shift
fi
if [[ $# -gt 0 ]]; then
  fanout_args=("$@")
else
  fanout_args=(--rooms 4 --room-size 50 --senders 10 --rate 100 --duration 8 --warmup 2)
fi
if [[ -z $base ]]; then
  if git diff --quiet HEAD -- src Cargo.toml Cargo.lock; then
    base=HEAD~1
  else
    base=HEAD
  fi
fi
runs=${RUNS:-3}
server_core=${SERVER_CORE:-0}
bench_core=${BENCH_CORE:-1}
fail_below=${FAIL_BELOW:-0.9}
read -r -a server_args <<<"${SERVER_ARGS:-}"

# Pinning prefixes (taskset execs the command, so $! of a pinned background job is its PID).
server_pin=()
bench_pin=()
if command -v taskset >/dev/null; then
  server_pin=(taskset -c "$server_core")
  bench_pin=(taskset -c "$bench_core")
else
  echo "taskset not found: running unpinned"
fi

tmp=$(mktemp -d)
server_pid=""
cleanup() {
  if [[ -n $server_pid ]]; then kill "$server_pid" 2>/dev/null || true; fi
  git worktree remove --force "$tmp/prev" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

base_sha=$(git rev-parse --short "$base")
echo "previous: $base ($base_sha); current: working tree at $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src Cargo.toml Cargo.lock || echo ' + changes')"

echo "building previous ($base_sha) ..."
git worktree add --detach --quiet "$tmp/prev" "$base"
# A target directory of its own keeps the previous build's dependencies cached between runs.
(cd "$tmp/prev" && CARGO_TARGET_DIR="$root/target/compare-prev" cargo build --release --quiet -p mppd --bin mppd)
cp "$root/target/compare-prev/release/mppd" "$tmp/mppd-prev"
echo "building current ..."
cargo build --release --quiet -p mppd --bin mppd
cargo build --release --quiet -p mppd-bench
cp "$root/target/release/mppd" "$tmp/mppd-cur"
bench="$root/target/release/mppd-bench"

run_one() { # run_one NAME PORT
  local name=$1 port=$2
  "${server_pin[@]}" "$tmp/mppd-$name" --listen "127.0.0.1:$port" "${server_args[@]}" >"$tmp/$name.log" 2>&1 &
  server_pid=$!
  sleep 0.2
  if ! kill -0 "$server_pid" 2>/dev/null; then
    echo "  [$name] server exited at start:" && sed 's/^/    /' "$tmp/$name.log"
    exit 1
  fi
  if "${bench_pin[@]}" "$bench" fanout --server "127.0.0.1:$port" --server-pid "$server_pid" \
    --json "${fanout_args[@]}" >"$tmp/out" 2>&1; then
    tail -n 1 "$tmp/out" >>"$tmp/$name.jsonl"
    grep -E '^(deliveries|per server|latency|losses)' "$tmp/out" | sed "s/^/  [$name] /"
  else
    echo "  [$name] run failed:" && sed 's/^/    /' "$tmp/out"
  fi
  kill "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  server_pid=""
}

for port in 9301 9302; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "port $port is in use: stop what listens there first"
    exit 1
  fi
done

for i in $(seq 1 "$runs"); do
  echo "round $i/$runs"
  run_one prev 9301
  run_one cur 9302
done

median() { # median FILE KEY
  grep -o "\"$2\":[-0-9.eE+]*" "$1" 2>/dev/null | cut -d: -f2 | grep -v '^$' | sort -g |
    awk '{v[NR]=$1} END {if (NR == 0) print "nan"; else print v[int((NR + 1) / 2)]}' || true
}

echo
printf '%-30s %14s %14s %10s\n' metric previous current cur/prev
status=0
for key in deliveries_per_server_cpu_s deliveries_per_s latency_p50_ms latency_p99_ms latency_max_ms lost server_rss_kib generator_cpu_util; do
  p=$(median "$tmp/prev.jsonl" "$key")
  c=$(median "$tmp/cur.jsonl" "$key")
  ratio=$(awk -v p="$p" -v c="$c" 'BEGIN { if (p + 0 == 0) print "-"; else printf "%.3f", c / p }')
  printf '%-30s %14s %14s %10s\n' "$key" "$p" "$c" "$ratio"
  if [[ $key == deliveries_per_server_cpu_s && $ratio != "-" ]]; then
    if awk -v r="$ratio" -v f="$fail_below" 'BEGIN { exit !(r < f) }'; then
      echo "regression: deliveries per server CPU-second at $ratio of the previous commit (< $fail_below)"
      status=1
    fi
  fi
done
exit $status
