"""Planted workload for the kernel matrix's scheduler check; logs its own truth.

usage: sched_planted.py TRUTH.json DATAFILE

Runs inside the VM under `k3sprof record` (tests/kernels/guest.py): spins 200 ms of this
thread's CPU time (CLOCK_THREAD_CPUTIME_ID), sleeps 200 ms on a timer, then writes 1 MiB to
DATAFILE and fsyncs it; each phase's CLOCK_MONOTONIC bounds (and the spin's thread CPU time)
go to TRUTH.json for tests/kernels/test_kernels.py. Short, because the VM runs under TCG.
"""

from __future__ import annotations

import json
import os
import sys
import time

CPU = time.CLOCK_THREAD_CPUTIME_ID


def mono() -> int:
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC)


def main() -> None:
    out, datafile = sys.argv[1:3]
    truth: dict[str, object] = {"pid": os.getpid()}
    c0, t0 = time.clock_gettime_ns(CPU), mono()
    while time.clock_gettime_ns(CPU) - c0 < 200_000_000:
        pass
    t1, c1 = mono(), time.clock_gettime_ns(CPU)
    truth["spin"] = {"t0": t0, "t1": t1, "cpu_ns": c1 - c0}
    t0 = mono()
    time.sleep(0.2)
    truth["sleep"] = {"t0": t0, "t1": mono()}
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
