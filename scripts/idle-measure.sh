#!/usr/bin/env bash
# Memory and wake-ups of an idle server: the figures of docs/board.md.
#
#   scripts/idle-measure.sh [--bin PATH] [--clients "1000 10000"] [--room-size 100]
#                           [--hold 40] [--runner "qemu-aarch64 -L /usr/aarch64-linux-gnu"]
#                           [--server-args "--read-buffer-bytes 2048"]
#
# For each client count it starts a fresh server (pinned to core 0), reads VmRSS and the
# voluntary context switches of the server from /proc, joins the clients with `mppd-bench idle`
# (pinned to core 1; each client sends `t` every 20 s, as browsers do), then samples both once a
# second while the clients stay idle. A voluntary context switch is one wake-up of the event
# loop from epoll_wait. Before any client, it counts wake-ups over 10 s with none.
#
# --runner runs the server under an emulator (the figures then include the emulator's own
# memory; only the difference per connection means something). Everything stays on 127.0.0.0/8.
set -euo pipefail
cd "$(dirname "$0")/.."

bin=target/board/mppd
clients="1000 10000"
room_size=100
hold=40
runner=""
server_args=""
port=9230
while [ "$#" -gt 0 ]; do
    case "$1" in
        --bin) bin=$2; shift 2 ;;
        --clients) clients=$2; shift 2 ;;
        --room-size) room_size=$2; shift 2 ;;
        --hold) hold=$2; shift 2 ;;
        --runner) runner=$2; shift 2 ;;
        --server-args) server_args=$2; shift 2 ;;
        --port) port=$2; shift 2 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done
bench=target/release/mppd-bench
[ -x "$bench" ] || nice cargo build -q --release -p mppd-bench
[ -x "$bin" ] || { echo "no server binary at $bin (cargo build --profile board)" >&2; exit 2; }

status() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }

start_server() {
    # shellcheck disable=SC2086
    taskset -c 0 $runner "$bin" --listen "127.0.0.1:$port" --log-level warn $server_args &
    server=$!
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "the server did not start" >&2
    exit 1
}

stop_server() {
    kill "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
}
trap stop_server EXIT

echo "binary: $bin ($(stat -c %s "$bin") bytes) ${runner:+under $runner} $server_args"

start_server
# The start probe above opened (and closed) one connection; its request-head deadline passes
# 10 s later and wakes the loop once. Measure after it.
sleep 11
rss=$(status "$server" VmRSS)
w0=$(status "$server" voluntary_ctxt_switches)
sleep 10
w1=$(status "$server" voluntary_ctxt_switches)
echo "no clients: VmRSS $rss kB; wake-ups in 10 s: $((w1 - w0))"
stop_server

for n in $clients; do
    port=$((port + 1))
    start_server
    sleep 0.5
    out=$(mktemp)
    # The generator holds the clients a little longer than the sampling lasts.
    taskset -c 1 "$bench" idle --server "127.0.0.1:$port" --server-pid "$server" --clients "$n" \
        --room-size "$room_size" --settle 1 --hold $((hold + 5)) --json >"$out" 2>&1 &
    gen=$!
    # Wait until the server holds a descriptor per client, then sample every second.
    while kill -0 "$gen" 2>/dev/null && [ "$(ls "/proc/$server/fd" | wc -l)" -lt "$n" ]; do sleep 0.2; done
    sleep 2
    joined_rss=$(status "$server" VmRSS)
    # Kernel memory of every TCP socket on the machine (both ends of each loopback connection).
    tcp_pages=$(awk '$1 == "TCP:" { for (i = 2; i < NF; i++) if ($i == "mem") print $(i + 1) }' /proc/net/sockstat)
    series=""
    total=0
    zero=0
    prev=$(status "$server" voluntary_ctxt_switches)
    for _ in $(seq "$hold"); do
        sleep 1
        kill -0 "$server" 2>/dev/null || break
        now=$(status "$server" voluntary_ctxt_switches)
        d=$((now - prev))
        prev=$now
        series+="$d "
        total=$((total + d))
        [ "$d" = 0 ] && zero=$((zero + 1))
    done
    wait "$gen" || true
    grep -v '^{' "$out" | sed 's/^/  /'
    echo "  $n idle clients: VmRSS $joined_rss kB joined; wake-ups per second over $hold s: $series"
    echo "  $n idle clients: $total wake-ups in $hold s, $zero seconds without any"
    echo "  $n idle clients: kernel TCP memory (both ends) $((tcp_pages * $(getconf PAGESIZE) / 1024)) kB"
    rm -f "$out"
    stop_server
done
