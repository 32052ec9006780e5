"""A server that answers "not ready" while it is busy, for the issue-17 ground-truth test.

usage: sched_notready.py MODE PORT TRUTH.json [DATAFILE]

Listens on 127.0.0.1:PORT. The first connection starts the job in a worker thread; every
connection gets "not-ready\\n" until the job is done, then "ready\\n". MODE is the job, each
300 ms: `spin` (300 ms of the worker's thread CPU), `fsync` (write 4 MiB + fsync DATAFILE until
300 ms of wall time have passed; every fsync call timed), `sleep` (time.sleep(0.3): a timer).
Writes its CLOCK_MONOTONIC / thread-CPU truth to TRUTH.json when the job is done, then keeps
answering "ready" until killed.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time

CPU = time.CLOCK_THREAD_CPUTIME_ID
JOB_NS = 300_000_000


def mono() -> int:
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC)


def job(mode: str, datafile: str | None, out: str, done: threading.Event) -> None:
    c0, t0 = time.clock_gettime_ns(CPU), mono()
    fsync_ns, fsyncs = 0, 0
    if mode == "spin":
        while time.clock_gettime_ns(CPU) - c0 < JOB_NS:
            pass
    elif mode == "fsync":
        assert datafile
        block = os.urandom(4 << 20)  # incompressible
        fd = os.open(datafile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            while mono() - t0 < JOB_NS:
                os.write(fd, block)
                f0 = mono()
                os.fsync(fd)
                fsync_ns += mono() - f0
                fsyncs += 1
        finally:
            os.close(fd)
            os.unlink(datafile)
    else:
        time.sleep(JOB_NS / 1e9)
    t1, c1 = mono(), time.clock_gettime_ns(CPU)
    with open(out + ".tmp", "w") as f:
        json.dump({"pid": os.getpid(), "mode": mode, "t0": t0, "t1": t1, "cpu_ns": c1 - c0,
                   "fsync_ns": fsync_ns, "fsyncs": fsyncs}, f)
    os.rename(out + ".tmp", out)
    done.set()


def main() -> None:
    mode, port, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    datafile = sys.argv[4] if len(sys.argv) > 4 else None
    done = threading.Event()
    started = False
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port))
    srv.listen(16)
    while True:
        conn, _ = srv.accept()
        if not started:
            started = True
            threading.Thread(target=job, args=(mode, datafile, out, done), daemon=True).start()
        with conn:
            conn.sendall(b"ready\n" if done.is_set() else b"not-ready\n")


if __name__ == "__main__":
    main()
