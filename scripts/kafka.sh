#!/usr/bin/env bash
# Run a real single-node Apache Kafka broker (KRaft, combined broker+controller) on
# 127.0.0.1 using only `java` (17+) and `mvn`. The jars come from Maven Central via
# scripts/kafka-pom.xml, because apache.org tarballs are not reachable from CI.
#
#   scripts/kafka.sh install | start | stop | kill | status | logs [tail args, e.g. -f]
#
# `kill` sends SIGKILL (a crash, for tests): nothing is flushed or removed, and a later
# `start` with the same KAFKA_DATA_DIR reuses the storage and its data.
#
# Environment (defaults):
#   KAFKA_VERSION=4.4.0          org.apache.kafka:kafka_2.13 version (4.x: see pom)
#   KAFKA_PORT=9092              PLAINTEXT listener (clients)
#   KAFKA_CONTROLLER_PORT=9093   KRaft controller listener
#   KAFKA_HOME_DIR               jars; default ${XDG_CACHE_HOME:-~/.cache}/raccoon/kafka-$KAFKA_VERSION
#                                so fresh clones on the same machine reuse them
#   KAFKA_DATA_DIR               /tmp/raccoon-kafka-$KAFKA_PORT: log.dirs (data/), pid file,
#                                kafka.log (broker output), server.properties
#   KAFKA_START_TIMEOUT=90       seconds `start` waits for readiness
#   KAFKA_HEAP_OPTS="-Xmx512m -Xms256m", KAFKA_JVM_OPTS (extra JVM flags)
#   KAFKA_CDS=1                  0 disables the class-data-sharing archive (see cmd_start)
#   KAFKA_AUTO_CREATE_TOPICS=true  the broker's auto.create.topics.enable
#   KAFKA_NUM_PARTITIONS=1       num.partitions (of auto-created topics)
# A node of a multi-node KRaft cluster (scripts/kafka-cluster.sh sets these; the defaults
# are the single node's):
#   KAFKA_NODE_ID=1              node.id
#   KAFKA_QUORUM_VOTERS          controller.quorum.voters, id@host:port,...; default
#                                $KAFKA_NODE_ID@127.0.0.1:$KAFKA_CONTROLLER_PORT (this node alone)
#   KAFKA_CLUSTER_ID             the cluster id the storage is formatted with on the first
#                                start; every node of one cluster needs the same one. Empty:
#                                a random one. A start whose storage holds another id fails.
#   KAFKA_INTERNAL_REPLICATION_FACTOR=1  replication factor of the internal topics (offsets,
#                                transaction state, share-group state)
#   KAFKA_INTERNAL_MIN_ISR=1     their min ISR (transaction and share-group state)
#   KAFKA_DEFAULT_REPLICATION_FACTOR  default.replication.factor (auto-created topics);
#                                empty: not written, Kafka's default (1)
#   KAFKA_MIN_INSYNC_REPLICAS    min.insync.replicas; empty: not written, Kafka's default (1)
# Several brokers can run at once as long as ports and KAFKA_DATA_DIR differ; a
# restart with the same KAFKA_DATA_DIR reuses the formatted storage and its data.
set -euo pipefail

