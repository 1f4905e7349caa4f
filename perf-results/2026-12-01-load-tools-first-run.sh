#!/bin/bash
# The first measured run of the load tools; everything on 127.0.0.1, bounded.
set -u
cd "$(dirname "$0")/.."
OUT=/tmp/loadgen-perf; mkdir -p $OUT
CLI=target/release/raccoon-cli
TS=$(date +%s)
echo "== ceiling before"; timeout 120 $CLI ceiling -d 10 --warmup 2 --batch 20 --event-bytes 100 --topic-pattern perf-$TS-base1-%s --json $OUT/ceiling-before.json 2>$OUT/ceiling-before.err
EVENT_ACK=1 SERVER_BIND_ADDRESS=127.0.0.1 SERVER_WEBSOCKET_PORT=18580 SERVER_GRPC_PORT=18581 \
  EVENT_DISTRIBUTION_PUBLISHER_PATTERN=perf-$TS-%s target/release/raccoon > $OUT/server.log 2>&1 &
PID=$!
for i in $(seq 1 60); do grep -q "raccoon listening on" $OUT/server.log && break; sleep 0.5; done
echo "== load (server pid $PID)"; timeout 120 $CLI load -a 127.0.0.1:18580 -c 100 -k 8 --batch 20 --event-bytes 100 -d 10 --warmup 3 --server-pid $PID --json $OUT/load.json 2>$OUT/load.err
echo "== idle"; timeout 120 $CLI idle -a 127.0.0.1:18580 -c 1000 --hold 10 --server-pid $PID --json $OUT/idle.json 2>$OUT/idle.err
kill -TERM $PID; for i in $(seq 1 60); do kill -0 $PID 2>/dev/null || break; sleep 0.5; done; kill -0 $PID 2>/dev/null && kill -KILL $PID
echo "== ceiling after"; timeout 120 $CLI ceiling -d 10 --warmup 2 --batch 20 --event-bytes 100 --topic-pattern perf-$TS-base2-%s --json $OUT/ceiling-after.json 2>$OUT/ceiling-after.err
echo finished
