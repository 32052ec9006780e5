"""Issue 29, shape 1, against ground truth: the listener is not the acceptor.

The poller of test_sched_path_truth.py (sched_poller.py) polls servers started through
sched_handoff.py: a process listens, then hands the socket on, and ANOTHER process accepts,
answers "not ready" and runs the job (300 ms of CPU; fsync for 300 ms): `fork` (the child
inherits the socket, same fd: a pre-fork server, a daemon that listens then daemonizes) and
`exec` (the systemd socket-activation protocol: the socket moved to fd 3, a child exec'd with
LISTEN_PID / LISTEN_FDS accepts on it). The listener only sleeps in waitpid. The wait's target
must be the acceptor (the server's own truth names its pid), and each `wait:poll` segment must
carry the ACCEPTOR's states with the bounds of test_sched_path_truth.py: cpu within 10 % of the
job's thread CPU, io >= 50 % of its fsync time, and its fsync calls (blockers) as many as the
workload timed, their total within 10 %; the listener is named as such."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.integration.recording import WORKLOADS, free_port, record
from tests.integration.test_sched_path_truth import Answer, _poll_segment, fsync_time_matches
from tracer import schema
from tracer.analyzer import analyze
from tracer.report.text import render

pytestmark = pytest.mark.bpf


def _free_ports(n: int) -> int:
    while True:
        port = free_port()
        with contextlib.ExitStack() as stack:
            try:
                for i in range(n):
                    s = stack.enter_context(socket.socket())
                    s.bind(("127.0.0.1", port + i))
            except OSError:
                continue
        return port


def record_handoff(tmp: Path, handoff: str, modes: str) -> tuple[Any, dict[str, dict[str, Any]]]:
    """Record the poller against servers started through sched_handoff.py HANDOFF; return the
    analysis and, per mode, the server's truth (the acceptor's) with its answers and the
    launcher's pid (`listener_pid`)."""
    port = _free_ports(len(modes.split(",")))
    servers: list[dict[str, Any]] = []
    try:
        record(tmp / "trace", [sys.executable, str(WORKLOADS / "sched_poller.py"), str(tmp),
                               str(port), "/var/tmp", handoff, modes], "--sched")
        servers = json.loads((tmp / "servers.json").read_text())
    finally:
        if not servers and (tmp / "servers.json").exists():
            servers = json.loads((tmp / "servers.json").read_text())
        for s in servers:  # the launcher leads its own session: its group holds the acceptor
            with contextlib.suppress(ProcessLookupError):
                os.killpg(s["pid"], signal.SIGKILL)
    truth = {s["mode"]: {**json.loads(Path(s["truth"]).read_text()), "listener_pid": s["pid"],
                         "answers": [Answer(*json.loads(line)) for line in
                                     Path(s["truth"] + ".answers").read_text().splitlines()]}
             for s in servers}
    trace = schema.load(tmp / "trace")
    assert trace.lost_events == 0
    return analyze(trace), truth


@pytest.fixture(scope="module", params=["fork", "exec"])
def handed_off(request: pytest.FixtureRequest,
               tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, dict[str, Any], str]:
    a, truth = record_handoff(tmp_path_factory.mktemp(f"handoff-{request.param}"),
                              request.param, "spin,fsync")
    return a, truth, request.param


def _wait(a: Any, t: dict[str, Any]) -> dict[str, Any]:
    polls = [w for w in a.waits if w["kind"] == "poll" and w["target"]
             and w["target"]["pid"] == t["pid"]]
    assert len(polls) == 1, ([(w["kind"], w["endpoint"], w["target"]) for w in a.waits],
                             t["pid"], t["listener_pid"])
    return polls[0]  # type: ignore[no-any-return]


def test_the_acceptor_is_the_target_and_the_listener_is_named(handed_off) -> None:  # type: ignore[no-untyped-def]
    a, truth, _ = handed_off
    for t in truth.values():
        assert t["pid"] != t["listener_pid"]  # the workload made the shape
        w = _wait(a, t)
        assert w["listener"]["pid"] == t["listener_pid"], w
        # refused until the listen, answered by the acceptor after it
        assert w["ready_ns"] is not None and w["first_ok_ns"] is not None, w


def test_a_spinning_acceptor_is_cpu(handed_off) -> None:  # type: ignore[no-untyped-def]
    a, truth, handoff = handed_off
    t = truth["spin"]
    st = _poll_segment(a, t)["states"]
    if handoff == "fork":  # the acceptor did nothing but the job inside the wait
        assert abs(st["cpu"] - t["cpu_ns"]) <= 0.10 * t["cpu_ns"], (st, t, render(a))
    else:
        # socket activation: the client's first connect waits in the backlog while the daemon
        # starts (exec, interpreter startup: its CPU is on the wait too, truthfully). At least
        # the job's thread CPU, at most the daemon's whole CPU since its fork (all threads, at
        # the job's end), each within 10 %
        assert 0.9 * t["cpu_ns"] <= st["cpu"] <= 1.1 * t["proc_cpu_ns"], (st, t, render(a))


def test_an_fsyncing_acceptor_is_disk_io(handed_off) -> None:  # type: ignore[no-untyped-def]
    a, truth, _ = handed_off
    t = truth["fsync"]
    st = _poll_segment(a, t)["states"]
    assert t["fsyncs"] >= 1
    assert st["io"] >= 0.50 * t["fsync_ns"], (st, t, render(a))
    fsync_time_matches(a, t)