KAFKA_VERSION="${KAFKA_VERSION:-4.4.0}"
KAFKA_PORT="${KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9093}"
KAFKA_HOME_DIR="${KAFKA_HOME_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/raccoon/kafka-$KAFKA_VERSION}"
KAFKA_DATA_DIR="${KAFKA_DATA_DIR:-/tmp/raccoon-kafka-$KAFKA_PORT}"
KAFKA_START_TIMEOUT="${KAFKA_START_TIMEOUT:-90}"
KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xmx512m -Xms256m}"
KAFKA_JVM_OPTS="${KAFKA_JVM_OPTS:-}"
KAFKA_CDS="${KAFKA_CDS:-1}"
KAFKA_AUTO_CREATE_TOPICS="${KAFKA_AUTO_CREATE_TOPICS:-true}"
KAFKA_NUM_PARTITIONS="${KAFKA_NUM_PARTITIONS:-1}"
KAFKA_NODE_ID="${KAFKA_NODE_ID:-1}"
KAFKA_QUORUM_VOTERS="${KAFKA_QUORUM_VOTERS:-$KAFKA_NODE_ID@127.0.0.1:$KAFKA_CONTROLLER_PORT}"
KAFKA_CLUSTER_ID="${KAFKA_CLUSTER_ID:-}"
KAFKA_INTERNAL_REPLICATION_FACTOR="${KAFKA_INTERNAL_REPLICATION_FACTOR:-1}"
KAFKA_INTERNAL_MIN_ISR="${KAFKA_INTERNAL_MIN_ISR:-1}"
KAFKA_DEFAULT_REPLICATION_FACTOR="${KAFKA_DEFAULT_REPLICATION_FACTOR:-}"
KAFKA_MIN_INSYNC_REPLICAS="${KAFKA_MIN_INSYNC_REPLICAS:-}"

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
LIBS="$KAFKA_HOME_DIR/libs"
MARKER="$KAFKA_HOME_DIR/.installed"
PID_FILE="$KAFKA_DATA_DIR/kafka.pid"
LOG_FILE="$KAFKA_DATA_DIR/kafka.log"
PROPS="$KAFKA_DATA_DIR/server.properties"
LOG4J_CONF="$KAFKA_DATA_DIR/log4j2.properties"
# Logged by KafkaRaftServer once startup() returns, which in KRaft happens only after
# the broker has registered with the controller and been unfenced, i.e. it can take
# leadership of (auto-created) partitions and accept produce requests.
READY_LINE="Kafka Server started"

