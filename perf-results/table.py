#!/usr/bin/env python3
"""Prints a markdown table of the raccoon-cli JSON results in a folder.

    perf-results/table.py FOLDER [PREFIX...]

One row per JSON (load, ceiling and idle results), sorted by name, only those whose name starts
with one of the prefixes when any are given. Standard library only.
"""
import json
import os
import sys


def row(name, d):
    cmd = d.get("command")
    if cmd == "load":
        lat, srv = d.get("ack_latency") or {}, d.get("server") or {}
        return [name, f"{d['acked_events_per_sec']:,.0f}", f"{lat.get('p50_ms', 0):.2f}",
                f"{lat.get('p99_ms', 0):.2f}", f"{lat.get('p999_ms', 0):.2f}",
                f"{srv.get('cpu_us_per_event', 0):.3f}", str(d.get("errors", 0))]
    if cmd == "ceiling":
        lat, cli = d.get("delivery_latency") or {}, d.get("client") or {}
        return [name, f"{d['events_per_sec']:,.0f}", f"{lat.get('p50_ms', 0):.2f}",
                f"{lat.get('p99_ms', 0):.2f}", f"{lat.get('p999_ms', 0):.2f}",
                f"{cli.get('cpu_us_per_event', 0):.3f} (producer)", str(d.get("errors", 0))]
    if cmd == "idle":
        per = d.get("server_rss_per_connection_bytes") or 0
        return [name, f"{d['alive_at_end']:,} of {d['connections']:,} alive", "", "", "",
                f"{per:,.0f} B = {per / 1024:.2f} KiB RSS/conn", str(d.get("failed_to_open", 0))]
    return None


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    folder, prefixes = sys.argv[1], sys.argv[2:]
    print("| cell | events/s (acked or delivered) | p50 ms | p99 ms | p99.9 ms | CPU us/event or memory | errors |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for f in sorted(os.listdir(folder)):
        if not f.endswith(".json") or (prefixes and not any(f.startswith(p) for p in prefixes)):
            continue
        with open(os.path.join(folder, f)) as fh:
            r = row(f[:-5], json.load(fh))
        if r:
            print("| " + " | ".join(r) + " |")


if __name__ == "__main__":
    main()
