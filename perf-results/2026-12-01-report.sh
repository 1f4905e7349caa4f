#!/bin/bash
# The first full performance report of issue 13: ceiling before and after, the server's WebSocket
# matrix (connections x batch x event size x EVENT_ACK x in flight), open loop at fractions of the
# measured peak, idle connections, REST and gRPC. One JSON per cell in perf-results/2026-12-01-report/.
#
#   perf-results/2026-12-01-report.sh [PHASE...]   (default: every phase, in the order below)
#
# Phases: machine warmbroker ceiling-before ack1 open profile ack0 restgrpc idle c10k ceiling-after
# (the default list), and linger0 (librdkafka linger.ms=0), idlebuf (idle with smaller
# WebSocket buffers), idlebase, peak, alternate and alternateopen (this binary against BASE_SRV; ROUNDS, RATE), lingersweep, scaling and inflight, which are
# not in the default list. SRV and CLI name the binaries (default target/release/).
# Environment: OUT (JSON folder), WARM (s, default 2), DUR (s, default 6), DEADLINE (epoch s: past it, server phases
# are skipped, ceiling-after still runs), PEAK (open loop: events/s the fractions are of), QUICK=1 (one tiny cell per phase, for trying the script).
#
# Everything runs on 127.0.0.1 and is bounded in time. The broker is a private single-node KRaft
# Kafka on 127.0.0.1:29092 with its data on tmpfs (/dev/shm) and byte retention, started and
# stopped by this script: the shared broker's disk had no room left for the gigabytes a matrix
# writes (see the report).
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-perf-results/2026-12-01-report}
# BASE_SRV: a server binary to compare with (phases idlebase, peak); TAG: suffix of the JSON names.
BASE_SRV=${BASE_SRV:-}; TAG=${TAG:-}
LOGS=/dev/shm/perf-report-logs
KDIR=/dev/shm/perf-report-kafka
KLIBS=${KAFKA_LIBS:-$HOME/.cache/raccoon/kafka-4.4.0/libs}
KPORT=29092; KCPORT=29093; BROKER=127.0.0.1:$KPORT
WSPORT=18680; GRPCPORT=18681
CLI=${CLI:-target/release/raccoon-cli}; SRV=${SRV:-target/release/raccoon}
WARM=${WARM:-2}; DUR=${DUR:-6}; DEADLINE=${DEADLINE:-9999999999}; QUICK=${QUICK:-0}
mkdir -p "$OUT" "$LOGS"
SPID=""

log() { echo "[$(date -u +%H:%M:%S)] $*"; }
late() { (( $(date +%s) >= DEADLINE )); }

