#!/usr/bin/env bash
# What TLS costs (issue 24), each figure against a baseline measured in the same run:
#   handshakes  full TLS 1.3 handshakes (ECDSA P-256, X25519, no resumption) against one shard
#               pinned to CPU 0, the client on CPU 1, 16 at a time for 8 s; beside it rustls alone
#               in memory (raccoon-cli handshakes --bare), the ceiling. ROUNDS rounds.
#   idle        RSS per idle WebSocket at 1,000, 10,000 and 19,000 held (5 s): the tip before the
#               change (binary $BASE), this tip in cleartext, this tip over TLS.
#   load        peak acked events/s and server CPU per event: 100 WebSockets, 8 batches in
#               flight each, 20 events of 100 B, EVENT_ACK=1, 3 s warm-up and 10 s measured, for
#               base, plain and tls, with a bare rdkafka producer (raccoon-cli ceiling) first in
#               each round. ROUNDS rounds, the order rotating.
#
#   BASE=/path/to/base/raccoon [ROUNDS=2] [OUT=dir] perf-results/2026-12-03-tls.sh
#
# Needs release binaries (cargo build --release -p raccoon -p raccoon-cli), openssl (the test
# CA) and the broker on 127.0.0.1:9092. Writes one JSON per measurement into OUT (default
# perf-results/2026-12-03-tls/).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-perf-results/2026-12-03-tls}
mkdir -p "$out"
base=${BASE:?set BASE to the base binary}
new=target/release/raccoon
cli=target/release/raccoon-cli
rounds=${ROUNDS:-2}
free_gb=$(df --output=avail -BG "${KAFKA_DATA_DIR:-/tmp}" | tail -1 | tr -dc 0-9)
((free_gb >= 20)) || { echo "need 20 GB free for the broker's data (have ${free_gb} GB)"; exit 1; }

pki=$(mktemp -d)
trap 'rm -rf "$pki"' EXIT
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$pki/ca.key" -out "$pki/ca.pem" \
  -days 2 -subj /CN=perf-ca 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$pki/key.pem" -out "$pki/s.csr" \
  -subj /CN=localhost 2>/dev/null
printf "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n" >"$pki/ext"
openssl x509 -req -in "$pki/s.csr" -CA "$pki/ca.pem" -CAkey "$pki/ca.key" -CAcreateserial -out "$pki/cert.pem" \
  -days 1 -extfile "$pki/ext" 2>/dev/null
tls=(SERVER_TLS_CERT_FILE="$pki/cert.pem" SERVER_TLS_KEY_FILE="$pki/key.pem")

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
  sleep 1
}

# name binary env...: the cells of idle and load
cells=("base $base" "plain $new" "tls $new ${tls[*]}")
addr_of() { [[ $1 == tls ]] && echo "localhost:18980 --ca-file $pki/ca.pem" || echo "127.0.0.1:18980"; }

echo "handshakes"
for round in $(seq 1 "$rounds"); do
  taskset -c 1 "$cli" handshakes --bare -d 8 --warmup 2 --json "$out/handshakes-bare-r$round.json" 2>/dev/null
  start "$new" "$out/handshakes-r$round.log" SERVER_SHARDS=1 SERVER_CPU_LIST=0 PUBLISHER_TYPE=log "${tls[@]}"
  taskset -c 1 "$cli" handshakes -a localhost:18980 --ca-file "$pki/ca.pem" -c 16 -d 8 --warmup 2 \
    --server-pid "$pid" --json "$out/handshakes-server-r$round.json" 2>/dev/null
  stop
done

echo "idle"
for n in 1000 10000 19000; do
  for c in "${cells[@]}"; do
    read -r name bin envs <<<"$c"
    # shellcheck disable=SC2086  # $envs: the cell's environment, word by word
    start "$bin" "$out/idle-$name-$n.log" PUBLISHER_TYPE=log SERVER_WEBSOCKET_MAX_CONN=30000 $envs
    # shellcheck disable=SC2046  # the address and, for TLS, the CA option
    "$cli" idle -a $(addr_of "$name") -c "$n" --hold 5 --server-pid "$pid" --json "$out/idle-$name-$n.json" \
      >/dev/null 2>&1 || echo "idle $name $n: not every connection stayed (see the JSON)"
    stop
  done
done

echo "load"
for round in $(seq 1 "$rounds"); do
  "$cli" ceiling --topic-pattern "tls-ceiling-r$round-%s" --batch 20 --event-bytes 100 -d 10 --warmup 3 \
    --json "$out/ceiling-r$round.json" >/dev/null 2>&1
  for i in $(seq 0 $((${#cells[@]} - 1))); do
    read -r name bin envs <<<"${cells[$(((i + round - 1) % ${#cells[@]}))]}"
    # shellcheck disable=SC2086
    start "$bin" "$out/load-$name-r$round.log" EVENT_DISTRIBUTION_PUBLISHER_PATTERN="tls-$name-r$round-%s" $envs
    # shellcheck disable=SC2046
    "$cli" load -a $(addr_of "$name") -c 100 -k 8 --batch 20 --event-bytes 100 -d 10 --warmup 3 \
      --server-pid "$pid" --json "$out/load-$name-r$round.json" >/dev/null 2>&1
    stop
  done
done