say() { echo "kafka: $*"; }
die() { echo "kafka: error: $*" >&2; exit 1; }
now() { local t="${EPOCHREALTIME:-$(date +%s)}"; echo "${t/,/.}"; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# The stamp ties an install to the version and to the pom's content, so editing the
# pom (e.g. adding a jar) invalidates a cached install instead of silently reusing it.
install_stamp() { echo "$KAFKA_VERSION $(sha256sum <"$SCRIPT_DIR/kafka-pom.xml" | cut -c1-64)"; }
installed() { [[ -f "$MARKER" && "$(cat "$MARKER")" == "$(install_stamp)" ]]; }

cmd_install() {
  installed && return 0
  command -v java >/dev/null || die "java (17+) not found on PATH"
  command -v mvn >/dev/null || die "mvn not found on PATH"
  mkdir -p "$KAFKA_HOME_DIR"
  # Two brokers may be started at once on a fresh machine: serialise the install.
  exec 9>"$KAFKA_HOME_DIR/.lock"
  command -v flock >/dev/null && flock 9
  if installed; then exec 9>&-; return 0; fi
  say "installing $KAFKA_VERSION into $KAFKA_HOME_DIR"
  local t0 staging="$KAFKA_HOME_DIR/libs.partial"
  t0="$(now)"
  # CDS archives are only valid for the exact jars they were dumped from.
  rm -rf "$staging" "$MARKER" "$KAFKA_HOME_DIR"/cds-*.jsa*
  # Maven runs against a copy of the pom so that nothing is written into the checkout.
  cp "$SCRIPT_DIR/kafka-pom.xml" "$KAFKA_HOME_DIR/pom.xml"
  if ! mvn -q -B -Dstyle.color=never -f "$KAFKA_HOME_DIR/pom.xml" \
      -Dkafka.version="$KAFKA_VERSION" -Dlibs.dir="$staging" \
      dependency:copy-dependencies </dev/null >"$KAFKA_HOME_DIR/mvn.log" 2>&1; then
    tail -n 30 "$KAFKA_HOME_DIR/mvn.log" >&2
    die "maven could not resolve kafka $KAFKA_VERSION (log: $KAFKA_HOME_DIR/mvn.log)"
  fi
  [[ -f "$staging/kafka_2.13-$KAFKA_VERSION.jar" ]] || die "kafka_2.13-$KAFKA_VERSION.jar missing after install"
  rm -rf "$LIBS"
  mv "$staging" "$LIBS"
  install_stamp >"$MARKER"   # written last: its presence means libs/ is complete
  exec 9>&-
  say "installed $(find "$LIBS" -name "*.jar" | wc -l) jars ($(du -sh "$LIBS" | cut -f1)) in $(since "$t0")s"
}

# Pid of the broker for this KAFKA_DATA_DIR, if alive. Checking the command line guards
# against a stale pid file whose pid was reused; zombies have an empty cmdline.
running_pid() {
  local pid
  pid="$(cat "$PID_FILE" 2>/dev/null)" || return 1
  [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -F -- "$PROPS" >/dev/null || return 1  # not -q: an early exit would SIGPIPE tr and fail the pipe
  echo "$pid"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Readiness = our process alive + "Kafka Server started" in this run's log + the client
# port accepting TCP. The log line is the broker's own statement that it is unfenced
# (see READY_LINE), and grepping it costs nothing; asking the broker through a Java
# CLI (e.g. TopicCommand --list) would add a ~1-2 s JVM start per probe, and
# kafka-tools is not even published for every release. The TCP probe catches a
# listener that died after startup.
ready() {
  running_pid >/dev/null && grep -qF "$READY_LINE" "$LOG_FILE" 2>/dev/null && port_open "$KAFKA_PORT"
}

fail_start() {
  echo "kafka: ---- last lines of $LOG_FILE ----" >&2
  tail -n 60 "$LOG_FILE" >&2 2>/dev/null || true
  die "$1"
}

wait_ready() {  # $1 = start timestamp
  local deadline=$((SECONDS + KAFKA_START_TIMEOUT)) pid
  while ((SECONDS < deadline)); do
    pid="$(running_pid)" || fail_start "broker exited during startup"
    if ready; then
      say "started on 127.0.0.1:$KAFKA_PORT (pid $pid) in $(since "$1")s"
      return 0
    fi
    sleep 0.2
  done
  # Don't leave a half-started broker holding the ports and the data dir lock.
  cmd_stop >/dev/null || true
  fail_start "broker not ready after ${KAFKA_START_TIMEOUT}s (stopped it)"
}

write_config() {
  local internal="# Single node: every internal topic must make do with one replica."
  if [[ "$KAFKA_INTERNAL_REPLICATION_FACTOR" != 1 ]]; then
    internal="# Internal topics: $KAFKA_INTERNAL_REPLICATION_FACTOR replicas, $KAFKA_INTERNAL_MIN_ISR of them in sync to take writes."
  fi
  cat >"$PROPS" <<EOF
# Written by scripts/kafka.sh on every start; edits here are overwritten.
process.roles=broker,controller
node.id=$KAFKA_NODE_ID
controller.quorum.voters=$KAFKA_QUORUM_VOTERS
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$KAFKA_DATA_DIR/data
auto.create.topics.enable=$KAFKA_AUTO_CREATE_TOPICS
num.partitions=$KAFKA_NUM_PARTITIONS
group.initial.rebalance.delay.ms=0
$internal
offsets.topic.replication.factor=$KAFKA_INTERNAL_REPLICATION_FACTOR
transaction.state.log.replication.factor=$KAFKA_INTERNAL_REPLICATION_FACTOR
transaction.state.log.min.isr=$KAFKA_INTERNAL_MIN_ISR
share.coordinator.state.topic.replication.factor=$KAFKA_INTERNAL_REPLICATION_FACTOR
share.coordinator.state.topic.min.isr=$KAFKA_INTERNAL_MIN_ISR
# 1 instead of 50 partitions: a test's first consumer group is ready in ms, not seconds.
offsets.topic.num.partitions=1
transaction.state.log.num.partitions=1
# After a crash (kill -9) the controller refuses the restarted broker's registration
# until the old session expires (counted from the restart): 5 s instead of 9 s keeps
# crash-restart tests quicker (ready in ~7 s instead of ~12 s),
# and with 1 s heartbeats a loaded 2-core machine still has ample slack.
broker.session.timeout.ms=5000
broker.heartbeat.interval.ms=1000
# The log cleaner (for compacted topics like __consumer_offsets) allocates and zeroes
# this buffer at startup: 128 MB by default, 16 MB is plenty for a dev broker.
log.cleaner.dedupe.buffer.size=16777216
# A dev broker keeps what load runs write into it; without a cap a few perf runs filled this
# machine's disk (1.5 GB a minute at the server's peak). Each partition keeps its newest
# 1 GiB (in 256 MiB segments, checked every 5 minutes): far more than any test reads back.
log.retention.bytes=1073741824
log.segment.bytes=268435456
EOF
  # Only a cluster's nodes set these; the single node's file stays as it always was.
  if [[ -n "$KAFKA_DEFAULT_REPLICATION_FACTOR" ]]; then
    echo "default.replication.factor=$KAFKA_DEFAULT_REPLICATION_FACTOR" >>"$PROPS"
  fi
  if [[ -n "$KAFKA_MIN_INSYNC_REPLICAS" ]]; then
    echo "min.insync.replicas=$KAFKA_MIN_INSYNC_REPLICAS" >>"$PROPS"
  fi
  # The broker reads its logging config from the data dir, not from the checkout,
  # so a running broker survives the checkout being removed.
  cp "$SCRIPT_DIR/kafka-log4j2.properties" "$LOG4J_CONF"
}

# Replaces the calling (sub)shell with java running a class from the install, so that
# `$!` is the JVM's pid. All output goes to kafka.log; fd 9 (install lock) is not leaked.
java_exec() {
  # shellcheck disable=SC2086  # heap/JVM opts are deliberately word-split
  exec java $KAFKA_HEAP_OPTS -Djava.awt.headless=true -Dlog4j2.configurationFile="$LOG4J_CONF" \
    $KAFKA_JVM_OPTS -cp "$LIBS/*" "$@" </dev/null >>"$LOG_FILE" 2>&1 9>&-
}

cmd_start() {
  local pid t0
  if pid="$(running_pid)"; then
    if ready; then say "already running on 127.0.0.1:$KAFKA_PORT (pid $pid)"; return 0; fi
    say "already starting on 127.0.0.1:$KAFKA_PORT (pid $pid), waiting"
    wait_ready "$(now)"
    return 0
  fi
  for p in "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT"; do
    port_open "$p" && die "127.0.0.1:$p is in use by a process that is not the broker of $KAFKA_DATA_DIR"
  done
  cmd_install
  t0="$(now)"
  mkdir -p "$KAFKA_DATA_DIR/data"
  write_config
  # One log per run keeps READY_LINE detection about this run; keep the previous one.
  [[ -f "$LOG_FILE" ]] && mv -f "$LOG_FILE" "$LOG_FILE.1"
  # meta.properties is what `format` writes; its presence means the storage is ours
  # already (a restart): the existing cluster id and data must be kept.
  local meta="$KAFKA_DATA_DIR/data/meta.properties" cluster_id="$KAFKA_CLUSTER_ID"
  if [[ -f "$meta" && -n "$cluster_id" ]] && ! grep -qxF "cluster.id=$cluster_id" "$meta"; then
    die "$KAFKA_DATA_DIR/data is formatted for another cluster ($(grep -F cluster.id= "$meta")), not KAFKA_CLUSTER_ID=$cluster_id"
  fi
  if [[ ! -f "$meta" ]]; then
    if [[ -z "$cluster_id" ]]; then
      # A cluster id is 16 random bytes in URL-safe base64 without padding, as
      # `kafka-storage random-uuid` prints it (minus its rule against a leading '-').
      cluster_id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
      cluster_id="A${cluster_id:1}"
    fi
    # C1-only JIT and serial GC: a one-shot tool starts faster that way.
    (KAFKA_HEAP_OPTS="-Xmx256m" KAFKA_JVM_OPTS="-XX:TieredStopAtLevel=1 -XX:+UseSerialGC" \
      java_exec kafka.tools.StorageTool format --cluster-id "$cluster_id" --config "$PROPS") \
      || fail_start "formatting $KAFKA_DATA_DIR/data failed"
  fi
  # Class-data sharing: the first run of an install dumps the classes it loaded into
  # an archive when it exits (during `stop`); later starts map it and are ready ~1.5 s
  # sooner (3.6 s -> 2.2 s on 2 cores). The name is keyed on the JVM build; a stale
  # archive only makes the JVM log a warning and start without it.
  local cds="" jsa
  jsa="$KAFKA_HOME_DIR/cds-$(java -version 2>&1 | cksum | cut -d' ' -f1).jsa"
  if [[ "$KAFKA_CDS" != 0 && -f "$jsa" ]]; then cds="-XX:SharedArchiveFile=$jsa"
  elif [[ "$KAFKA_CDS" != 0 ]]; then cds="-XX:ArchiveClassesAtExit=$jsa.$KAFKA_PORT.tmp"; fi
  # G1 settings as in Kafka's kafka-run-class.sh. SIGHUP ignored (survives exec): the
  # broker must outlive the terminal or test process that started it, until `stop`.
  (trap '' HUP
   KAFKA_JVM_OPTS="-XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent $cds $KAFKA_JVM_OPTS"
   java_exec kafka.Kafka "$PROPS") &
  echo $! >"$PID_FILE"
  wait_ready "$t0"
}

cmd_stop() {
  local pid t0 i
  if ! pid="$(running_pid)"; then
    rm -f "$PID_FILE"
    say "not running on 127.0.0.1:$KAFKA_PORT"
    return 0
  fi
  t0="$(now)"
  kill -TERM "$pid" 2>/dev/null || true
  # A clean shutdown flushes segments and writes the clean-shutdown marker, so the
  # next start skips log recovery; allow it 30 s before forcing.
  for ((i = 0; i < 300; i++)); do
    running_pid >/dev/null || break
    sleep 0.1
  done
  local jsa_tmp
  for jsa_tmp in "$KAFKA_HOME_DIR"/cds-*.jsa."$KAFKA_PORT".tmp; do
    [[ -f "$jsa_tmp" ]] || continue
    # Only a clean exit leaves a complete archive; publish it atomically (same dir).
    if running_pid >/dev/null; then rm -f "$jsa_tmp"; else mv -f "$jsa_tmp" "${jsa_tmp%."$KAFKA_PORT".tmp}"; fi
  done
  if running_pid >/dev/null; then
    say "pid $pid still alive after 30s, sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    sleep 0.5
  fi
  rm -f "$PID_FILE"
  say "stopped 127.0.0.1:$KAFKA_PORT (pid $pid) in $(since "$t0")s"
}

# SIGKILL, as a crash: no controlled shutdown, no flush; the data and the formatted
# storage stay, so a later `start` recovers the logs and rejoins (after a crash the
# controller takes the node back once its old session has expired: see
# broker.session.timeout.ms above).
cmd_kill() {
  local pid i
  if ! pid="$(running_pid)"; then
    rm -f "$PID_FILE"
    say "not running on 127.0.0.1:$KAFKA_PORT"
    return 0
  fi
  kill -KILL "$pid" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do
    running_pid >/dev/null || break
    sleep 0.05
  done
  running_pid >/dev/null && die "pid $pid still alive 5s after SIGKILL"
  rm -f "$PID_FILE"
  # A killed JVM dumps no class-data archive: drop any partial one it began.
  rm -f "$KAFKA_HOME_DIR"/cds-*.jsa."$KAFKA_PORT".tmp
  say "killed 127.0.0.1:$KAFKA_PORT (pid $pid); data kept in $KAFKA_DATA_DIR"
}

cmd_status() {
  local pid
  if pid="$(running_pid)"; then
    if ready; then say "running on 127.0.0.1:$KAFKA_PORT (pid $pid)"; return 0; fi
    say "starting on 127.0.0.1:$KAFKA_PORT (pid $pid), not ready yet"; return 1
  fi
  say "not running on 127.0.0.1:$KAFKA_PORT"; return 3
}

cmd_logs() {
  [[ -f "$LOG_FILE" ]] || die "no log at $LOG_FILE"
  tail -n 100 "$@" "$LOG_FILE"
}

case "${1:-}" in
  install) if installed; then say "$KAFKA_VERSION already installed in $KAFKA_HOME_DIR"; else cmd_install; fi ;;
  start) cmd_start ;;
  stop) cmd_stop ;;
  kill) cmd_kill ;;
  status) cmd_status ;;
  logs) shift; cmd_logs "$@" ;;
  *) echo "usage: $0 install|start|stop|kill|status|logs [-f]" >&2; exit 2 ;;
esac