# ---- the private broker ---------------------------------------------------------------------
broker_start() {
  rm -rf "$KDIR"; mkdir -p "$KDIR/data"
  # The properties of scripts/kafka.sh, plus byte retention checked every 2 s so tmpfs stays
  # small: 32 MiB per partition (one partition per topic), 16 MiB segments, deleted at once.
  cat >"$KDIR/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$KCPORT
listeners=PLAINTEXT://127.0.0.1:$KPORT,CONTROLLER://127.0.0.1:$KCPORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KPORT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$KDIR/data
auto.create.topics.enable=true
num.partitions=1
group.initial.rebalance.delay.ms=0
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
offsets.topic.num.partitions=1
transaction.state.log.num.partitions=1
log.cleaner.dedupe.buffer.size=16777216
log.retention.bytes=33554432
log.segment.bytes=16777216
log.retention.check.interval.ms=2000
log.segment.delete.delay.ms=0
EOF
  cp scripts/kafka-log4j2.properties "$KDIR/log4j2.properties"
  local id; id="A$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n' | cut -c2-)"
  java -Xmx256m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Dlog4j2.configurationFile="$KDIR/log4j2.properties" \
    -cp "$KLIBS/*" kafka.tools.StorageTool format --cluster-id "$id" --config "$KDIR/server.properties" \
    >"$KDIR/format.log" 2>&1 || { log "broker format failed"; tail "$KDIR/format.log"; exit 1; }
  (trap '' HUP; exec java -Xmx512m -Xms256m -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
    -XX:InitiatingHeapOccupancyPercent=35 -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$KDIR/log4j2.properties" -cp "$KLIBS/*" kafka.Kafka \
    "$KDIR/server.properties" </dev/null >"$KDIR/kafka.log" 2>&1) &
  KPID=$!; echo $KPID >"$KDIR/kafka.pid"
  for _ in $(seq 1 300); do grep -q "Kafka Server started" "$KDIR/kafka.log" 2>/dev/null && break; sleep 0.2; done
  grep -q "Kafka Server started" "$KDIR/kafka.log" || { log "broker not ready"; tail -30 "$KDIR/kafka.log"; exit 1; }
  log "broker pid $KPID on $BROKER"
  # The broker's first retention check comes 30 s after its start; produce nothing before it.
  sleep 28
}
broker_stop() {
  [ -n "${KPID:-}" ] || return 0
  kill -TERM "$KPID" 2>/dev/null
  for _ in $(seq 1 150); do kill -0 "$KPID" 2>/dev/null || break; sleep 0.2; done
  kill -0 "$KPID" 2>/dev/null && kill -KILL "$KPID"
  log "broker stopped; tmpfs used $(du -sh "$KDIR" | cut -f1)"; rm -rf "$KDIR"; KPID=""
}

# ---- the server -----------------------------------------------------------------------------
server_start() {  # $1 = EVENT_ACK, $2 = log name
  env ${SERVER_ENV:-} EVENT_ACK=$1 SERVER_BIND_ADDRESS=127.0.0.1 SERVER_WEBSOCKET_PORT=$WSPORT SERVER_GRPC_PORT=$GRPCPORT \
    PUBLISHER_KAFKA_CLIENT_BOOTSTRAP_SERVERS=$BROKER EVENT_DISTRIBUTION_PUBLISHER_PATTERN=perf-srv-%s \
    "$SRV" >"$LOGS/server-$2.log" 2>&1 &
  SPID=$!
  for _ in $(seq 1 60); do grep -q "raccoon listening on" "$LOGS/server-$2.log" && break; sleep 0.5; done
  grep -q "raccoon listening on" "$LOGS/server-$2.log" || { log "server did not start"; tail "$LOGS/server-$2.log"; exit 1; }
  log "server pid $SPID EVENT_ACK=$1"
}
server_stop() {
  [ -n "$SPID" ] || return 0
  kill -TERM "$SPID" 2>/dev/null
  for _ in $(seq 1 60); do kill -0 "$SPID" 2>/dev/null || break; sleep 0.5; done
  kill -0 "$SPID" 2>/dev/null && kill -KILL "$SPID"
  SPID=""
}

# ---- cells ----------------------------------------------------------------------------------
ceiling() {  # $1 = before|after, $2 = batch, $3 = event bytes
  local name="ceiling-$1-b$2-e$3"
  log "$name"
  timeout 60 "$CLI" ceiling -b "$BROKER" ${CEIL_X:-} -d "$DUR" --warmup "$WARM" --batch "$2" --event-bytes "$3" \
    --topic-pattern "perf-ceil-%s" --json "$OUT/$name.json" >"$LOGS/$name.out" 2>"$LOGS/$name.err"
  echo "  exit $? $(tail -1 "$LOGS/$name.err")"
}
load() {  # $1 = cell name, rest = load options (server pid and address added)
  local name=$1; shift
  late && { log "skip $name (deadline)"; return 0; }
  log "$name: $*"
  timeout 120 "$CLI" load --server-pid "$SPID" --warmup "$WARM" -d "$DUR" --timeout 30 "$@" \
    --json "$OUT/$name.json" >"$LOGS/$name.out" 2>"$LOGS/$name.err"
  echo "  exit $? $(grep -E 'acked|errors' "$LOGS/$name.out" | head -3 | tr -s ' ' | tr '\n' ';') broker tmpfs $(du -sh "$KDIR" | cut -f1)"
}
ws_cell() {  # $1 = ack, $2 = conns, $3 = batch, $4 = event bytes, $5 = in flight
  local ips=1; (( $2 >= 10000 )) && ips=4
  load "ws-ack$1-c$2-b$3-e$4-k$5" -a "127.0.0.1:$WSPORT" -c "$2" -k "$5" --batch "$3" \
    --event-bytes "$4" --source-ips "$ips"
}
ws_matrix() {  # $1 = ack
  local c b e k
  if [ "$QUICK" = 1 ]; then ws_cell "$1" 10 20 100 1; return; fi
  for c in 10 100 1000; do for b in 20 100; do for e in 100 1000; do for k in 1 8; do
    ws_cell "$1" $c $b $e $k
  done; done; done; done
}
workloads() { if [ "$QUICK" = 1 ]; then echo "20:100"; else echo "20:100 20:1000 100:100 100:1000"; fi; }

phase_machine() {
  { echo "date: $(date -u '+%F %T UTC')"
    echo "commit: $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src clients Cargo.toml Cargo.lock || echo -dirty)"
    echo "uname: $(uname -a)"; echo "nproc: $(nproc)"; grep -m1 "model name" /proc/cpuinfo
    free -g; echo "ulimit -n: $(ulimit -n)"; df -h / /dev/shm
    echo "binaries:"; sha256sum "$SRV" "$CLI" ${BASE_SRV:+"$BASE_SRV"}
    echo "top processes by CPU:"; ps -eo pid,pcpu,rss,comm --sort=-pcpu | head -8
  } >"$OUT/machine.txt" 2>&1
  cat "$OUT/machine.txt"
}
phase_warmbroker() {
  # Not a figure: 5 s of producing so the broker's JIT is warm before the first ceiling.
  timeout 60 "$CLI" ceiling -b "$BROKER" -d 5 --warmup 1 --topic-pattern "perf-warm-%s" \
    --json "$OUT/warmup-broker.json" >"$LOGS/warmup-broker.out" 2>"$LOGS/warmup-broker.err"
  echo "  exit $? $(tail -1 "$LOGS/warmup-broker.err")"
}
phase_ceiling() { local w; for w in $(workloads); do ceiling "$1" "${w%:*}" "${w#*:}"; done; }
phase_ack() { server_start "$1" "ack$1"; ws_matrix "$1"; server_stop; }
phase_open() {
  # Open loop, 100 connections, batch 20, 100 B, EVENT_ACK=1, at fractions of that configuration's
  # closed-loop peak (the better of k=1 and k=8 measured in phase ack1).
  local peak f rate
  peak=$(python3 -c 'import json,sys
v=[json.load(open(f))["acked_events_per_sec"] for f in sys.argv[1:]]
print(int(max(v)))' "$OUT"/ws-ack1-c100-b20-e100-k1.json "$OUT"/ws-ack1-c100-b20-e100-k8.json 2>/dev/null)
  [ -n "${PEAK:-}" ] && peak=$PEAK
  [ -n "$peak" ] || peak=$(python3 -c 'import json,sys; print(int(json.load(open(sys.argv[1]))["acked_events_per_sec"]))' "$OUT"/ws-ack1-c10-b20-e100-k1.json)
  log "open loop: peak $peak events/s"
  server_start 1 open
  for f in 50 25 10 75; do
    [ "$QUICK" = 1 ] && [ $f != 50 ] && continue
    rate=$(( peak * f / 100 ))
    load "open-ack1-c100-b20-e100-p$f" -a "127.0.0.1:$WSPORT" -c 100 --rate "$rate" --batch 20 --event-bytes 100
  done
  server_stop
}
phase_profile() {
  # One perf profile of the server during 100 connections, batch 20, 100 B, EVENT_ACK=1, 8 in flight.
  late && return 0
  server_start 1 profile
  local save=$DUR; DUR=10
  (sleep $((WARM + 2)); perf record -g -o /dev/shm/perf-report.data -p "$SPID" -- sleep 5 \
    >"$LOGS/perf-record.log" 2>&1) &
  local ppid=$!
  load "profile-ack1-c100-b20-e100-k8" -a "127.0.0.1:$WSPORT" -c 100 -k 8 --batch 20 --event-bytes 100
  wait $ppid; DUR=$save
  perf report -i /dev/shm/perf-report.data --stdio --no-children --percent-limit 0.5 -g none \
    >"$OUT/perf-report-self.txt" 2>/dev/null
  perf report -i /dev/shm/perf-report.data --stdio --children --percent-limit 3 -g none \
    >"$OUT/perf-report-children.txt" 2>/dev/null
  perf report -i /dev/shm/perf-report.data --stdio --sort comm -g none \
    >"$OUT/perf-report-threads.txt" 2>/dev/null
  server_stop
}
phase_linger0() {
  # Not the default config: librdkafka linger.ms=0 instead of 5, EVENT_ACK=1, for the latency
  # floor; the ceiling with the same override, then 100 connections closed loop and open loop
  # (PEAK: events/s the fractions are of, e.g. the default-config peak of an earlier pass).
  CEIL_X="-X linger.ms=0" ceiling linger0 20 100
  SERVER_ENV="PUBLISHER_KAFKA_CLIENT_LINGER_MS=0"
  server_start 1 linger0
  ws_cell 1 100 20 100 1; ws_cell 1 100 20 100 8
  server_stop
  phase_open
  SERVER_ENV=""
}
phase_idlebuf() {
  # Not the default config: 10,000 idle WebSockets with SERVER_WEBSOCKET_READ_BUFFER_SIZE and
  # WRITE_BUFFER_SIZE at 1 KiB and 4 KiB instead of 10 KiB, for what the buffers cost.
  local b
  for b in 1024 4096; do
    late && return 0
    SERVER_ENV="SERVER_WEBSOCKET_READ_BUFFER_SIZE=$b SERVER_WEBSOCKET_WRITE_BUFFER_SIZE=$b"
    server_start 1 "idlebuf-$b"; sleep 1
    log "idlebuf-$b"
    timeout 120 "$CLI" idle -a "127.0.0.1:$WSPORT" -c 10000 --hold 10 --source-ips 4 --timeout 30 \
      --server-pid "$SPID" --json "$OUT/idle-c10000-buf$b.json" >"$LOGS/idlebuf-$b.out" 2>"$LOGS/idlebuf-$b.err"
    echo "  exit $? $(tail -1 "$LOGS/idlebuf-$b.err")"
    server_stop
  done
  SERVER_ENV=""
}
phase_c10k() {
  late && { log "skip c10k (deadline)"; return 0; }
  local a
  for a in 1 0; do
    server_start $a "c10k-ack$a"
    ws_cell $a 10000 20 100 1
    [ "$QUICK" = 1 ] || { ws_cell $a 10000 20 100 8; ws_cell $a 10000 100 100 1; ws_cell $a 10000 20 1000 1; }
    server_stop
  done
}
phase_idlebase() {
  # phase_idle with the BASE_SRV binary, its JSON named idle-base-c*.json.
  [ -n "$BASE_SRV" ] || { log "idlebase needs BASE_SRV"; return 0; }
  local save=$SRV; SRV=$BASE_SRV; TAG=-base phase_idle; SRV=$save
}
phase_peak() {
  # EVENT_ACK=1, 100 connections, 8 in flight, batches of 20 and 100 (100 B): this binary and,
  # with BASE_SRV, the base binary right after it, for throughput and CPU per event.
  local b save
  server_start 1 peak
  for b in 20 100; do load "peak-ack1-c100-b$b-e100-k8" -a "127.0.0.1:$WSPORT" -c 100 -k 8 --batch $b --event-bytes 100; done
  server_stop
  [ -n "$BASE_SRV" ] || return 0
  save=$SRV; SRV=$BASE_SRV; server_start 1 peak-base
  for b in 20 100; do load "peak-base-ack1-c100-b$b-e100-k8" -a "127.0.0.1:$WSPORT" -c 100 -k 8 --batch $b --event-bytes 100; done
  server_stop; SRV=$save
}
phase_alternate() {
  # ROUNDS (default 5) rounds of the peak cells (EVENT_ACK=1, 100 connections, 8 in flight, batches
  # of 20 and 100, 100 B), this binary then BASE_SRV in each round, a fresh server per cell: slow
  # drifts of the shared machine fall on both alike. JSONs alt<round>[-base]-*.json.
  [ -n "$BASE_SRV" ] || { log "alternate needs BASE_SRV"; return 0; }
  local r b save=$SRV
  for r in $(seq 1 "${ROUNDS:-5}"); do
    for b in 20 100; do
      SRV=$save; server_start 1 "alt$r-b$b"
      load "alt$r-ack1-c100-b$b-e100-k8" -a "127.0.0.1:$WSPORT" -c 100 -k 8 --batch $b --event-bytes 100
      server_stop
      SRV=$BASE_SRV; server_start 1 "alt$r-base-b$b"
      load "alt$r-base-ack1-c100-b$b-e100-k8" -a "127.0.0.1:$WSPORT" -c 100 -k 8 --batch $b --event-bytes 100
      server_stop
    done
  done
  SRV=$save
}
phase_alternateopen() {
  # ROUNDS (default 3) rounds of open loop at RATE events/s (default 240000; EVENT_ACK=1, 100
  # connections, batches of 20, 100 B), this binary then BASE_SRV in each round, a fresh server
  # per cell: the latency at one rate, interleaved. JSONs altopen<round>[-base]-*.json.
  [ -n "$BASE_SRV" ] || { log "alternateopen needs BASE_SRV"; return 0; }
  local r rate=${RATE:-240000} save=$SRV
  for r in $(seq 1 "${ROUNDS:-3}"); do
    SRV=$save; server_start 1 "altopen$r"
    load "altopen$r-ack1-c100-b20-e100-r$rate" -a "127.0.0.1:$WSPORT" -c 100 --rate "$rate" --batch 20 --event-bytes 100
    server_stop
    SRV=$BASE_SRV; server_start 1 "altopen$r-base"
    load "altopen$r-base-ack1-c100-b20-e100-r$rate" -a "127.0.0.1:$WSPORT" -c 100 --rate "$rate" --batch 20 --event-bytes 100
    server_stop
  done
  SRV=$save
}
phase_lingersweep() {
  # librdkafka linger.ms 0, 1, 2, 5 (the default): per value the ceiling with the same setting,
  # the closed-loop peak (100 connections, batch 20, 100 B, 8 in flight, EVENT_ACK=1) and open
  # loop at one rate for all, half the default's peak from phase peak (or PEAK).
  local l rate peak
  peak=$(python3 -c 'import json,sys; print(int(json.load(open(sys.argv[1]))["acked_events_per_sec"]))' \
    "$OUT/peak-ack1-c100-b20-e100-k8.json" 2>/dev/null)
  [ -n "${PEAK:-}" ] && peak=$PEAK
  [ -n "$peak" ] || { log "lingersweep needs phase peak or PEAK"; return 0; }
  rate=$(( peak / 2 ))
  log "linger sweep: open loop at $rate events/s (half of $peak)"
  for l in 0 1 2 5; do
    late && { log "skip linger $l (deadline)"; continue; }
    CEIL_X="-X linger.ms=$l" ceiling "linger$l" 20 100
    SERVER_ENV="PUBLISHER_KAFKA_CLIENT_LINGER_MS=$l"
    server_start 1 "linger$l"
    load "linger$l-ack1-c100-b20-e100-k8" -a "127.0.0.1:$WSPORT" -c 100 -k 8 --batch 20 --event-bytes 100
    load "linger$l-open-ack1-c100-b20-e100-half" -a "127.0.0.1:$WSPORT" -c 100 --rate "$rate" --batch 20 --event-bytes 100
    server_stop
  done
  SERVER_ENV=""
}
phase_scaling() {
  # SERVER_SHARDS 1 and 2 x PUBLISHER_KAFKA_PRODUCER_THREADS 1 and 2: the closed-loop peak
  # (100 connections, batch 20, 100 B, 8 in flight, EVENT_ACK=1) and open loop at RATE
  # (default 150000 events/s, one rate for all four) for latency.
  local sh pu rate=${RATE:-150000}
  for sh in 1 2; do for pu in 1 2; do
    late && { log "skip scaling s$sh p$pu (deadline)"; continue; }
    SERVER_ENV="SERVER_SHARDS=$sh PUBLISHER_KAFKA_PRODUCER_THREADS=$pu"
    server_start 1 "scaling-s$sh-p$pu"
    load "scaling-s$sh-p$pu-ack1-c100-b20-e100-k8" -a "127.0.0.1:$WSPORT" -c 100 -k 8 --batch 20 --event-bytes 100
    load "scaling-s$sh-p$pu-open-ack1-c100-b20-e100-r$rate" -a "127.0.0.1:$WSPORT" -c 100 --rate "$rate" --batch 20 --event-bytes 100
    server_stop
  done; done
  SERVER_ENV=""
}
phase_inflight() {
  # The in-flight window: 1, 8 and 32 batches in flight per connection (100 connections, batch
  # 20, 100 B, EVENT_ACK=1) with the server's default cap (128), then 32 against a cap of 4.
  local k
  server_start 1 inflight
  for k in 1 8 32; do load "inflight-k$k-ack1-c100-b20-e100" -a "127.0.0.1:$WSPORT" -c 100 -k $k --batch 20 --event-bytes 100; done
  server_stop
  SERVER_ENV="SERVER_WEBSOCKET_MAX_INFLIGHT_BATCHES=4"
  server_start 1 inflight-cap4
  load "inflight-k32-cap4-ack1-c100-b20-e100" -a "127.0.0.1:$WSPORT" -c 100 -k 32 --batch 20 --event-bytes 100
  server_stop
  SERVER_ENV=""
}
phase_idle() {
  local n ips
  for n in 1000 10000 19000; do
    [ "$QUICK" = 1 ] && [ $n != 1000 ] && continue
    late && { log "skip idle $n (deadline)"; continue; }
    ips=1; (( n >= 10000 )) && ips=4
    server_start 1 "idle-$n"; sleep 1
    log "idle-$n"
    timeout 120 "$CLI" idle -a "127.0.0.1:$WSPORT" -c $n --hold 10 --source-ips $ips --timeout 30 \
      --server-pid "$SPID" --json "$OUT/idle$TAG-c$n.json" >"$LOGS/idle-$n.out" 2>"$LOGS/idle-$n.err"
    echo "  exit $? $(tail -2 "$LOGS/idle-$n.err" | tr '\n' ';')"
    server_stop
  done
}
phase_restgrpc() {
  local a t port
  for a in 1 0; do
    late && { log "skip rest/grpc (deadline)"; return 0; }
    server_start $a "restgrpc-ack$a"
    for t in rest grpc; do
      port=$WSPORT; [ $t = grpc ] && port=$GRPCPORT
      load "$t-ack$a-c100-b20-e100-k1" --transport $t -a "127.0.0.1:$port" -c 100 -k 1 --batch 20 --event-bytes 100
      [ "$QUICK" = 1 ] && break
    done
    server_stop
    [ "$QUICK" = 1 ] && break
  done
}

PHASES=${*:-machine warmbroker ceiling-before ack1 open profile ack0 restgrpc idle c10k ceiling-after}
trap 'server_stop; broker_stop' EXIT
broker_start
for p in $PHASES; do
  log "== phase $p"
  case $p in
    machine) phase_machine ;;
    warmbroker) phase_warmbroker ;;
    ceiling-before) phase_ceiling before ;;
    ceiling-after) phase_ceiling after ;;
    ack1) phase_ack 1 ;;
    ack0) phase_ack 0 ;;
    open) phase_open ;;
    profile) phase_profile ;;
    c10k) phase_c10k ;;
    linger0) phase_linger0 ;;
    idlebuf) phase_idlebuf ;;
    idle) phase_idle ;;
    idlebase) phase_idlebase ;;
    peak) phase_peak ;;
    alternate) phase_alternate ;;
    alternateopen) phase_alternateopen ;;
    lingersweep) phase_lingersweep ;;
    scaling) phase_scaling ;;
    inflight) phase_inflight ;;
    restgrpc) phase_restgrpc ;;
    *) log "unknown phase $p" ;;
  esac
done
log finished
