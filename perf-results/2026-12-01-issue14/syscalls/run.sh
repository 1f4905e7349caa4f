#!/usr/bin/env bash
# A server binary under the b20 peak load (100 connections, 8 in flight, 100 B events,
# EVENT_ACK=1), observed for 5 s from its 4th second; broker $BROKER (default 127.0.0.1:9092).
#   run.sh count NAME BINARY     system calls, io_uring submissions and context switches per acked
#                                batch, per thread kind (perf stat --per-thread)
#   run.sh profile NAME BINARY   a perf profile (2 kHz, call graphs); prints the shards' samples by
#                                system call (classify.py)
set -u
mode=$1 name=$2 bin=$3
EVENT_ACK=1 SERVER_BIND_ADDRESS=127.0.0.1 SERVER_WEBSOCKET_PORT=18680 SERVER_GRPC_PORT=18681 \
  PUBLISHER_KAFKA_CLIENT_BOOTSTRAP_SERVERS=${BROKER:-127.0.0.1:9092} EVENT_DISTRIBUTION_PUBLISHER_PATTERN=perf-srv-%s "$bin" >/tmp/$mode-$name.log 2>&1 &
pid=$!
for _ in $(seq 1 40); do curl -fs -o /dev/null http://127.0.0.1:18680/health/ready && break; sleep 0.5; done
timeout 60 target/release/raccoon-cli load --server-pid $pid -a 127.0.0.1:18680 -c 100 -k 8 --batch 20 --event-bytes 100 \
  -d 10 --warmup 2 --json /tmp/$mode-$name.json >/tmp/$mode-$name.out 2>/dev/null &
lpid=$!
sleep 4
if [ "$mode" = profile ]; then
  perf record -F 2000 -g -p $pid -o /tmp/$mode-$name.data -- sleep 5 >/dev/null 2>&1
else
  E=raw_syscalls:sys_enter,io_uring:io_uring_submit_req,context-switches
  for s in recvfrom sendto io_uring_enter membarrier futex sched_yield write; do E="$E,syscalls:sys_enter_$s"; done
  perf stat -x, -e $E --per-thread -p $pid -o /tmp/$mode-$name.stat -- sleep 5 >/dev/null 2>&1
fi
wait $lpid
kill -TERM $pid; wait $pid 2>/dev/null
if [ "$mode" = profile ]; then
  perf script -i /tmp/$mode-$name.data -F comm,ip,sym 2>/dev/null >/tmp/$mode-$name.script
  echo "$name: $(tail -2 /tmp/$mode-$name.out | head -1)"
  python3 "$(dirname "$0")/classify.py" /tmp/$mode-$name.script
  exit 0
fi
python3 - "$name" <<'PY'
import sys, json, collections
name = sys.argv[1]
j = json.load(open(f'/tmp/count-{name}.json'))
batches_per_s = j['acked_batches'] / j['duration_s']
c = collections.defaultdict(float)
for line in open(f'/tmp/count-{name}.stat'):
    p = line.strip().split(',')
    if len(p) < 4 or not p[1].replace('.', '').isdigit(): continue
    thread = p[0].rsplit('-', 1)[0]
    kind = 'shards' if thread.startswith('raccoon-shard') else thread
    ev = p[3].split(':')[-1]
    c[(kind, ev)] += float(p[1])
window = 5.0
print(f"{name}: {batches_per_s:,.0f} batches/s, {j['acked_events_per_sec']:,.0f} events/s, {j['server']['cpu_us_per_event']:.2f} us CPU/event; per acked batch:")
for kind in ['shards', 'raccoon-pub-0', 'raccoon-poll-0', 'rdk:broker1']:
    evs = {ev: v for (k, ev), v in c.items() if k == kind and v > 0}
    print('  ' + kind + ': ' + ', '.join(f"{ev.replace('sys_enter_','')} {v / window / batches_per_s:.2f}" for ev, v in sorted(evs.items(), key=lambda x: -x[1])))
PY
