#!/usr/bin/env python3
"""Plots and tables of a perf-results run folder of `raccoon-cli` JSON reports.

    python3 perf-results/plot.py [RUN_DIR]           # default perf-results/2026-12-01-report
    python3 perf-results/plot.py RUN_DIR --tables    # also print the report's Markdown tables
    python3 perf-results/plot.py RUN_DIR --compare OTHER_DIR   # a repetition against RUN_DIR

Reads the cells written by perf-results/2026-12-01-report.sh (`ceiling-{before,after}-bB-eE.json`,
`ws-ackA-cC-bB-eE-kK.json`, `open-ack1-c100-b20-e100-pP.json`, `rest-*`, `grpc-*`, `idle-cN.json`)
and writes SVG files next to them, by hand (Python 3.11 standard library only):

* throughput-k1.svg, throughput-k8.svg: acked events/s against connections, one line per
  batch size / event size / EVENT_ACK, closed loop with 1 and 8 batches in flight per connection;
* ceiling-ratio-k1.svg, ceiling-ratio-k8.svg: the same as a percentage of the better of the two
  ceilings (before and after) measured for the same batch and event size, with the 80% target;
* latency-open-loop.svg: ack latency percentiles against the offered load (open loop);
* latency-closed-loop.svg: closed-loop p99 ack latency against connections.
"""

import glob
import json
import math
import os
import re
import sys
from xml.sax.saxutils import escape

W, H = 760, 470
ML, MR, MT, MB = 80, 230, 40, 60
COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2"]


def load(run_dir):
    cells = {}
    for path in sorted(glob.glob(os.path.join(run_dir, "*.json"))):
        with open(path) as f:
            cells[os.path.basename(path)[:-5]] = json.load(f)
    return cells


def parse(name):
    """Splits `ws-ack1-c100-b20-e100-k8` into its fields."""
    m = re.fullmatch(r"(ws|rest|grpc)-ack(\d)-c(\d+)-b(\d+)-e(\d+)-k(\d+)", name)
    if not m:
        return None
    t, a, c, b, e, k = m.groups()
    return {"transport": t, "ack": int(a), "conns": int(c), "batch": int(b), "bytes": int(e), "k": int(k)}


class Scale:
    def __init__(self, lo, hi, a, b, log):
        self.log = log
        if log:
            lo, hi = math.log10(lo), math.log10(hi)
        self.lo, self.hi, self.a, self.b = lo, hi, a, b

    def __call__(self, v):
        if self.log:
            v = math.log10(max(v, 1e-9))
        return self.a + (v - self.lo) / (self.hi - self.lo or 1) * (self.b - self.a)


def nice_ticks(lo, hi, log):
    if log:
        return [10**e for e in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)]
    # From a tenth of the range's power of ten, the first of 1, 2, 5, 10 times it that gives at
    # most 8 ticks; only ticks inside [lo, hi] are drawn.
    step = 10 ** (math.floor(math.log10((hi - lo) or 1)) - 1)
    for m in (1, 2, 5, 10):
        if (hi - lo) / (step * m) <= 8:
            step *= m
            break
    eps = step * 1e-9
    t, out = 0.0, []
    while t <= hi + eps:
        if t >= lo - eps:
            out.append(t)
        t += step
    return out


def fmt(v):
    if v >= 1e6:
        return f"{v / 1e6:g}M"
    if v >= 1e3:
        return f"{v / 1e3:g}k"
    return f"{v:g}"


