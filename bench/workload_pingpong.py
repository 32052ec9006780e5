"""Two processes ping-ponging one byte over a pair of pipes: a context-switch storm.

    python -m bench.workload_pingpong [--trips 200000]

Prints one JSON line: wall seconds (first to last trip), trips, and the voluntary context
switches both processes made (getrusage), so the rate is measured, not assumed.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trips", type=int, default=200_000)
    a = ap.parse_args(argv)
    p2c_r, p2c_w = os.pipe()
    c2p_r, c2p_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(p2c_w)
        os.close(c2p_r)
        read, write = os.read, os.write
        for _ in range(a.trips):
            read(p2c_r, 1)
            write(c2p_w, b"x")
        os._exit(0)
    os.close(p2c_r)
    os.close(c2p_w)
    read, write = os.read, os.write
    before = resource.getrusage(resource.RUSAGE_SELF).ru_nvcsw
    t0 = time.monotonic_ns()
    for _ in range(a.trips):
        write(p2c_w, b"x")
        read(c2p_r, 1)
    t1 = time.monotonic_ns()
    after = resource.getrusage(resource.RUSAGE_SELF).ru_nvcsw
    os.waitpid(pid, 0)
    child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_nvcsw
    switches = (after - before) + child
    wall = (t1 - t0) / 1e9
    print(json.dumps({"wall_s": wall, "trips": a.trips, "switches": switches,
                      "switches_per_s": switches / wall, "pid": os.getpid(), "child": pid}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
