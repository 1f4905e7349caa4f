#!/usr/bin/env python3
"""Peak heap consumers per connection, from heaptrack's flamegraph output.

    perf-results/heap_profile.py STACKS N [ROWS]

STACKS: `heaptrack_print -F STACKS --flamegraph-cost-type peak` (one `frame;frame;... bytes` line
per stack); N: the connections held at the peak. Groups stacks by their innermost frames that are
not the allocator's own, and prints each group's bytes over N, largest first. Fixed costs (the
shards' inboxes, the registry's table, librdkafka) show up divided by N too: read them as such.
Standard library only.
"""
import collections
import sys

ALLOCATOR = ("(alloc.rs)", "(unix.rs)", "raw_vec", "(mod.rs)", "(boxed.rs)", "(vec.rs)")


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    path, n = sys.argv[1], int(sys.argv[2])
    rows = int(sys.argv[3]) if len(sys.argv) > 3 else 25
    groups = collections.Counter()
    total = 0
    with open(path) as f:
        for line in f:
            stack, _, cost = line.rstrip().rpartition(" ")
            frames = [fr for fr in stack.split(";")[-14:] if not any(a in fr for a in ALLOCATOR)]
            groups[" < ".join(frames)[-200:]] += int(cost)
            total += int(cost)
    print(f"peak heap {total:,} B over {n:,} connections = {total / n:,.0f} B per connection")
    for key, cost in groups.most_common(rows):
        print(f"{cost / n:8.0f} B/conn  {key}")


if __name__ == "__main__":
    main()