def svg_plot(path, title, xlabel, ylabel, series, xlog, ylog, hlines=()):
    """series: [(label, [(x, y), ...])]; hlines: [(y, label)]."""
    xs = [x for _, pts in series for x, _ in pts]
    ys = [y for _, pts in series for _, y in pts] + [y for y, _ in hlines]
    if not xs:
        return False
    xlo, xhi = min(xs), max(xs)
    ylo, yhi = min(ys), max(ys)
    if xlog:
        xlo, xhi = 10 ** math.floor(math.log10(xlo)), 10 ** math.ceil(math.log10(xhi))
    else:
        xlo, xhi = 0, xhi * 1.05
    if ylog:
        ylo, yhi = 10 ** math.floor(math.log10(ylo)), 10 ** math.ceil(math.log10(yhi))
    else:
        ylo, yhi = 0, yhi * 1.1
    sx = Scale(xlo, xhi, ML, W - MR, xlog)
    sy = Scale(ylo, yhi, H - MB, MT, ylog)
    o = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
         f'<rect width="{W}" height="{H}" fill="white"/>',
         f'<text x="{W / 2 - MR / 2}" y="22" text-anchor="middle" font-size="14">{escape(title)}</text>']
    for t in nice_ticks(xlo, xhi, xlog):
        x = sx(t)
        o.append(f'<line x1="{x:.1f}" y1="{MT}" x2="{x:.1f}" y2="{H - MB}" stroke="#ddd"/>')
        o.append(f'<text x="{x:.1f}" y="{H - MB + 16}" text-anchor="middle">{fmt(t)}</text>')
    for t in nice_ticks(ylo, yhi, ylog):
        y = sy(t)
        o.append(f'<line x1="{ML}" y1="{y:.1f}" x2="{W - MR}" y2="{y:.1f}" stroke="#ddd"/>')
        o.append(f'<text x="{ML - 6}" y="{y + 4:.1f}" text-anchor="end">{fmt(t)}</text>')
    o.append(f'<rect x="{ML}" y="{MT}" width="{W - ML - MR}" height="{H - MT - MB}" fill="none" stroke="black"/>')
    o.append(f'<text x="{(ML + W - MR) / 2}" y="{H - 18}" text-anchor="middle">{escape(xlabel)}</text>')
    o.append(f'<text x="18" y="{(MT + H - MB) / 2}" text-anchor="middle" '
             f'transform="rotate(-90 18 {(MT + H - MB) / 2})">{escape(ylabel)}</text>')
    for y, label in hlines:
        yy = sy(y)
        o.append(f'<line x1="{ML}" y1="{yy:.1f}" x2="{W - MR}" y2="{yy:.1f}" stroke="black" stroke-dasharray="6,4"/>')
        o.append(f'<text x="{ML + 4}" y="{yy - 4:.1f}">{escape(label)}</text>')
    for i, (label, pts) in enumerate(series):
        col = COLORS[i % len(COLORS)]
        dash = ' stroke-dasharray="5,3"' if i >= len(COLORS) else ""
        pts = sorted(pts)
        line = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in pts)
        o.append(f'<polyline points="{line}" fill="none" stroke="{col}" stroke-width="2"{dash}/>')
        for x, y in pts:
            o.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3" fill="{col}"/>')
        ly = MT + 10 + i * 18
        o.append(f'<line x1="{W - MR + 12}" y1="{ly}" x2="{W - MR + 36}" y2="{ly}" stroke="{col}" stroke-width="2"{dash}/>')
        o.append(f'<text x="{W - MR + 42}" y="{ly + 4}">{escape(label)}</text>')
    o.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(o) + "\n")
    return True


def ceilings(cells):
    out = {}
    for name, c in cells.items():
        m = re.fullmatch(r"ceiling-(before|after)-b(\d+)-e(\d+)", name)
        if m:
            out[(m.group(1), int(m.group(2)), int(m.group(3)))] = c["events_per_sec"]
    return out


def pct(v, base):
    return f"{100 * v / base:.1f}%" if base else "-"


