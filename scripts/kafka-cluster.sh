#!/usr/bin/env bash
# Run a three-node Apache Kafka cluster on 127.0.0.1, as Kafka's users run it: KRaft, every
# node a combined broker and controller, a controller quorum of 3. Each node is one
# scripts/kafka.sh broker (same jars, same cache, same logs), started with the settings of a
# cluster's node:
#
#   default.replication.factor=3, min.insync.replicas=2   (auto-created topics)
#   internal topics: 3 replicas, min ISR 2
#   auto.create.topics.enable=true, num.partitions=1       (KAFKA_AUTO_CREATE_TOPICS, KAFKA_NUM_PARTITIONS)
#
# so an acks=all producer keeps writing with one node down and is refused
# (NOT_ENOUGH_REPLICAS) with two down.
#
#   scripts/kafka-cluster.sh start | stop | status | kill N | start-node N | stop-node N | logs N [tail args]
#
#   start         every node, in parallel, and waits until all are ready (a node of a KRaft
#                 quorum is ready only once a majority of the controllers is up, so one at a
#                 time would wait out the first node's KAFKA_START_TIMEOUT); on a failure,
#                 prints the failing node's output and stops the others
#   stop          every node, in parallel (a clean shutdown each)
#   status        one line per node; exit 0 when all are ready, 3 when none runs, else 1
#   kill N        SIGKILL node N (a crash); its data stays, `start-node N` brings it back
#   start-node N  starts node N of a running cluster and waits until it is ready (after a
#                 kill, that includes waiting out its old session: about 7 s)
#   stop-node N   stops node N cleanly (controlled shutdown: its leaderships move first)
#   logs N        the last lines of node N's kafka.log (`logs 2 -f` follows it)
#
# Environment (defaults):
#   KAFKA_CLUSTER_PORTS=19092,19093,19094  client (PLAINTEXT) ports of nodes 1, 2, 3; the
#                                bootstrap list is these on 127.0.0.1
#   KAFKA_CLUSTER_CONTROLLER_PORTS=19192,19193,19194  their KRaft controller ports
#   KAFKA_CLUSTER_DIR            /tmp/raccoon-kafka-cluster-<node 1's port>: node N's
#                                KAFKA_DATA_DIR is node-N/ in it, node-N.out its last
#                                start's output, cluster.id the id every node is formatted with
#   KAFKA_HEAP_OPTS="-Xmx384m -Xms192m"  per node: three JVMs share the machine
#   KAFKA_VERSION, KAFKA_HOME_DIR, KAFKA_START_TIMEOUT, KAFKA_JVM_OPTS, KAFKA_CDS,
#   KAFKA_AUTO_CREATE_TOPICS, KAFKA_NUM_PARTITIONS: passed to every node (see kafka.sh)
# The defaults stay clear of the single broker's 9092/9093, so both can run at once.
set -euo pipefail

KAFKA_CLUSTER_PORTS="${KAFKA_CLUSTER_PORTS:-19092,19093,19094}"
KAFKA_CLUSTER_CONTROLLER_PORTS="${KAFKA_CLUSTER_CONTROLLER_PORTS:-19192,19193,19194}"
export KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xmx384m -Xms192m}"

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
NODES=(1 2 3)

