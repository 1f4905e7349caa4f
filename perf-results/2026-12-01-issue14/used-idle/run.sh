#!/usr/bin/env bash
# What a WebSocket keeps once idle after use: heaptrack records the server while
# `raccoon-cli idle -c N --burst K` opens N connections, has each send K batches at once and wait
# for the answers, then holds them idle; the live heap during the hold, less the heap before the
# connections, per connection (heap.py). Live heap rather than RSS: memory the traffic freed is
# kept by the allocator and would count in the RSS. Needs heaptrack and release binaries.
#
#   [BROKER=host:port] [SRV=server binary] [HOLD=seconds] [IDLE_ARGS=...] [TAG=name prefix] \
#     run.sh OUTDIR N K [K ...]
#
# Defaults: broker 127.0.0.1:9092, target/release/raccoon, a hold of 36 s: longer than the
# server's default ping interval (30 s), at which a connection's writer gives back what its queue
# kept from the burst; heap.py reads the last 3 s of the hold.
set -u
cd "$(dirname "$0")/../../.."
out=$1 n=$2; shift 2
srv=${SRV:-target/release/raccoon} hold=${HOLD:-36}
mkdir -p "$out"
for k in "$@"; do
  name="${TAG:-}c$n-burst$k"
  rm -f "/dev/shm/used-idle-$name".*
  t0=$(date +%s.%N)
  SERVER_BIND_ADDRESS=127.0.0.1 SERVER_WEBSOCKET_PORT=18780 SERVER_GRPC_PORT=18781 METRIC_PROMETHEUS_PORT=18782 \
    EVENT_ACK=1 PUBLISHER_KAFKA_CLIENT_BOOTSTRAP_SERVERS=${BROKER:-127.0.0.1:9092} \
    heaptrack -o "/dev/shm/used-idle-$name" "$srv" >"$out/$name.server.log" 2>&1 &
  for _ in $(seq 1 60); do grep -q "raccoon listening on" "$out/$name.server.log" && break; sleep 0.5; done
  sleep 1
  pid=$(pgrep -n -f "^$srv$")
  # Each progress line of idle with the wall clock, for heap.py to find the hold in the profile.
  timeout 300 target/release/raccoon-cli idle -a 127.0.0.1:18780 -c "$n" --burst "$k" --hold "$hold" --timeout 60 ${IDLE_ARGS:-} \
    --server-pid "$pid" --json "$out/$name.json" 2>&1 >"$out/$name.out" \
    | while IFS= read -r line; do echo "$(date +%s.%N) $line"; done >"$out/$name.progress"
  kill -TERM "$pid"
  for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  sleep 2
  heaptrack_print -f "/dev/shm/used-idle-$name.zst" -M "/dev/shm/used-idle-$name.massif" --massif-detailed-freq 1000000 \
    --print-peaks 0 --print-allocators 0 --print-temporary 0 --print-leaks 0 >/dev/null 2>&1
  python3 perf-results/2026-12-01-issue14/used-idle/heap.py "/dev/shm/used-idle-$name.massif" \
    "$out/$name.progress" "$t0" "$n" "$k" | tee "$out/$name.heap"
  cat "$out/$name.out"
done
