#!/usr/bin/env bash
# A 60 s broker outage under load (issue 22): how each transport's batches are answered while
# Kafka is down, and the server's RSS over time (it must not grow with the outage's length).
#
#   perf-results/2026-12-03-delivery-outage.sh
#
# A private broker (scripts/kafka.sh on 127.0.0.1:19092, data in /tmp, removed after), the release
# server with EVENT_ACK=1 in front of it, and three loads at once for 100 s: WebSocket (50
# connections), REST and gRPC (10 each), one batch of 20 events of 100 B in flight per connection.
# At 20 s the broker is killed (kill -9), at 80 s started again. The server's RSS is sampled every
# 5 s into rss.tsv; each load's report goes to load-<transport>.json. Needs release binaries
# (cargo build --release -p raccoon -p raccoon-cli).
set -euo pipefail
cd "$(dirname "$0")/.."
out=perf-results/2026-12-03-delivery-outage
mkdir -p "$out"
cli=target/release/raccoon-cli
export KAFKA_PORT=19092 KAFKA_CONTROLLER_PORT=19093 KAFKA_DATA_DIR=/tmp/raccoon-kafka-outage-run
pid=
loads=()
trap 'bash scripts/kafka.sh stop >/dev/null || true; rm -rf "$KAFKA_DATA_DIR"; [[ -n $pid ]] && kill "$pid" 2>/dev/null || true' EXIT
bash scripts/kafka.sh start
env SERVER_BIND_ADDRESS=127.0.0.1 SERVER_WEBSOCKET_PORT=18980 SERVER_GRPC_PORT=18981 EVENT_ACK=1 \
  PUBLISHER_KAFKA_CLIENT_BOOTSTRAP_SERVERS=127.0.0.1:19092 target/release/raccoon >"$out/server.log" 2>&1 &
pid=$!
for _ in $(seq 1 60); do grep -q "raccoon listening on" "$out/server.log" && break; sleep 0.5; done
began=$(date +%s.%N)
for t in "ws 50 127.0.0.1:18980" "rest 10 127.0.0.1:18980" "grpc 10 127.0.0.1:18981"; do
  read -r transport conns addr <<<"$t"
  "$cli" load --transport "$transport" -a "$addr" -c "$conns" -k 1 --batch 20 --event-bytes 100 -d 100 \
    --warmup 0 --server-pid "$pid" --json "$out/load-$transport.json" >/dev/null 2>"$out/load-$transport.err" &
  loads+=($!)
done
printf 's\trss_kib\tbroker\n' >"$out/rss.tsv"
broker=up
for i in $(seq 0 20); do
  now=$(awk -v a="$began" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
  printf '%s\t%s\t%s\n' "$now" "$(awk '/VmRSS/ { print $2 }' /proc/$pid/status)" "$broker" >>"$out/rss.tsv"
  if [[ $i == 4 ]]; then bash scripts/kafka.sh kill; broker=down; fi
  if [[ $i == 16 ]]; then bash scripts/kafka.sh start >/dev/null; broker=up; fi
  sleep 5
done
wait "${loads[@]}" || true
kill -TERM "$pid"; wait "$pid" || true
