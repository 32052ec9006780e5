"""The listener is not the acceptor (issue 29, shape 1): listen here, answer in another process.

usage: sched_handoff.py HANDOFF MODE PORT TRUTH.json [DATAFILE]

Opens and listens on 127.0.0.1:PORT itself, then hands the listening socket to a process that
accepts and answers as sched_notready.py does (MODE, TRUTH.json, DATAFILE: its usage; the job
and its truth, pid included, are the ACCEPTOR's):

* `fork`: fork after listen; the child inherits the socket (same fd) and serves (a pre-fork
  server, a daemon that listens before it daemonizes);
* `exec`: the systemd socket-activation protocol: the listener holds the socket on a higher fd;
  a child is forked, moves it to fd 3 and exec's `sched_notready.py MODE - TRUTH.json` with
  LISTEN_PID (its own pid) and LISTEN_FDS=1 in its environment, and accepts on fd 3 (another
  fd number, another program);
* `scm`: a child is forked and exec's this file (`scm-recv`), which receives the socket over
  a unix socketpair (SCM_RIGHTS, another fd number) and serves;
* `activate`: systemd socket activation as a `.socket` unit does it (`Accept=no`): the
  listener holds the socket long before anyone connects and starts the daemon (the `exec`
  protocol above) only when the first connection is pending; that first client was accepted
  into the backlog by the kernel and waits there, connected, until the daemon starts and
  answers (the poller starts only once the port listens: no connect is refused); the daemon
  initializes for 250 ms of CPU before it accepts (STARTUP_CPU_MS, sched_notready.py), longer
  than the poll interval, as any daemon's start is under TCG: the poller misses ticks;
* `forkfirst`: a control: fork first, the child listens and accepts itself;
* `thread`: no handoff of process: a second thread of this process serves (a control for the
  sweep: the acceptor is the listener's process).

Reuse under real systemd (socket activation): no launcher is needed; a `.socket` unit with
`ListenStream=127.0.0.1:PORT` and a service running `sched_notready.py MODE - TRUTH.json`
hand it the socket exactly as `exec` does here (fd 3, LISTEN_PID, LISTEN_FDS=1).

This process keeps its copy of the socket and sleeps in waitpid (as PID 1 or a pre-fork master
would) until killed; kill its process group to stop both.
"""

from __future__ import annotations

import os
import select
import socket
import sys
import threading
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import sched_notready  # noqa: E402


def main() -> None:
    if sys.argv[1] == "scm-recv":  # the receiving end of `scm`: usage scm-recv FD MODE OUT [DATA]
        chan = socket.socket(fileno=int(sys.argv[2]))
        pad = [os.open("/dev/null", os.O_RDONLY) for _ in range(3)]  # not the sender's fd
        _, fds, _, _ = socket.recv_fds(chan, 16, 1)
        for fd in pad:
            os.close(fd)
        sched_notready.serve(socket.socket(fileno=fds[0]), sys.argv[3], sys.argv[4],
                             sys.argv[5] if len(sys.argv) > 5 else None)
        return
    handoff, mode, port, out = sys.argv[1:5]
    datafile = sys.argv[5] if len(sys.argv) > 5 else None
    if handoff == "forkfirst":  # the control: fork, then the child listens and accepts
        pid = os.fork()
        if pid == 0:
            sched_notready.serve(sched_notready.listening(port), mode, out, datafile)
            os._exit(0)
        os.waitpid(pid, 0)
        return
    if handoff in ("exec", "activate"):  # PID 1 holds its sockets on arbitrary fds: not fd 3
        pad = [os.open("/dev/null", os.O_RDONLY) for _ in range(4)]
    srv = sched_notready.listening(port)
    if handoff in ("exec", "activate"):
        for fd in pad:
            os.close(fd)
    if handoff == "activate":  # systemd: the service starts when a connection is pending
        select.select([srv], [], [])
        os.environ["STARTUP_CPU_MS"] = "250"
        handoff = "exec"
    if handoff == "thread":
        t = threading.Thread(target=sched_notready.serve, args=(srv, mode, out, datafile))
        t.start()
        t.join()
        return
    if handoff == "fork":
        pid = os.fork()
        if pid == 0:
            sched_notready.serve(srv, mode, out, datafile)
            os._exit(0)
    elif handoff == "exec":
        pid = os.fork()
        if pid == 0:  # the socket moves to fd 3 in the child only, as systemd's does
            os.dup2(srv.fileno(), 3, inheritable=True)
            env = {**os.environ, "LISTEN_PID": str(os.getpid()), "LISTEN_FDS": "1"}
            argv = [sys.executable, str(HERE / "sched_notready.py"), mode, "-", out]
            os.execve(sys.executable, argv + ([datafile] if datafile else []), env)
    elif handoff == "scm":
        mine, theirs = socket.socketpair()
        argv = [sys.executable, __file__, "scm-recv", str(theirs.fileno()), mode, out]
        pid = os.fork()
        if pid == 0:
            mine.close()
            os.set_inheritable(theirs.fileno(), True)
            os.execv(sys.executable, argv + ([datafile] if datafile else []))
        theirs.close()
        socket.send_fds(mine, [b"x"], [srv.fileno()])
    else:
        raise SystemExit(
            f"unknown HANDOFF {handoff!r}: fork, exec, activate, scm, thread or forkfirst")
    os.waitpid(pid, 0)


if __name__ == "__main__":
    main()
