"""The recorded command of the issue-17 ground-truth test: for each server, start it (a
`sched_notready.py`, in its own session: never waited for) and poll its port every 100 ms on a
fixed schedule (a fresh TCP connection per attempt, refused until it listens) until it answers
"ready". Modes in order: spin, fsync, sleep.

usage: sched_poller.py DIR PORT0 DATADIR

Writes DIR/servers.json: [{mode, pid, port, truth}] (truth = the server's own TRUTH.json path).
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

INTERVAL = 0.1
MODES = ("spin", "fsync", "sleep")


def poll(port: int) -> None:
    t0 = time.monotonic()
    k = 0
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                if s.makefile().readline().strip() == "ready":
                    return
        except ConnectionRefusedError:
            pass
        k += 1
        time.sleep(max(0.0, t0 + k * INTERVAL - time.monotonic()))


def main() -> None:
    out, port0, datadir = Path(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
    servers = []
    here = Path(__file__).resolve().parent
    for i, mode in enumerate(MODES):
        port = port0 + i
        truth = out / f"truth-{mode}.json"
        cmd = [sys.executable, str(here / "sched_notready.py"), mode, str(port), str(truth)]
        if mode == "fsync":
            cmd.append(str(datadir / f"k3sprof-notready-{port}.bin"))
        p = subprocess.Popen(cmd, start_new_session=True)
        servers.append({"mode": mode, "pid": p.pid, "port": port, "truth": str(truth)})
        poll(port)
    (out / "servers.json").write_text(json.dumps(servers))


if __name__ == "__main__":
    main()
