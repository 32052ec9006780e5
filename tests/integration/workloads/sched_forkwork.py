"""A parent that works before it waits (issue 29, shape 2); logs its own CLOCK_MONOTONIC truth.

usage: sched_forkwork.py TRUTH.json [CHILDREN [CHILD_CPU_MS [PARENT_CPU_MS]]]

Forks CHILDREN (default 2) CPU-bound children, each spinning CHILD_CPU_MS (default 700) of its
thread CPU time, then spins PARENT_CPU_MS (default 300) of its OWN thread CPU time (the
children compete with it for the cores: on 2 cores it waits in the runqueue for part of its
spin), and only then waits for the children (os.waitpid, one after the other). TRUTH.json:
{"pid", "spin": {t0, t1, cpu_ns}, "wait_t0" (just before the first waitpid),
"children": [{pid, t0, t1, cpu_ns}] (each child's own spin), "done" (after the last waitpid)}.
"""

from __future__ import annotations

import json
import os
import sys
import time

CPU = time.CLOCK_THREAD_CPUTIME_ID


def mono() -> int:
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC)


def spin(ns: int) -> dict[str, int]:
    c0, t0 = time.clock_gettime_ns(CPU), mono()
    while time.clock_gettime_ns(CPU) - c0 < ns:
        pass
    t1, c1 = mono(), time.clock_gettime_ns(CPU)
    return {"t0": t0, "t1": t1, "cpu_ns": c1 - c0}


def main() -> None:
    out = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    child_ns = int(float(sys.argv[3]) * 1e6) if len(sys.argv) > 3 else 700_000_000
    parent_ns = int(float(sys.argv[4]) * 1e6) if len(sys.argv) > 4 else 300_000_000
    kids: list[tuple[int, int]] = []  # (pid, read end of its truth pipe)
    for _ in range(n):
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: spin, report its own truth, exit without cleanup
            os.close(r)
            truth = spin(child_ns)
            os.write(w, json.dumps({"pid": os.getpid(), **truth}).encode())
            os._exit(0)
        os.close(w)
        kids.append((pid, r))
    mine = spin(parent_ns)
    wait_t0 = mono()
    children = []
    for pid, r in kids:
        os.waitpid(pid, 0)
        with os.fdopen(r) as f:
            children.append(json.loads(f.read()))
    done = mono()
    with open(out, "w") as f:
        json.dump({"pid": os.getpid(), "spin": mine, "wait_t0": wait_t0, "children": children,
                   "done": done}, f)


if __name__ == "__main__":
    main()
