"""A long-lived process (not the workload's child): on each request line from REQ_FIFO it
spins 300 ms of CPU, then replies "PID SPIN_T0 SPIN_T1" (CLOCK_MONOTONIC ns) on RESP_FIFO.

usage: sched_replier.py REQ_FIFO RESP_FIFO
"""

from __future__ import annotations

import os
import sys
import time


def main() -> None:
    req, resp = sys.argv[1:3]
    with open(req) as r:
        line = r.readline()
    if not line:
        return
    t0 = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
    c0 = time.clock_gettime_ns(time.CLOCK_THREAD_CPUTIME_ID)
    while time.clock_gettime_ns(time.CLOCK_THREAD_CPUTIME_ID) - c0 < 300_000_000:
        pass
    t1 = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
    with open(resp, "w") as a:
        a.write(f"{os.getpid()} {t0} {t1}\n")


if __name__ == "__main__":
    main()
