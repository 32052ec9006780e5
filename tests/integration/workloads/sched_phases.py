"""Planted workload for the scheduler ground-truth test; logs its own CLOCK_MONOTONIC truth.

usage: sched_phases.py TRUTH.json DATAFILE REQ_FIFO RESP_FIFO

Phases, each separated by an exec of /bin/true (a marker in the process table):
  spin    300 ms of this thread's CPU time (CLOCK_THREAD_CPUTIME_ID)
  sleep   time.sleep(0.3)
  fsync   write 64 MiB to DATAFILE (on a real disk), then fsync: the fsync call is timed
  pipe    write a request to REQ_FIFO and block reading RESP_FIFO until a long-lived
          process (not our child) has spun 300 ms and replied
  hogs    start one CPU hog per core (never waited for), spin 300 ms of thread CPU time
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

CPU = time.CLOCK_THREAD_CPUTIME_ID


def mono() -> int:
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC)


def spin_cpu(ns: int) -> None:
    c0 = time.clock_gettime_ns(CPU)
    while time.clock_gettime_ns(CPU) - c0 < ns:
        pass


def phase(truth: dict[str, dict[str, int]], name: str, fn: object) -> None:
    subprocess.run(["/bin/true"], check=True)
    c0, t0 = time.clock_gettime_ns(CPU), mono()
    extra = fn()  # type: ignore[operator]
    t1, c1 = mono(), time.clock_gettime_ns(CPU)
    truth[name] = {"t0": t0, "t1": t1, "cpu_ns": c1 - c0, **(extra or {})}


def main() -> None:
    out, datafile, req, resp = sys.argv[1:5]
    truth: dict[str, dict[str, int]] = {}
    meta = {"pid": os.getpid(), "ncpu": os.cpu_count() or 1}

    phase(truth, "spin", lambda: spin_cpu(300_000_000))
    phase(truth, "sleep", lambda: time.sleep(0.3))

    def fsync() -> dict[str, int]:
        block = os.urandom(1 << 20)  # incompressible, so no layer can shortcut the write
        fd = os.open(datafile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            for _ in range(64):
                os.write(fd, block)
            f0 = mono()
            os.fsync(fd)
            f1 = mono()
        finally:
            os.close(fd)
        return {"fsync_t0": f0, "fsync_t1": f1}

    phase(truth, "fsync", fsync)

    def pipe() -> dict[str, int]:
        with open(req, "w") as r:
            r.write("go\n")
        with open(resp) as a:
            reply = a.readline()
        return {"replier_pid": int(reply.split()[0]), "spin_t0": int(reply.split()[1]),
                "spin_t1": int(reply.split()[2]), "read_done": mono()}

    phase(truth, "pipe", pipe)

    hogs: list[int] = []

    def hog_phase() -> dict[str, int]:
        code = "import time\nt=time.monotonic()\nwhile time.monotonic()-t<3: pass\n"
        for _ in range(meta["ncpu"]):
            # start_new_session: the hogs are not waited for and outlive nothing of ours
            hogs.append(subprocess.Popen([sys.executable, "-c", code],
                                         start_new_session=True).pid)
        time.sleep(0.05)  # let them reach their loops
        c0, t0 = time.clock_gettime_ns(CPU), mono()
        spin_cpu(300_000_000)
        t1, c1 = mono(), time.clock_gettime_ns(CPU)
        return {"spin_t0": t0, "spin_t1": t1, "spin_cpu_ns": c1 - c0}

    phase(truth, "hogs", hog_phase)
    meta["hogs"] = hogs  # type: ignore[assignment]
    with open(out, "w") as f:
        json.dump({"meta": meta, "phases": truth}, f)


if __name__ == "__main__":
    main()
