"""How long `k3sprof record` takes to go live, seen from outside; logs its own clock readings.

usage: start_probe.py RESULT.json RECORDER_STDERR -- RECORDER ARGV...

Runs inside a kernel-matrix VM (tests/kernels/guest.py: the second, warm recording) and by
hand. It spawns the recorder, and until the recorder prints its `recording` line (plus
LINGER_S) connects a unix socket to a missing path every PROBE_INTERVAL_S, each path naming
its own CLOCK_MONOTONIC send time: the first of these connects that the trace holds shows
when the probes really were live (the method of bench/attach.py), independent of what the
recorder says. Every 10 ms, not bench/attach.py's 1 ms: in a 1-vCPU TCG guest a 1 ms loop of
Python + connect() takes a good part of the one CPU from the recorder it times. Then SIGINT,
as a user's Ctrl-C. RESULT.json gets the spawn, `recording` line and exit times
(CLOCK_MONOTONIC ns, the trace's clock), the path prefix and the exit status; it judges
nothing (tests/kernels/test_kernels.py reads the trace and this file).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

#: prober connects go on this long after the `recording` line (the recorder drains at least
#: every second, and the first batch is what the test reads)
LINGER_S = 1.0
#: between prober connects: the resolution of the first-event figure
PROBE_INTERVAL_S = 0.01
#: the recorder must print its `recording` line within this (TCG compiles took 15-60 s)
LINE_TIMEOUT_S = 300.0


def mono() -> int:
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC)


def _prober(prefix: str, stop: threading.Event) -> None:
    s = socket.socket(socket.AF_UNIX)
    while not stop.is_set():
        with contextlib.suppress(OSError):
            s.connect(f"{prefix}{mono()}")
        time.sleep(PROBE_INTERVAL_S)
    s.close()


def main(argv: list[str]) -> int:
    if len(argv) < 4 or argv[2] != "--":
        print(__doc__, file=sys.stderr)
        return 2
    result, err_path, cmd = argv[0], argv[1], argv[3:]
    prefix = f"/nonexistent/k3sprof-start-probe-{os.getpid()}-"
    stop = threading.Event()
    probe = threading.Thread(target=_prober, args=(prefix, stop), daemon=True)
    probe.start()
    out: dict[str, object] = {"argv": cmd, "prefix": prefix, "line_ns": None}
    spawn_ns = mono()
    with open(err_path, "w") as err:
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        assert p.stderr is not None
        deadline = time.monotonic() + LINE_TIMEOUT_S
        for line in p.stderr:  # the recorder's progress lines; `recording to ...` is READY
            err.write(line)
            if "recording" in line:
                out["line_ns"] = mono()
                break
            if time.monotonic() > deadline:
                break
        time.sleep(LINGER_S)
        stop.set()
        probe.join()
        p.send_signal(signal.SIGINT)
        _, rest = p.communicate(timeout=LINE_TIMEOUT_S)
        err.write(rest)
    out.update(spawn_ns=spawn_ns, exit_ns=mono(), rc=p.returncode)
    with open(result, "w") as f:
        json.dump(out, f, indent=1)
    return 0 if p.returncode == 0 and out["line_ns"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
