#!/usr/bin/env bash
# Where the open-loop ack latency goes: the load generator's latency (from each batch's intended
# send time) next to the server's own percentiles over the same seconds, from its
# latency_quantile_milliseconds gauges: event_rtt_ms (receipt to reply written) and
# kafka_delivery_latency_milliseconds (receipt to Kafka's delivery report). A window closes at the
# first scrape at least METRIC_RUNTIME_STATS_RECORD_INTERVAL_MS (3 s here) after the previous close:
# scrapes at 0.5, 3.6, 6.7 and 9.8 s after the load starts give two windows inside the measured
# seconds (2-10 s), read at 6.7 and 9.8 s.
# Usage: [BROKER=host:port] run.sh ROUNDS RATE OUTDIR [linger.ms ...]   (default broker 127.0.0.1:9092;
# the server's defaults otherwise)
set -u
rounds=$1 rate=$2 out=$3; shift 3
lingers=${*:-5}
mkdir -p "$out"
for r in $(seq 1 "$rounds"); do
  for l in $lingers; do
    name="r$r-linger$l"
    EVENT_ACK=1 SERVER_BIND_ADDRESS=127.0.0.1 SERVER_WEBSOCKET_PORT=18680 SERVER_GRPC_PORT=18681 \
      METRIC_PROMETHEUS_ENABLED=true METRIC_PROMETHEUS_PORT=19090 METRIC_RUNTIME_STATS_RECORD_INTERVAL_MS=3000 \
      PUBLISHER_KAFKA_CLIENT_LINGER_MS=$l \
      PUBLISHER_KAFKA_CLIENT_BOOTSTRAP_SERVERS=${BROKER:-127.0.0.1:9092} EVENT_DISTRIBUTION_PUBLISHER_PATTERN=perf-split-%s \
      target/release/raccoon >"$out/$name.server.log" 2>&1 &
    pid=$!
    for _ in $(seq 1 40); do curl -fs -o /dev/null http://127.0.0.1:18680/health/ready && break; sleep 0.5; done
    # 2 s warm-up, then 8 s measured.
    timeout 60 target/release/raccoon-cli load --server-pid $pid -a 127.0.0.1:18680 -c 100 --rate "$rate" --batch 20 \
      --event-bytes 100 -d 8 --warmup 2 --json "$out/$name.json" >"$out/$name.out" 2>/dev/null &
    lpid=$!
    : >"$out/$name.quantiles"
    for at in 0.5 3.1 3.1 3.1; do
      sleep $at; curl -s http://127.0.0.1:19090/metrics | grep '^latency_quantile_milliseconds' >>"$out/$name.quantiles"; echo "--" >>"$out/$name.quantiles"
    done
    wait $lpid
    kill -TERM $pid; wait $pid 2>/dev/null
    python3 - "$out/$name" <<'PY'
import json, re, sys
base = sys.argv[1]
j = json.load(open(base + '.json'))
# The scrapes at 6.7 and 9.8 s: the last two blocks.
blocks = open(base + '.quantiles').read().split('--\n')[2:4]
qs = []
for block in blocks:
    q = {}
    for line in block.splitlines():
        m = re.match(r'latency_quantile_milliseconds\{(.*)\} (\S+)', line)
        if m:
            labels = dict(kv.split('=', 1) for kv in m.group(1).split(','))
            q[(labels['metric'].strip('"'), labels['quantile'].strip('"'))] = float(m.group(2))
    qs.append(q)
a = j['ack_latency']
def f(metric):
    return ', '.join(' / '.join(f"{q.get((metric, k), float('nan')):.1f}" for k in ('0.5', '0.99', '0.999')) for q in qs)
print(f"{base.rsplit('/', 1)[-1]}: {j['acked_events_per_sec']:,.0f} ev/s; client p50/p99/p99.9 "
      f"{a['p50_ms']:.1f} / {a['p99_ms']:.1f} / {a['p999_ms']:.1f} ms; server receipt->reply {f('event_rtt_ms')}; "
      f"receipt->Kafka {f('kafka_delivery_latency_milliseconds')}; server CPU {j['server']['cpu_percent']:.0f}%, "
      f"load generator {j['client']['cpu_percent']:.0f}%")
PY
  done
done
