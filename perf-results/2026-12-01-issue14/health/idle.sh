#!/usr/bin/env bash
# The health check's cost on an idle server (one check every 2 s, nothing else to do), for each
# binary in turn; broker 127.0.0.1:9092.
#   idle.sh bytes WINDOW name=binary ...          bytes the server received per check: every recv*
#                                                 of the process, traced with strace for WINDOW s
#   idle.sh cpu ROUNDS WINDOW name=binary ...     server and broker CPU per check over WINDOW s,
#                                                 ROUNDS rounds of the binaries interleaved
set -u
mode=$1; shift
if [ "$mode" = cpu ]; then rounds=$1; shift; else rounds=1; fi
window=$1; shift
kpid=$(cat /tmp/raccoon-kafka-9092/kafka.pid)
hz=$(getconf CLK_TCK)
ticks_all() { local t=0; for f in /proc/$1/task/*/stat; do t=$((t + $(awk '{print $14+$15}' "$f"))); done; echo $t; }
checks=$((window / 2))
[ "$mode" = cpu ] && echo "round name server_cpu_ms_per_check broker_cpu_ms_per_check topics=$(ls /tmp/raccoon-kafka-9092/data | sed 's/-[0-9]*$//' | sort -u | wc -l)"
for r in $(seq 1 "$rounds"); do
  for cell in "$@"; do
    name=${cell%%=*} bin=${cell#*=}
    EVENT_ACK=1 SERVER_BIND_ADDRESS=127.0.0.1 SERVER_WEBSOCKET_PORT=18690 SERVER_GRPC_PORT=18691 \
      PUBLISHER_KAFKA_CLIENT_BOOTSTRAP_SERVERS=127.0.0.1:9092 "$bin" >/tmp/idle-$mode-$name.log 2>&1 &
    pid=$!
    for _ in $(seq 1 40); do curl -fs -o /dev/null http://127.0.0.1:18690/health/ready && break; sleep 0.5; done
    sleep 3
    if [ "$mode" = bytes ]; then
      timeout "$window" strace -f -qq -e trace=recvmsg,recvfrom,read -p $pid -o /tmp/idle-bytes-$name.strace 2>/dev/null
      bytes=$(grep -oE '= [0-9]+$' /tmp/idle-bytes-$name.strace | awk '{s+=$2} END {print s+0}')
      calls=$(grep -cE '= [0-9]+$' /tmp/idle-bytes-$name.strace)
      echo "$name bytes_per_check=$((bytes / checks)) recv_calls=$calls window=${window}s"
    else
      s0=$(ticks_all $pid); k0=$(ticks_all $kpid)
      sleep "$window"
      s1=$(ticks_all $pid); k1=$(ticks_all $kpid)
      ready=$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:18690/health/ready)
      echo "$r $name $(( (s1 - s0) * 1000 / hz / checks )) $(( (k1 - k0) * 1000 / hz / checks )) ready=$ready"
    fi
    kill -TERM $pid; wait $pid 2>/dev/null
  done
done
