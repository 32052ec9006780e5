"""A stand-in for host steal, to reproduce stalled pollers by hand (not run by the suite).

usage: python3 rt_stalls.py SECONDS   (root: SCHED_FIFO)

Per CPU, a SCHED_FIFO priority-50 process pinned to that CPU sleeps 20-120 ms, then spins
5-35 ms (seeded by the CPU number), for SECONDS. Every normal and low real-time thread on that
CPU (the test pollers run at SCHED_FIFO 1) is held off meanwhile, as a vCPU the host does not
run is. It is not steal (the time shows as runqueue, not steal), only its effect on timing.
Used for docs/analyze.md's "stalled client": run it beside `pytest
tests/integration/test_sched_path_truth.py tests/integration/test_sched_path_truth_sweep.py`.
"""

from __future__ import annotations

import os
import random
import sys
import time


def main() -> None:
    seconds = float(sys.argv[1])
    ncpu = os.cpu_count() or 1
    for cpu in range(ncpu):
        if os.fork() == 0:
            os.sched_setaffinity(0, {cpu})
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(50))
            end = time.monotonic() + seconds
            rng = random.Random(cpu)
            while time.monotonic() < end:
                time.sleep(rng.uniform(0.02, 0.12))
                burst_end = time.monotonic() + rng.uniform(0.005, 0.035)
                while time.monotonic() < burst_end:
                    pass
            os._exit(0)
    for _ in range(ncpu):
        os.wait()


if __name__ == "__main__":
    main()
