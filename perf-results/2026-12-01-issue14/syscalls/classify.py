#!/usr/bin/env python3
"""The shards' perf samples by the system call they are in, and io_uring_enter's samples by what
it was doing. Input: `perf script -F comm,ip,sym` of a profile with call graphs."""
import collections
import sys

SYSCALLS = ['__x64_sys_sendto', '__x64_sys_recvfrom', '__do_sys_io_uring_enter', '__x64_sys_membarrier',
            '__x64_sys_futex', '__x64_sys_write', '__x64_sys_read']
cats, threads, uring = collections.Counter(), collections.Counter(), collections.Counter()


def classify(comm, stack):
    kind = 'shards' if comm.startswith('raccoon-shard') else comm
    threads[kind] += 1
    if kind != 'shards':
        return
    syms = [f.split(None, 1)[1] if len(f.split(None, 1)) > 1 else '' for f in stack]
    for name in SYSCALLS:
        if name in syms:
            cats[name] += 1
            if name == '__do_sys_io_uring_enter':
                inner = syms[:syms.index(name)]
                if 'io_cqring_wait' in inner and ('schedule' in inner or '__schedule' in inner):
                    uring['sleeping and waking (schedule)'] += 1
                elif 'io_cqring_wait' in inner:
                    uring['woken: completions, task work'] += 1
                elif 'io_submit_sqes' in inner:
                    uring['submitting'] += 1
                else:
                    uring['other'] += 1
            return
    if not (stack and stack[0].startswith('ffffffff')):
        cats['user space'] += 1
    elif 'entry_SYSCALL_64_after_hwframe' in syms:
        cats['other system calls'] += 1
    else:
        cats['kernel, not in a system call (interrupts, faults)'] += 1


comm, stack = None, []
for line in open(sys.argv[1]):
    if not line.strip():
        if comm is not None:
            classify(comm, stack)
        comm, stack = None, []
    elif not line.startswith('\t'):
        comm, stack = line.split()[0], []
    else:
        stack.append(line.strip())
if comm is not None:
    classify(comm, stack)

total, shards = sum(threads.values()), threads['shards']
print('samples by thread:', ', '.join(f'{k} {100 * v / total:.1f}%' for k, v in threads.most_common()))
for k, v in cats.most_common():
    print(f'  {k:50s} {100 * v / total:5.1f}% of all samples, {100 * v / shards:5.1f}% of the shards\'')
n = cats['__do_sys_io_uring_enter']
for k, v in uring.most_common():
    print(f'    io_uring_enter, {k:40s} {100 * v / total:5.1f}% of all samples, {100 * v / n:5.1f}% of its own')
