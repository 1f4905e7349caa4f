#!/usr/bin/env bash
# The health check's cost on an idle server: bytes the server read, server CPU and broker CPU
# over WINDOW seconds (one check every 2 s, nothing else to do), for each binary in turn.
# Usage: idle-check.sh ROUNDS WINDOW name=binary [name=binary ...]   (broker: 127.0.0.1:9092)
set -u
rounds=$1 window=$2; shift 2
kpid=$(cat /tmp/raccoon-kafka-9092/kafka.pid)
hz=$(getconf CLK_TCK)
ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
ticks_all() { local t=0; for f in /proc/$1/task/*/stat; do t=$((t + $(awk '{print $14+$15}' "$f"))); done; echo $t; }
echo "round name rchar_per_check_B server_cpu_ms_per_check broker_cpu_ms_per_check topics=$(ls /tmp/raccoon-kafka-9092/data | sed 's/-[0-9]*$//' | sort -u | wc -l)"
for r in $(seq 1 "$rounds"); do
  for cell in "$@"; do
    name=${cell%%=*} bin=${cell#*=}
    EVENT_ACK=1 SERVER_BIND_ADDRESS=127.0.0.1 SERVER_WEBSOCKET_PORT=18690 SERVER_GRPC_PORT=18691 \
      PUBLISHER_KAFKA_CLIENT_BOOTSTRAP_SERVERS=127.0.0.1:9092 "$bin" >/tmp/idle-check-$name.log 2>&1 &
    pid=$!
    for _ in $(seq 1 40); do curl -fs -o /dev/null http://127.0.0.1:18690/health/ready && break; sleep 0.5; done
    sleep 3
    r0=$(awk '/^rchar/{print $2}' /proc/$pid/io); s0=$(ticks_all $pid); k0=$(ticks_all $kpid)
    sleep "$window"
    r1=$(awk '/^rchar/{print $2}' /proc/$pid/io); s1=$(ticks_all $pid); k1=$(ticks_all $kpid)
    ready=$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:18690/health/ready)
    kill -TERM $pid; wait $pid 2>/dev/null
    checks=$((window / 2))
    echo "$r $name $(( (r1 - r0) / checks )) $(( (s1 - s0) * 1000 / hz / checks )) $(( (k1 - k0) * 1000 / hz / checks )) ready=$ready"
  done
done
