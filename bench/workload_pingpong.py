"""Two processes ping-ponging one byte over a pair of pipes: a context-switch storm.

    python -m bench.workload_pingpong [--trips 200000] [--cpu N]

Prints one JSON line: wall seconds (first to last trip), trips, the voluntary context
switches both processes made (getrusage), so the rate is measured, not assumed, and the CPU
time both spent on a CPU during the trips (/proc/self/schedstat: the scheduler's own ns
count, not tick-sampled getrusage): probes run in the context of the task that hits the
tracepoint, so their cost is charged here, and CPU time is far less moved by a busy
neighbour than wall time is.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import struct
import time


def on_cpu_ns() -> int:
    """This task's time on a CPU so far, in ns (first field of /proc/self/schedstat)."""
    with open("/proc/thread-self/schedstat", "rb") as f:
        return int(f.read().split()[0])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trips", type=int, default=200_000)
    ap.add_argument("--cpu", type=int, default=None,
                    help="pin both processes to this CPU: every round trip is then two "
                         "same-CPU context switches, with no idle CPU to wake (bench."
                         "sched_overhead does this by default, see docs/sched.md)")
    a = ap.parse_args(argv)
    if a.cpu is not None:
        os.sched_setaffinity(0, {a.cpu})  # before the fork: the child inherits it
    p2c_r, p2c_w = os.pipe()
    c2p_r, c2p_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(p2c_w)
        os.close(c2p_r)
        read, write = os.read, os.write
        c0 = on_cpu_ns()
        for _ in range(a.trips):
            read(p2c_r, 1)
            write(c2p_w, b"x")
        write(c2p_w, struct.pack("<Q", on_cpu_ns() - c0))
        os._exit(0)
    os.close(p2c_r)
    os.close(c2p_w)
    read, write = os.read, os.write
    before = resource.getrusage(resource.RUSAGE_SELF).ru_nvcsw
    c0 = on_cpu_ns()
    t0 = time.monotonic_ns()
    for _ in range(a.trips):
        write(p2c_w, b"x")
        read(c2p_r, 1)
    t1 = time.monotonic_ns()
    cpu_ns = on_cpu_ns() - c0
    after = resource.getrusage(resource.RUSAGE_SELF).ru_nvcsw
    cpu_ns += struct.unpack("<Q", os.read(c2p_r, 8))[0]
    os.waitpid(pid, 0)
    switches = (after - before) + resource.getrusage(resource.RUSAGE_CHILDREN).ru_nvcsw
    cpu = cpu_ns / 1e9
    wall = (t1 - t0) / 1e9
    print(json.dumps({"wall_s": wall, "cpu_s": cpu, "trips": a.trips, "switches": switches,
                      "cpu": a.cpu,
                      "switches_per_s": switches / wall, "pid": os.getpid(), "child": pid}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
