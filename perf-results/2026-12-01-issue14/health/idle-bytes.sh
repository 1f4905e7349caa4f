#!/usr/bin/env bash
# Bytes an idle server receives from the broker per health check: every recv* of the process,
# traced with strace for WINDOW seconds (one check every 2 s, nothing else to do).
# Usage: idle-bytes.sh WINDOW name=binary [name=binary ...]   (broker: 127.0.0.1:9092)
set -u
window=$1; shift
for cell in "$@"; do
  name=${cell%%=*} bin=${cell#*=}
  EVENT_ACK=1 SERVER_BIND_ADDRESS=127.0.0.1 SERVER_WEBSOCKET_PORT=18690 SERVER_GRPC_PORT=18691 \
    PUBLISHER_KAFKA_CLIENT_BOOTSTRAP_SERVERS=127.0.0.1:9092 "$bin" >/tmp/idle-bytes-$name.log 2>&1 &
  pid=$!
  for _ in $(seq 1 40); do curl -fs -o /dev/null http://127.0.0.1:18690/health/ready && break; sleep 0.5; done
  sleep 3
  timeout "$window" strace -f -qq -e trace=recvmsg,recvfrom,read -p $pid -o /tmp/idle-bytes-$name.strace 2>/dev/null
  kill -TERM $pid; wait $pid 2>/dev/null
  bytes=$(grep -oE '= [0-9]+$' /tmp/idle-bytes-$name.strace | awk '{s+=$2} END {print s+0}')
  calls=$(grep -cE '= [0-9]+$' /tmp/idle-bytes-$name.strace)
  echo "$name bytes_per_check=$(( bytes / (window / 2) )) recv_calls=$calls window=${window}s"
done