say() { echo "kafka-cluster: $*"; }
die() { echo "kafka-cluster: error: $*" >&2; exit 1; }
now() { local t="${EPOCHREALTIME:-$(date +%s)}"; echo "${t/,/.}"; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

IFS=, read -r -a PORTS <<<"$KAFKA_CLUSTER_PORTS"
IFS=, read -r -a CONTROLLER_PORTS <<<"$KAFKA_CLUSTER_CONTROLLER_PORTS"
((${#PORTS[@]} == 3)) || die "KAFKA_CLUSTER_PORTS needs 3 ports, got '$KAFKA_CLUSTER_PORTS'"
((${#CONTROLLER_PORTS[@]} == 3)) || die "KAFKA_CLUSTER_CONTROLLER_PORTS needs 3 ports, got '$KAFKA_CLUSTER_CONTROLLER_PORTS'"
for p in "${PORTS[@]}" "${CONTROLLER_PORTS[@]}"; do
  [[ "$p" =~ ^[0-9]+$ ]] || die "not a port: '$p'"
done
KAFKA_CLUSTER_DIR="${KAFKA_CLUSTER_DIR:-/tmp/raccoon-kafka-cluster-${PORTS[0]}}"
CLUSTER_ID_FILE="$KAFKA_CLUSTER_DIR/cluster.id"
VOTERS="1@127.0.0.1:${CONTROLLER_PORTS[0]},2@127.0.0.1:${CONTROLLER_PORTS[1]},3@127.0.0.1:${CONTROLLER_PORTS[2]}"
BOOTSTRAP="127.0.0.1:${PORTS[0]},127.0.0.1:${PORTS[1]},127.0.0.1:${PORTS[2]}"

# The id every node's storage is formatted with: made on the cluster's first start, kept in
# the cluster's directory, so a node started later (or again) joins the same cluster.
cluster_id() {
  if [[ ! -s "$CLUSTER_ID_FILE" ]]; then
    local id
    mkdir -p "$KAFKA_CLUSTER_DIR"
    # As kafka.sh makes one: 16 random bytes, URL-safe base64 without padding.
    id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
    echo "A${id:1}" >"$CLUSTER_ID_FILE.tmp"
    mv "$CLUSTER_ID_FILE.tmp" "$CLUSTER_ID_FILE"
  fi
  cat "$CLUSTER_ID_FILE"
}

node_number() {
  [[ "${1:-}" =~ ^[123]$ ]] || die "a node is 1, 2 or 3, not '${1:-}'"
  echo "$1"
}

# kafka.sh ACTION [args] for node $1, with the node's environment.
node() {
  local n=$1 id=""
  shift
  [[ "$1" == start ]] && id="$(cluster_id)"
  KAFKA_NODE_ID="$n" \
  KAFKA_PORT="${PORTS[n - 1]}" \
  KAFKA_CONTROLLER_PORT="${CONTROLLER_PORTS[n - 1]}" \
  KAFKA_DATA_DIR="$KAFKA_CLUSTER_DIR/node-$n" \
  KAFKA_QUORUM_VOTERS="$VOTERS" \
  KAFKA_CLUSTER_ID="$id" \
  KAFKA_INTERNAL_REPLICATION_FACTOR=3 \
  KAFKA_INTERNAL_MIN_ISR=2 \
  KAFKA_DEFAULT_REPLICATION_FACTOR=3 \
  KAFKA_MIN_INSYNC_REPLICAS=2 \
    bash "$SCRIPT_DIR/kafka.sh" "$@"
}

# Runs ACTION on every node at once, each node's output in $KAFKA_CLUSTER_DIR/node-N.out;
# prints it prefixed with the node. Returns the number of nodes that failed.
all_nodes() {
  local action=$1 n failed=0
  local -A pids=()
  mkdir -p "$KAFKA_CLUSTER_DIR"
  for n in "${NODES[@]}"; do
    node "$n" "$action" >"$KAFKA_CLUSTER_DIR/node-$n.out" 2>&1 &
    pids[$n]=$!
  done
  for n in "${NODES[@]}"; do
    if ! wait "${pids[$n]}"; then failed=$((failed + 1)); fi
    sed "s/^/node $n: /" "$KAFKA_CLUSTER_DIR/node-$n.out"
  done
  return "$failed"
}

cmd_start() {
  local t0 failed=0
  t0="$(now)"
  # Once, before three nodes would queue for the install lock inside their start timeouts.
  bash "$SCRIPT_DIR/kafka.sh" install
  cluster_id >/dev/null
  all_nodes start || failed=$?
  if ((failed > 0)); then
    say "$failed node(s) failed to start; stopping the cluster"
    all_nodes stop >/dev/null || true
    die "cluster not started (outputs in $KAFKA_CLUSTER_DIR/node-*.out, logs in $KAFKA_CLUSTER_DIR/node-*/kafka.log)"
  fi
  say "ready on $BOOTSTRAP in $(since "$t0")s"
}

cmd_stop() {
  local t0
  t0="$(now)"
  all_nodes stop || die "a node did not stop"
  say "stopped in $(since "$t0")s"
}

cmd_status() {
  local n out rc running=0 ready=0
  for n in "${NODES[@]}"; do
    out="$(node "$n" status)" && rc=0 || rc=$?
    echo "node $n: $out"
    case "$rc" in
      0) running=$((running + 1)); ready=$((ready + 1)) ;;
      1) running=$((running + 1)) ;;
    esac
  done
  ((ready == ${#NODES[@]})) && return 0
  ((running == 0)) && return 3
  return 1
}

action="${1:-}"
case "$action" in
  kill | start-node | stop-node | logs) n="$(node_number "${2:-}")"; shift 2 ;;
esac
case "$action" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  kill) node "$n" kill ;;
  start-node) node "$n" start ;;
  stop-node) node "$n" stop ;;
  logs) node "$n" logs "$@" ;;
  *) echo "usage: $0 start|stop|status|kill N|start-node N|stop-node N|logs N [-f]" >&2; exit 2 ;;
esac
