#!/usr/bin/env bash
# Quick start: install and start a local Kafka broker on 127.0.0.1:9092 (first run downloads it
# from Maven Central), then build and run the server on port 8080 (IPv4 and IPv6) in the
# foreground.
# Stop the server with Ctrl-C; stop the broker with `scripts/kafka.sh stop`.
# Extra arguments go to the server, e.g. `scripts/run.sh --shards 1`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/kafka.sh start
exec cargo run --release --locked -- "$@"
