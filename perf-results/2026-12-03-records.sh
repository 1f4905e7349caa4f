#!/usr/bin/env bash
# What record keys and headers cost on the hot path (issue 23): peak acked events/s, server CPU per
# event and idle memory per connection, for seven servers interleaved in each round on the same
# broker, with a bare rdkafka producer (raccoon-cli ceiling) into that broker as the round's
# baseline:
#   base      the tip before the change (binary $BASE)
#   new       this tip, defaults: no key, no headers, no dead-letter topic (Raccoon's records)
#   new-dlq   this tip with PUBLISHER_DEAD_LETTER_TOPIC set (nothing is rejected: the cost of
#             having it on)
#   new-key   this tip with PUBLISHER_KAFKA_RECORD_KEY=conn_id
#   new-hdr   this tip with PUBLISHER_KAFKA_RECORD_HEADERS=true
#   base-ack0, new-ack0  base and new with EVENT_ACK=0 (batches now keep their req_guid in this
#             mode too, and the reply takes a copy of it)
#
#   BASE=/path/to/base/raccoon [ROUNDS=3] [CELLS="base new ..."] [IDLE=0] [OUT=dir] \
#     perf-results/2026-12-03-records.sh
#
# CELLS keeps only the cells named (in this order, rotating each round); IDLE=0 skips the idle
# measurement; OUT names the results folder (default perf-results/2026-12-03-records).
#
# The broker must create topics with 8 partitions (KAFKA_NUM_PARTITIONS=8 scripts/kafka.sh start
# on a fresh data dir, or topics of this run's pattern made so), so that keys spread a batch's
# records over partitions as they do in production: each cell writes to topics of its own
# (pattern records-<cell>-r<round>-%s), auto-created. Load: 100 WebSockets, 8 batches in flight
# each, batches of 20 events of 100 B, EVENT_ACK=1, 3 s warm-up and 10 s measured; idle, on a
# fresh server: 1,000 WebSockets held 10 s; ceiling: the same batches for 10 s after 3 s warm-up.
# The order of the servers rotates each round. Writes one JSON per cell into
# perf-results/2026-12-03-records/. Needs release binaries (cargo build --release -p raccoon -p
# raccoon-cli) and the broker on 127.0.0.1:9092.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-perf-results/2026-12-03-records}
idle=${IDLE:-1}
mkdir -p "$out"
base=${BASE:?set BASE to the base binary}
new=target/release/raccoon
cli=target/release/raccoon-cli
rounds=${ROUNDS:-3}
# Each cell writes 0.5-2 GB to the broker; refuse to start where its data could fill the disk.
free_gb=$(df --output=avail -BG "${KAFKA_DATA_DIR:-/tmp}" | tail -1 | tr -dc 0-9)
((free_gb >= 40)) || { echo "need 40 GB free for the broker's data (have ${free_gb} GB)"; exit 1; }

start() { # start BINARY LOG [ENV...]: a server in the background; its pid in $pid
  local bin=$1 log=$2
  shift 2
  env SERVER_BIND_ADDRESS=127.0.0.1 SERVER_WEBSOCKET_PORT=18980 SERVER_GRPC_PORT=18981 EVENT_ACK=1 \
    PUBLISHER_KAFKA_CLIENT_BOOTSTRAP_SERVERS=127.0.0.1:9092 "$@" "$bin" >"$log" 2>&1 &
  pid=$!
  for _ in $(seq 1 60); do grep -q "raccoon listening on" "$log" && break; sleep 0.5; done
  grep -q "raccoon listening on" "$log" || { echo "server did not start"; tail "$log"; exit 1; }
}

stop() {
  kill -TERM "$pid"
  wait "$pid" || true
  sleep 2
}

cell() { # cell NAME BINARY ROUND [ENV...]: load on one server, idle on a fresh one
  local name=$1 bin=$2 round=$3
  shift 3
  start "$bin" "$out/$name-r$round.load.log" EVENT_DISTRIBUTION_PUBLISHER_PATTERN="records-$name-r$round-%s" "$@"
  "$cli" load -a 127.0.0.1:18980 -c 100 -k 8 --batch 20 --event-bytes 100 -d 10 --warmup 3 \
    --server-pid "$pid" --json "$out/load-$name-r$round.json" >/dev/null 2>&1
  stop
  [[ "$idle" == 1 ]] || return 0
  start "$bin" "$out/$name-r$round.idle.log" "$@"
  "$cli" idle -a 127.0.0.1:18980 -c 1000 --hold 10 --server-pid "$pid" \
    --json "$out/idle-$name-r$round.json" >/dev/null 2>&1
  stop
}

cells=("base $base" "new $new" "new-dlq $new PUBLISHER_DEAD_LETTER_TOPIC=records-dead-letters"
  "new-key $new PUBLISHER_KAFKA_RECORD_KEY=conn_id" "new-hdr $new PUBLISHER_KAFKA_RECORD_HEADERS=true"
  "base-ack0 $base EVENT_ACK=0" "new-ack0 $new EVENT_ACK=0")
if [[ -n "${CELLS:-}" ]]; then
  kept=()
  for want in $CELLS; do
    for c in "${cells[@]}"; do [[ "${c%% *}" == "$want" ]] && kept+=("$c"); done
  done
  cells=("${kept[@]}")
fi
for round in $(seq 1 "$rounds"); do
  echo "round $round"
  "$cli" ceiling --topic-pattern "records-ceiling-r$round-%s" --batch 20 --event-bytes 100 -d 10 --warmup 3 --json "$out/ceiling-r$round.json" >/dev/null 2>&1
  for i in $(seq 0 $((${#cells[@]} - 1))); do
    read -r name bin envs <<<"${cells[$(((i + round - 1) % ${#cells[@]}))]}"
    # shellcheck disable=SC2086  # $envs: the cell's environment, word by word (empty for some)
    cell "$name" "$bin" "$round" $envs
  done
done
