"""A server that answers "not ready" while it is busy, for the issue-17 ground-truth test.

usage: [STARTUP_CPU_MS=N] sched_notready.py MODE PORT TRUTH.json [DATAFILE]

Listens on 127.0.0.1:PORT (PORT "-": accepts on a socket passed the systemd way, LISTEN_FDS=1
on fd 3, see sched_handoff.py). Each client sends one line, its CLOCK_MONOTONIC taken just before
it called connect() (the poller, sched_poller.py). The first connection starts the job in a
worker thread; a connection gets "ready\\n" when the job had ended BEFORE the client's connect,
else "not-ready\\n". Why the connect time and not the answer time: the kernel completes a TCP
handshake before the server accepts, so a connect made before the job's end can be accepted,
and answered, after it (seen under load: the fsync server accepted late); the recorder and the
analyzer only see the connect, so "ready" must mean "ready when you connected".

MODE is the job, each 300 ms: `spin` (300 ms of the worker's thread CPU, hashing in C with the
GIL released, so the listener thread answers at once), `fsync` (write 4 MiB + fsync DATAFILE
until 300 ms of wall time have passed; every fsync call timed), `sleep` (time.sleep(0.3): a
timer). Writes its CLOCK_MONOTONIC / thread-CPU truth to TRUTH.json when the job is done (and
`proc_cpu_ns`, the process's CPU time since its fork, all threads, at the job's end), and
every answer, as the server saw it, to TRUTH.json.answers (one JSON list per line:
[client's connect stamp, accepted, answered, answer], CLOCK_MONOTONIC ns, "answered" taken
before the reply is sent) until killed. The listener thread runs as a real-time (SCHED_FIFO)
thread when allowed (root), so that under CPU load the answers stay prompt. The spin and sleep
jobs run with the policy the server was started with (they compete for a CPU like any
program); the fsync job stays real-time: beside 4 CPU hogs on 2 cores a normal fsync worker
waited for a CPU inside its own fsync calls (their io share fell to 44 %, the test's bound is
50 %: the bound is about the disk, not the CPU queue).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import sys
import threading
import time

CPU = time.CLOCK_THREAD_CPUTIME_ID
JOB_NS = 300_000_000
URGENT = os.sched_param(1)  # the lowest real-time priority: above every normal thread


def mono() -> int:
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC)


def set_thread_policy(policy: int, param: os.sched_param) -> None:
    """This thread's scheduling policy (Linux: sched_setscheduler on a thread id is per thread)."""
    with contextlib.suppress(OSError):
        os.sched_setscheduler(threading.get_native_id(), policy, param)


def job(mode: str, datafile: str | None, out: str, policy: tuple[int, os.sched_param],
        ended: list[int], done: threading.Event) -> None:
    if mode != "fsync":
        set_thread_policy(*policy)  # created by the urgent listener thread: back to normal
    c0, t0 = time.clock_gettime_ns(CPU), mono()
    fsync_ns, fsyncs = 0, 0
    if mode == "spin":
        block = os.urandom(256 << 10)
        h = hashlib.sha256()
        while time.clock_gettime_ns(CPU) - c0 < JOB_NS:
            h.update(block)  # ~0.5 ms of CPU with the GIL released
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
    # the whole process's CPU since it started (fork), all threads: startup included
    proc_cpu = time.clock_gettime_ns(time.CLOCK_PROCESS_CPUTIME_ID)
    with open(out + ".tmp", "w") as f:
        json.dump({"pid": os.getpid(), "mode": mode, "t0": t0, "t1": t1, "cpu_ns": c1 - c0,
                   "fsync_ns": fsync_ns, "fsyncs": fsyncs, "proc_cpu_ns": proc_cpu}, f)
    os.rename(out + ".tmp", out)
    ended.append(t1)
    done.set()


def listening(port: str) -> socket.socket:
    """The listening socket: our own on 127.0.0.1:PORT, or with PORT "-" the one passed the
    way systemd passes an activated socket (LISTEN_PID = our pid, LISTEN_FDS = 1, fd 3)."""
    if port == "-":
        if os.environ.get("LISTEN_PID") != str(os.getpid()) or \
                os.environ.get("LISTEN_FDS") != "1":
            raise SystemExit("PORT '-' needs one socket passed as LISTEN_FDS=1 (fd 3)")
        return socket.socket(fileno=3)
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", int(port)))
    srv.listen(16)
    return srv


def main() -> None:
    mode, port, out = sys.argv[1], sys.argv[2], sys.argv[3]
    datafile = sys.argv[4] if len(sys.argv) > 4 else None
    srv = listening(port)
    # a daemon's own initialization before it accepts (config, datastore): STARTUP_CPU_MS of
    # this thread's CPU (its truth: part of `proc_cpu_ns`)
    startup = int(os.environ.get("STARTUP_CPU_MS", "0")) * 1_000_000
    c0 = time.clock_gettime_ns(CPU)
    while time.clock_gettime_ns(CPU) - c0 < startup:
        pass
    serve(srv, mode, out, datafile)


def serve(srv: socket.socket, mode: str, out: str, datafile: str | None) -> None:
    """Answer on srv until killed (the module docstring); the job runs in this process."""
    policy = (os.sched_getscheduler(0), os.sched_getparam(0))
    set_thread_policy(os.SCHED_FIFO, URGENT)
    done = threading.Event()
    ended: list[int] = []  # the job's t1, set before done
    started = False
    with open(out + ".answers", "w") as log:
        while True:
            conn, _ = srv.accept()
            accepted = mono()
            with conn:
                line = conn.makefile().readline().strip()
                connect_ns = int(line) if line.isdigit() else accepted
                if not started:
                    started = True
                    threading.Thread(target=job, args=(mode, datafile, out, policy, ended, done),
                                     daemon=True).start()
                ready = done.is_set() and ended[0] < connect_ns
                answer = "ready" if ready else "not-ready"
                log.write(json.dumps([connect_ns, accepted, mono(), answer]) + "\n")
                log.flush()
                with contextlib.suppress(OSError):
                    conn.sendall(answer.encode() + b"\n")


if __name__ == "__main__":
    main()
