"""Planted workload for the kernel matrix's scheduler check; logs its own truth.

usage: sched_planted.py TRUTH.json DATAFILE

Runs inside the VM under `k3sprof record` (tests/kernels/guest.py): spins 200 ms of this
thread's CPU time (CLOCK_THREAD_CPUTIME_ID), sleeps 200 ms on a timer, then writes 1 MiB to
DATAFILE and fsyncs it; each phase's CLOCK_MONOTONIC bounds (and the spin's thread CPU time)
go to TRUTH.json for tests/kernels/test_kernels.py. Short, because the VM runs under TCG.

The sleep's wall span is not all sleep: after the timer fires the thread waits for a CPU, and
on a loaded TCG guest that wait was 104 ms of a 329 ms span (CI, 2026-12-07). The kernel's own
account of it, /proc/thread-self/schedstat (time on the CPU, time runnable and waiting for
it: sched_info, not the tracepoints the recorder reads), is read at both ends of the sleep so
the test can split the span as the kernel did.
"""

from __future__ import annotations

import json
import os
import sys
import time

CPU = time.CLOCK_THREAD_CPUTIME_ID


def mono() -> int:
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC)


def schedstat() -> tuple[int, int]:
    """(ns on the CPU, ns runnable waiting for a CPU) of this thread, as the kernel counts."""
    with open("/proc/thread-self/schedstat") as f:
        on_cpu, run_delay, _ = (int(x) for x in f.read().split())
    return on_cpu, run_delay


def main() -> None:
    out, datafile = sys.argv[1:3]
    truth: dict[str, object] = {"pid": os.getpid()}
    c0, t0 = time.clock_gettime_ns(CPU), mono()
    while time.clock_gettime_ns(CPU) - c0 < 200_000_000:
        pass
    t1, c1 = mono(), time.clock_gettime_ns(CPU)
    truth["spin"] = {"t0": t0, "t1": t1, "cpu_ns": c1 - c0}
    # the kernel's counts are read OUTSIDE the stamped span, before t0 and after t1: read
    # inside it, the first read's own time (open, read, close of a procfs file; 54 ms in a
    # loaded TCG guest, spent running and waiting for the CPU) was in the recorder's span but
    # not in the kernel's difference, and the two could not agree
    cpu0, rq0 = schedstat()
    t0 = mono()
    time.sleep(0.2)
    t1 = mono()
    cpu1, rq1 = schedstat()
    truth["sleep"] = {"t0": t0, "t1": t1, "cpu_ns": cpu1 - cpu0, "run_delay_ns": rq1 - rq0}
    fd = os.open(datafile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.write(fd, os.urandom(1 << 20))
    t0 = mono()
    os.fsync(fd)
    truth["fsync"] = {"t0": t0, "t1": mono()}
    os.close(fd)
    with open(out, "w") as f:
        json.dump(truth, f)


if __name__ == "__main__":
    main()