def tables(cells):
    ceil = ceilings(cells)
    print("| Workload | Ceiling before ev/s | Ceiling after ev/s | after / before |")
    print("|---|---|---|---|")
    for b, e in sorted({(b, e) for _, b, e in ceil}):
        bf, af = ceil.get(("before", b, e)), ceil.get(("after", b, e))
        print(f"| batch {b}, {e} B | {bf or 0:,.0f} | {af or 0:,.0f} | {af / bf if bf and af else float('nan'):.2f} |")
    print()
    print("| Transport | EVENT_ACK | Conns | Batch | Bytes | In flight | Acked ev/s | vs ceiling before / after "
          "| p50 / p99 / p99.9 ms | Errors | Server CPU | µs CPU / event |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    rows = [(parse(n), n, c) for n, c in cells.items() if parse(n)]
    rows.sort(key=lambda r: (r[0]["transport"] != "ws", r[0]["transport"], -r[0]["ack"], r[0]["batch"],
                             r[0]["bytes"], r[0]["k"], r[0]["conns"]))
    for p, _, c in rows:
        v = c["acked_events_per_sec"]
        bf, af = ceil.get(("before", p["batch"], p["bytes"])), ceil.get(("after", p["batch"], p["bytes"]))
        lat = c["ack_latency"]
        srv = c.get("server") or {}
        print(f"| {p['transport']} | {p['ack']} | {p['conns']:,} | {p['batch']} | {p['bytes']} | {p['k']} | {v:,.0f} "
              f"| {pct(v, bf)} / {pct(v, af)} | {lat['p50_ms']:.2f} / {lat['p99_ms']:.2f} / {lat['p999_ms']:.2f} "
              f"| {c['errors']} | {srv.get('cpu_percent', 0):.0f}% | {srv.get('cpu_us_per_event', 0):.2f} |")
    print()
    print("| Open loop (100 conns, batch 20, 100 B, EVENT_ACK=1) | Target ev/s | Acked ev/s | p50 / p90 / p99 / p99.9 / max ms | Errors | µs CPU / event |")
    print("|---|---|---|---|---|---|")
    for n, c in sorted(cells.items(), key=lambda kv: kv[1].get("rate_events_per_sec") or 0):
        if n.startswith("open-"):
            lat = c["ack_latency"]
            print(f"| {n.rsplit('-p', 1)[1]}% of peak | {c['rate_events_per_sec']:,.0f} | {c['acked_events_per_sec']:,.0f} "
                  f"| {lat['p50_ms']:.2f} / {lat['p90_ms']:.2f} / {lat['p99_ms']:.2f} / {lat['p999_ms']:.2f} / {lat['max_ms']:.2f} "
                  f"| {c['errors']} | {(c.get('server') or {}).get('cpu_us_per_event', 0):.2f} |")
    print()
    print("| Idle | Opened | Alive at end (min) | Open s | Server RSS before / held MiB | RSS per connection |")
    print("|---|---|---|---|---|---|")
    for n, c in sorted(cells.items(), key=lambda kv: kv[1].get("connections", 0)):
        if n.startswith("idle-"):
            per = c.get("server_rss_per_connection_bytes") or 0
            print(f"| {c['connections']:,} | {c['opened']:,} | {c['alive_at_end']:,} ({c['min_alive']:,}) | {c['open_seconds']:.2f} "
                  f"| {(c.get('server_rss_before_bytes') or 0) / 2**20:.1f} / {(c.get('server_rss_held_bytes') or 0) / 2**20:.1f} "
                  f"| {per:,.0f} B ({per / 1024:.1f} KiB) |")


def compare(cells, other):
    """Prints, per load cell and ceiling present in both runs, the other run's figure over this one's."""
    print("| Cell | Acked ev/s (this / other) | other / this | p99 ms (this / other) |")
    print("|---|---|---|---|")
    ratios = []
    for n in sorted(cells):
        a, b = cells[n], other.get(n)
        if b is None:
            continue
        if a.get("command") == "load":
            va, vb = a["acked_events_per_sec"], b["acked_events_per_sec"]
            pa, pb = a["ack_latency"]["p99_ms"], b["ack_latency"]["p99_ms"]
        elif a.get("command") == "ceiling":
            va, vb = a["events_per_sec"], b["events_per_sec"]
            pa, pb = a["delivery_latency"]["p99_ms"], b["delivery_latency"]["p99_ms"]
        else:
            continue
        if va:
            ratios.append(vb / va)
            print(f"| {n} | {va:,.0f} / {vb:,.0f} | {vb / va:.2f} | {pa:.1f} / {pb:.1f} |")
    if ratios:
        ratios.sort()
        print(f"\n{len(ratios)} cells; other / this: min {ratios[0]:.2f}, median {ratios[len(ratios) // 2]:.2f}, "
              f"max {ratios[-1]:.2f}")


def main():
    if "--compare" in sys.argv:
        i = sys.argv.index("--compare")
        compare(load(sys.argv[1] if i > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "2026-12-01-report")),
                load(sys.argv[i + 1]))
        return
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    run_dir = args[0] if args else os.path.join(os.path.dirname(os.path.abspath(__file__)), "2026-12-01-report")
    cells = load(run_dir)
    ws = [(parse(n), c) for n, c in cells.items() if parse(n) and parse(n)["transport"] == "ws"]
    written = []
    ceil = ceilings(cells)
    for k in (1, 8):
        groups = {}
        for p, c in ws:
            if p["k"] == k:
                key = f"batch {p['batch']}, {p['bytes']} B, ack {p['ack']}"
                groups.setdefault(key, []).append((p["conns"], c["acked_events_per_sec"]))
        series = sorted(groups.items())
        name = f"throughput-k{k}.svg"
        if svg_plot(os.path.join(run_dir, name), f"WebSocket, closed loop, {k} batch(es) in flight per connection",
                    "connections", "acked events/s", series, xlog=True, ylog=False):
            written.append(name)
        # The same as a fraction of the better of the two ceilings of the same batch and event size.
        ratio = []
        for label, pts in series:
            b, e = (int(x) for x in re.findall(r"\d+", label)[:2])
            best = max(ceil.get(("before", b, e), 0), ceil.get(("after", b, e), 0))
            if best:
                ratio.append((label, [(x, 100 * y / best) for x, y in pts]))
        name = f"ceiling-ratio-k{k}.svg"
        if svg_plot(os.path.join(run_dir, name), f"% of the better ceiling, closed loop, {k} in flight",
                    "connections", "acked events/s, % of ceiling", ratio, xlog=True, ylog=False,
                    hlines=[(80.0, "80% target")]):
            written.append(name)
    opens = sorted((c["acked_events_per_sec"], c["ack_latency"]) for n, c in cells.items() if n.startswith("open-"))
    if opens:
        series = [(label, [(v, lat[key]) for v, lat in opens])
                  for label, key in (("p50", "p50_ms"), ("p90", "p90_ms"), ("p99", "p99_ms"), ("p99.9", "p999_ms"), ("max", "max_ms"))]
        if svg_plot(os.path.join(run_dir, "latency-open-loop.svg"),
                    "Open loop: 100 conns, batch 20, 100 B, EVENT_ACK=1", "acked events/s (offered load)",
                    "ack latency ms", series, xlog=False, ylog=True, hlines=[(5.0, "5 ms")]):
            written.append("latency-open-loop.svg")
    groups = {}
    for p, c in ws:
        key = f"b{p['batch']} {p['bytes']}B ack{p['ack']} k{p['k']}"
        groups.setdefault(key, []).append((p["conns"], c["ack_latency"]["p99_ms"]))
    series = [(k, v) for k, v in sorted(groups.items()) if "100B" in k]
    if svg_plot(os.path.join(run_dir, "latency-closed-loop.svg"), "Closed loop p99 ack latency, 100 B events",
                "connections", "p99 ack latency ms", series, xlog=True, ylog=True, hlines=[(5.0, "5 ms")]):
        written.append("latency-closed-loop.svg")
    print("wrote " + ", ".join(written), file=sys.stderr)
    if "--tables" in sys.argv:
        tables(cells)


if __name__ == "__main__":
    main()
