#!/usr/bin/env bash
# perf profile (5 s, 2 kHz, call graphs) of a server binary under the b20 peak load; prints the
# shards' samples by system call (classify.py); broker $BROKER (default 127.0.0.1:9092).
# Usage: prof.sh name binary
set -u
name=$1 bin=$2
EVENT_ACK=1 SERVER_BIND_ADDRESS=127.0.0.1 SERVER_WEBSOCKET_PORT=18680 SERVER_GRPC_PORT=18681 \
  PUBLISHER_KAFKA_CLIENT_BOOTSTRAP_SERVERS=${BROKER:-127.0.0.1:9092} EVENT_DISTRIBUTION_PUBLISHER_PATTERN=perf-srv-%s "$bin" >/tmp/prof-$name.log 2>&1 &
pid=$!
for _ in $(seq 1 40); do curl -fs -o /dev/null http://127.0.0.1:18680/health/ready && break; sleep 0.5; done
timeout 60 target/release/raccoon-cli load --server-pid $pid -a 127.0.0.1:18680 -c 100 -k 8 --batch 20 --event-bytes 100 \
  -d 10 --warmup 2 --json /tmp/prof-$name.json >/tmp/prof-$name.out 2>/dev/null &
lpid=$!
sleep 4
perf record -F 2000 -g -p $pid -o /tmp/prof-$name.data -- sleep 5 >/dev/null 2>&1
wait $lpid
kill -TERM $pid; wait $pid 2>/dev/null
perf script -i /tmp/prof-$name.data -F comm,ip,sym 2>/dev/null >/tmp/prof-$name.script
echo "$name: $(tail -2 /tmp/prof-$name.out | head -1)"
python3 "$(dirname "$0")/classify.py" /tmp/prof-$name.script
