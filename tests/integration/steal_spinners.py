"""Workload for test_sched_steal: keep every CPU busy for a while and say, from the kernel's
own per-CPU accounting, how much steal happened meanwhile.

Writes JSON: t0_ns / t1_ns (CLOCK_MONOTONIC around the busy stretch) and steal_ms, the
growth of /proc/stat's steal column (all CPUs; the kernel adds paravirt steal there in whole
ticks, USER_HZ = 100, so each CPU's count is at most one tick off at either end).
Usage: steal_spinners.py TRUTH.json SECONDS
"""

from __future__ import annotations

import json
import os
import sys
import time


def steal_ticks() -> int:
    with open("/proc/stat") as f:
        fields = f.readline().split()  # "cpu user nice system idle iowait irq softirq steal"
    return int(fields[8])


def main() -> None:
    out, seconds = sys.argv[1], float(sys.argv[2])
    ncpu = os.cpu_count() or 1
    pids = []
    s0, t0 = steal_ticks(), time.monotonic_ns()
    for _ in range(ncpu):
        pid = os.fork()
        if pid == 0:
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                pass
            os._exit(0)
        pids.append(pid)
    for pid in pids:
        os.waitpid(pid, 0)
    t1, s1 = time.monotonic_ns(), steal_ticks()
    tick_ms = 1000 // os.sysconf("SC_CLK_TCK")
    with open(out, "w") as f:
        json.dump({"t0_ns": t0, "t1_ns": t1, "steal_ms": (s1 - s0) * tick_ms,
                   "tick_ms": tick_ms, "ncpu": ncpu}, f)


if __name__ == "__main__":
    main()
