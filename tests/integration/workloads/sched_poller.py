"""The recorded command of the issue-17 ground-truth test: for each server, start it (a
`sched_notready.py`, in its own session: never waited for) and poll its port every 100 ms on a
fixed schedule (a fresh TCP connection per attempt, refused until it listens; each attempt sends
its CLOCK_MONOTONIC taken just before connect()) until it answers "ready". Modes in order:
spin, fsync, sleep.

usage: sched_poller.py DIR PORT0 DATADIR [HANDOFF [MODES]]

HANDOFF (default `none`): `fork`, `exec`, `activate`, `scm`, `thread` or `forkfirst` start each
server through sched_handoff.py (the listener is not the acceptor, issue 29); MODES: a
comma-separated subset of the modes, in the order given. With `activate` (systemd socket
activation: the daemon starts when a connection is pending) the first attempt is made only once
the port listens (read from /proc/net/tcp, not by connecting), so it waits in the backlog; and
the cadence is a ticker that DROPS the ticks a slow attempt missed (Go's time.Ticker, as under
k3s's readiness loops) instead of catching them up.

Writes DIR/servers.json: [{mode, pid, port, truth}] (truth = the server's own TRUTH.json path).
The cadence must stay regular on a loaded machine: the analyzer only calls a regular cadence a
poll loop (a median error within 2 % of the interval), and beside 4 CPU hogs on 2 cores single
attempts came 3-8 ms late, at nice -10 and, during the fsync job, even as a real-time thread
(the kernel here is not preemptible: CONFIG_PREEMPT_NONE). So it sleeps until WAIT_ON_CPU_S
before each attempt and waits the rest on the CPU, as a real-time (SCHED_FIFO) thread when
allowed (root), where no normal thread can take the CPU from it. The servers start with the
policy and niceness it was given.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

INTERVAL = 0.1
MODES = ("spin", "fsync", "sleep")
URGENT = os.sched_param(1)  # the lowest real-time priority: above every normal thread
#: a wakeup from sleep came up to 8 ms late under load: wake this long before an attempt
WAIT_ON_CPU_S = 0.015


def listens(port: int) -> bool:
    """127.0.0.1:PORT is in LISTEN state (/proc/net/tcp: local address hex, state 0A)."""
    want = f"0100007F:{port:04X}"
    with open("/proc/net/tcp") as f:
        return any(line.split()[1] == want and line.split()[3] == "0A"
                   for line in list(f)[1:])


def poll(port: int, drop_ticks: bool = False) -> None:
    t0 = time.monotonic()
    k = 0
    while True:
        stamp = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                s.sendall(f"{stamp}\n".encode())
                if s.makefile().readline().strip() == "ready":
                    return
        except ConnectionRefusedError:
            pass
        k += 1
        if drop_ticks:  # the next tick of the grid still ahead: the missed ones are dropped
            k = max(k, int((time.monotonic() - t0) / INTERVAL) + 1)
        due = t0 + k * INTERVAL
        time.sleep(max(0.0, due - WAIT_ON_CPU_S - time.monotonic()))
        while time.monotonic() < due:
            pass


def main() -> None:
    out, port0, datadir = Path(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
    handoff = sys.argv[4] if len(sys.argv) > 4 else "none"
    modes = sys.argv[5].split(",") if len(sys.argv) > 5 else MODES
    policy, param = os.sched_getscheduler(0), os.sched_getparam(0)
    with contextlib.suppress(OSError):
        os.sched_setscheduler(0, os.SCHED_FIFO, URGENT)

    def normal_priority() -> None:  # in each server: the policy we were started with
        os.sched_setscheduler(0, policy, param)

    servers = []
    here = Path(__file__).resolve().parent
    for i, mode in enumerate(modes):
        port = port0 + i
        truth = out / f"truth-{mode}.json"
        cmd = [sys.executable, str(here / "sched_notready.py"), mode, str(port), str(truth)]
        if handoff != "none":
            cmd[1:2] = [str(here / "sched_handoff.py"), handoff]
        if mode == "fsync":
            cmd.append(str(datadir / f"k3sprof-notready-{port}.bin"))
        p = subprocess.Popen(cmd, start_new_session=True, preexec_fn=normal_priority)
        servers.append({"mode": mode, "pid": p.pid, "port": port, "truth": str(truth)})
        if handoff == "activate":
            while not listens(port):
                time.sleep(0.005)
        poll(port, drop_ticks=handoff == "activate")
    (out / "servers.json").write_text(json.dumps(servers))


if __name__ == "__main__":
    main()
