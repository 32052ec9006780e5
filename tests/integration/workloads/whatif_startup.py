"""A planted startup whose poll interval, helper duration and a parallelisable step are knobs.

    whatif_startup.py PORT BINDIR STAMPS --poll-ms P --helper-ms D --prep-ms S [--work-ms W]
                      [--parallel]

The recorded command is the client. It forks a server (no exec: a fork is ~1 ms, so the server
is ready at a steady offset), then retries a TCP connect to 127.0.0.1:PORT on a ticker every
P ms (attempt k at first + k*P, like Go's wait.PollImmediate) until it succeeds, waits for the
server and exits. The server runs BINDIR/helper (a `sleep` of D ms) and then BINDIR/prep (S ms),
or both at once with --parallel, then does W ms of its own work (a sleep), then listens, accepts
one connection and exits. D = 0 or S = 0: that step is not run at all. BINDIR/helper and
BINDIR/prep are symlinks to /bin/sleep made by the test (their comm is their name). STAMPS gets
the client's own CLOCK_MONOTONIC stamps (JSON): main_ns (its first line), first_ns (its first
connect attempt), listen_ns (the server's listen), end_ns (just before it exits).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import time


def server(port: int, bindir: str, helper_ms: float, prep_ms: float, work_ms: float,
           parallel: bool, stamps: str) -> None:
    steps = [(name, ms) for name, ms in (("helper", helper_ms), ("prep", prep_ms)) if ms > 0]
    cmds = [[os.path.join(bindir, name), f"{ms / 1000:.4f}"] for name, ms in steps]
    if parallel:
        running = [subprocess.Popen(c) for c in cmds]
        for r in running:
            r.wait()
    else:
        for c in cmds:
            subprocess.run(c, check=True)
    time.sleep(work_ms / 1000)
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen(8)
    with open(stamps + ".listen", "w") as f:
        f.write(str(time.monotonic_ns()))
    conn, _ = s.accept()
    conn.close()
    s.close()


def main() -> None:
    main_ns = time.monotonic_ns()
    ap = argparse.ArgumentParser()
    ap.add_argument("port", type=int)
    ap.add_argument("bindir")
    ap.add_argument("stamps")
    ap.add_argument("--poll-ms", type=float, required=True)
    ap.add_argument("--helper-ms", type=float, required=True)
    ap.add_argument("--prep-ms", type=float, required=True)
    ap.add_argument("--work-ms", type=float, default=0.0)
    ap.add_argument("--parallel", action="store_true")
    a = ap.parse_args()
    pid = os.fork()
    if pid == 0:
        try:
            server(a.port, a.bindir, a.helper_ms, a.prep_ms, a.work_ms, a.parallel, a.stamps)
        finally:
            os._exit(0)
    period = int(a.poll_ms * 1_000_000)
    first = time.monotonic_ns()
    k = 0
    while True:
        c = socket.socket()
        try:
            c.connect(("127.0.0.1", a.port))
            c.close()
            break
        except ConnectionRefusedError:
            c.close()
        k += 1
        time.sleep(max(0.0, (first + k * period - time.monotonic_ns()) / 1e9))
    os.waitpid(pid, 0)
    end_ns = time.monotonic_ns()
    with open(a.stamps + ".listen") as f:
        listen_ns = int(f.read())
    with open(a.stamps, "w") as f:
        json.dump({"main_ns": main_ns, "first_ns": first, "listen_ns": listen_ns, "end_ns": end_ns,
                   "attempts": k + 1}, f)
    os._exit(0)


if __name__ == "__main__":
    main()
