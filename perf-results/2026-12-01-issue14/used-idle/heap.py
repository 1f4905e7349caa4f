#!/usr/bin/env python3
"""Live heap per connection from a heaptrack massif file: the median heap over the last 3 s of
the hold (to half a second before its end), less the median heap over the second before the
first connection opened, divided by N. Times: massif's are seconds since the server started
(t0 = when run.sh launched it); the progress file's lines carry the wall clock."""
import re
import statistics
import sys

massif, progress, t0, n, k = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
snapshots = []
time = None
for line in open(massif):
    if line.startswith('time='):
        time = float(line.split('=')[1])
    elif line.startswith('mem_heap_B=') and time is not None:
        snapshots.append((time, int(line.split('=')[1])))
lines = [(float(l.split(' ', 1)[0]) - t0, l.split(' ', 1)[1].strip()) for l in open(progress) if ' ' in l]
# The hold: from the "holding" line to the last "[ Ns hold]" line.
start = next(t for t, l in lines if 'holding' in l)
end = max(t for t, l in lines if re.match(r'\[\s*\d+s hold\]', l))
# The baseline: the last second before idle began opening connections.
first = next(t for t, l in lines if 'opening' in l)
before = [h for t, h in snapshots if first - 1.0 <= t < first]
held = [h for t, h in snapshots if max(start, end - 3.5) <= t <= end - 0.5]
if not before or not held:
    sys.exit(f'no snapshots in a window: {len(before)} before, {len(held)} held ({len(snapshots)} in all)')
b, h = statistics.median(before), statistics.median(held)
print(f'c{n} burst {k}: live heap {b / 1048576:.2f} MiB before, {h / 1048576:.2f} MiB held '
      f'({len(before)} and {len(held)} snapshots): {(h - b) / n:.0f} B per connection')
