"""Slow answers inside a poll (issue 29, shape 3); logs every attempt and its answer.

usage: sched_slowpoll.py DIR PORT [UNIX_PATH|- [CHUNK_MS]]

The recorded command: starts the server (`sched_slowpoll.py serve PORT TRUTH.json`, in its own
session: never waited for) and polls it: connect (a fresh connection per attempt, refused until
it listens), send its CLOCK_MONOTONIC connect stamp, read the answer, then wait INTERVAL after
the ANSWER (a client that retries a fixed time after each answer) until it answers "ready".
Each attempt is logged to DIR/attempts.json: [connect stamp, answer stamp, answer] ("refused"
for a refused connect), CLOCK_MONOTONIC ns; DIR/server.json: {pid, truth}. With UNIX_PATH the
server listens on that unix socket instead of 127.0.0.1:PORT; CHUNK_MS: the server's work
between answers (default 70).

The server: its first connection starts a job of JOB_CHUNKS x CHUNK_NS of its own CPU; it
answers "not-ready" only between chunks, so while it works its answers come up to CHUNK_NS
late; it answers "ready" when the job ended before the client's connect stamp. TRUTH.json:
{pid, t0, t1, cpu_ns} (the job, CLOCK_MONOTONIC and thread CPU).
The client waits on the CPU for the last WAIT_ON_CPU_S of each interval as a real-time thread
when allowed (root), as sched_poller.py does, so its cadence after each answer stays regular on
a loaded machine.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import socket
import subprocess
import sys
import time
from pathlib import Path

INTERVAL = 0.1
CHUNK_NS = 70_000_000  # the server's work between answers (CHUNK_MS overrides)
JOB_CHUNKS = 8
WAIT_ON_CPU_S = 0.015
URGENT = os.sched_param(1)
CPU = time.CLOCK_THREAD_CPUTIME_ID


def mono() -> int:
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC)


def _socket(where: str) -> socket.socket:
    return socket.socket(socket.AF_UNIX if where.startswith("/") else socket.AF_INET)


def _addr(where: str) -> str | tuple[str, int]:
    return where if where.startswith("/") else ("127.0.0.1", int(where))


def serve(where: str, out: str, chunk_ns: int) -> None:
    srv = _socket(where)
    if not where.startswith("/"):
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(_addr(where))
    srv.listen(16)
    job: dict[str, int] = {}
    chunks = 0
    c0 = 0
    while True:
        busy = 0 < chunks < JOB_CHUNKS + 1
        if busy:  # one chunk of work, then whatever waited meanwhile
            start = time.clock_gettime_ns(CPU)
            while time.clock_gettime_ns(CPU) - start < chunk_ns:
                pass
            chunks += 1
            if chunks == JOB_CHUNKS + 1:
                job = {"pid": os.getpid(), "t0": job["t0"], "t1": mono(),
                       "cpu_ns": time.clock_gettime_ns(CPU) - c0}
                Path(out).write_text(json.dumps(job))
        if not select.select([srv], [], [], 0 if busy else None)[0]:
            continue
        conn, _ = srv.accept()
        with conn:
            line = conn.makefile().readline().strip()
            stamp = int(line) if line.isdigit() else mono()
            if chunks == 0:  # the first connection starts the job
                chunks, c0 = 1, time.clock_gettime_ns(CPU)
                job = {"t0": mono()}
            ready = "t1" in job and job["t1"] < stamp
            with contextlib.suppress(OSError):
                conn.sendall(b"ready\n" if ready else b"not-ready\n")


def poll(where: str, log: list[list[object]]) -> None:
    while True:
        stamp = mono()
        answer = "refused"
        try:
            with _socket(where) as s:
                s.settimeout(5)
                s.connect(_addr(where))
                s.sendall(f"{stamp}\n".encode())
                answer = s.makefile().readline().strip()
        except (ConnectionRefusedError, FileNotFoundError):
            pass
        answered = mono()
        log.append([stamp, answered, answer])
        if answer == "ready":
            return
        due = time.monotonic() + INTERVAL
        time.sleep(max(0.0, due - WAIT_ON_CPU_S - time.monotonic()))
        while time.monotonic() < due:
            pass


def main() -> None:
    if sys.argv[1] == "serve":
        serve(sys.argv[2], sys.argv[3], int(sys.argv[4]))
        return
    out, port = Path(sys.argv[1]), sys.argv[2]
    where = sys.argv[3] if len(sys.argv) > 3 and sys.argv[3] != "-" else port
    chunk_ns = int(float(sys.argv[4]) * 1e6) if len(sys.argv) > 4 else CHUNK_NS
    policy, param = os.sched_getscheduler(0), os.sched_getparam(0)
    with contextlib.suppress(OSError):
        os.sched_setscheduler(0, os.SCHED_FIFO, URGENT)

    def normal_priority() -> None:  # the server runs with the policy we were started with
        os.sched_setscheduler(0, policy, param)

    truth = out / "truth-server.json"
    p = subprocess.Popen([sys.executable, __file__, "serve", where, str(truth), str(chunk_ns)],
                         start_new_session=True, preexec_fn=normal_priority)
    (out / "server.json").write_text(json.dumps({"pid": p.pid, "truth": str(truth)}))
    log: list[list[object]] = []
    try:
        poll(where, log)
    finally:
        (out / "attempts.json").write_text(json.dumps(log))


if __name__ == "__main__":
    main()
