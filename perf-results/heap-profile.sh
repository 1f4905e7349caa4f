#!/bin/bash
# Heap profile of the server holding N idle WebSockets: heaptrack records the server while
# `raccoon-cli idle -c N` holds the connections; the peak heap consumers are then printed per
# connection by perf-results/heap_profile.py (the figures of perf-results/2026-12-01-issue14.md,
# section 1). Needs heaptrack (Debian: apt-get install heaptrack) and release binaries.
#
#   perf-results/heap-profile.sh [N (default 10000)] [OUT (default /dev/shm/raccoon-heap)]
#
# The server runs with its defaults on 127.0.0.1 ports 18780-18782 against the broker at
# PUBLISHER_KAFKA_CLIENT_BOOTSTRAP_SERVERS (default 127.0.0.1:9092, scripts/kafka.sh start);
# everything stops by itself within about a minute.
set -eu
cd "$(dirname "$0")/.."
N=${1:-10000}; OUT=${2:-/dev/shm/raccoon-heap}
SRV=${SRV:-target/release/raccoon}; CLI=${CLI:-target/release/raccoon-cli}
command -v heaptrack >/dev/null || { echo "heaptrack is not installed" >&2; exit 2; }
rm -f "$OUT".zst "$OUT".stacks
SERVER_BIND_ADDRESS=127.0.0.1 SERVER_WEBSOCKET_PORT=18780 SERVER_GRPC_PORT=18781 METRIC_PROMETHEUS_PORT=18782 \
  heaptrack -o "$OUT" "$SRV" >"$OUT.log" 2>&1 &
for _ in $(seq 1 60); do grep -q "raccoon listening on" "$OUT.log" && break; sleep 0.5; done
SPID=$(pgrep -n -f "^$(readlink -f "$SRV")\$" || pgrep -n -f "^$SRV\$")
ips=1; (( N >= 10000 )) && ips=4
timeout 120 "$CLI" idle -a 127.0.0.1:18780 -c "$N" --hold 5 --source-ips $ips --timeout 30 --server-pid "$SPID" 2>&1 | tail -1
kill -TERM "$SPID"
for _ in $(seq 1 60); do kill -0 "$SPID" 2>/dev/null || break; sleep 0.5; done
sleep 2  # heaptrack finishes writing its file after the server exits
heaptrack_print -f "$OUT.zst" --print-peaks 0 --print-allocators 0 --print-temporary 0 --print-leaks 0 \
  -F "$OUT.stacks" --flamegraph-cost-type peak >/dev/null 2>&1
python3 perf-results/heap_profile.py "$OUT.stacks" "$N"
