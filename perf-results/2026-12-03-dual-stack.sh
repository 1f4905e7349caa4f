#!/usr/bin/env bash
# What the dual-stack default costs IPv4 clients (issue 20): peak acked events/s, server CPU per
# event and idle memory per connection, with IPv4 clients, for three servers interleaved in each
# round on the same broker:
#   base  the tip before the change (binary $BASE, bound to 0.0.0.0, its default)
#   dual  this tip, its default: one IPv6 socket taking IPv4 (clients arrive IPv4-mapped)
#   v4    this tip pinned to IPv4 (SERVER_BIND_ADDRESS=0.0.0.0)
#
#   BASE=/path/to/base/raccoon [ROUNDS=5] perf-results/2026-12-03-dual-stack.sh
#
# Load: 100 WebSockets, 8 batches in flight each, batches of 20 events of 100 B, EVENT_ACK=1,
# 3 s warm-up and 10 s measured; idle, on a fresh server: 1,000 WebSockets held 10 s. The order
# of the three servers turns by one each round. Writes one JSON per cell into
# perf-results/2026-12-03-dual-stack/. Needs release binaries (cargo build --release -p raccoon
# -p raccoon-cli) and the broker on 127.0.0.1:9092 (scripts/kafka.sh start).
set -euo pipefail
cd "$(dirname "$0")/.."
out=perf-results/2026-12-03-dual-stack
mkdir -p "$out"
base=${BASE:?set BASE to the base binary}
new=target/release/raccoon
cli=target/release/raccoon-cli
rounds=${ROUNDS:-5}

start() { # start BINARY BIND LOG: a server in the background; its pid in $pid
  env SERVER_BIND_ADDRESS="$2" SERVER_WEBSOCKET_PORT=18980 SERVER_GRPC_PORT=18981 EVENT_ACK=1 \
    PUBLISHER_KAFKA_CLIENT_BOOTSTRAP_SERVERS=127.0.0.1:9092 "$1" >"$3" 2>&1 &
  pid=$!
  for _ in $(seq 1 60); do grep -q "raccoon listening on" "$3" && break; sleep 0.5; done
  grep -q "raccoon listening on" "$3" || { echo "server did not start"; tail "$3"; exit 1; }
}

stop() {
  kill -TERM "$pid"
  wait "$pid" || true
  sleep 2
}

cell() { # cell NAME BINARY BIND ROUND: load on one server, idle on a fresh one
  local name=$1 bin=$2 bind=$3 round=$4
  start "$bin" "$bind" "$out/$name-r$round.load.log"
  "$cli" load -a 127.0.0.1:18980 -c 100 -k 8 --batch 20 --event-bytes 100 -d 10 --warmup 3 \
    --server-pid "$pid" --json "$out/load-$name-r$round.json" >/dev/null 2>&1
  stop
  start "$bin" "$bind" "$out/$name-r$round.idle.log"
  "$cli" idle -a 127.0.0.1:18980 -c 1000 --hold 10 --server-pid "$pid" \
    --json "$out/idle-$name-r$round.json" >/dev/null 2>&1
  stop
}

cells=("base $base 0.0.0.0" "dual $new -" "v4 $new 0.0.0.0")
for round in $(seq 1 "$rounds"); do
  echo "round $round"
  for i in 0 1 2; do
    read -r name bin bind <<<"${cells[$(((i + round - 1) % 3))]}"
    [ "$bind" = - ] && bind=""
    cell "$name" "$bin" "$bind" "$round"
  done
done
