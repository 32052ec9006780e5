"""Issue 17 against ground truth: a poller (the recorded command) polls three servers that
answer "not ready" while they (a) spin, (b) fsync, (c) sleep on a timer, 300 ms each
(tests/integration/workloads/sched_notready.py logs its own CLOCK_MONOTONIC / thread-CPU truth).
Each `wait:poll` segment on the critical path carries the SERVER's states, within issue 15's
tolerances: cpu within 10 % of the job's thread CPU, io >= 50 % of its fsync calls, sleep
>= 85 % of the sleep, summing exactly to the segment. The segment's ends are checked against the
server's own log of its answers (CLOCK_MONOTONIC): it starts at the connect that started the
job and ends at the connect the server answered "ready" (a server answers "ready" only when its
job ended before the client connected: the kernel completes a handshake before the server
accepts, which under load came after the job's end)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from tests.integration.recording import WORKLOADS, free_port, record
from tracer import schema
from tracer.analyzer import analyze
from tracer.analyzer.sched import STATES
from tracer.report.text import render

pytestmark = pytest.mark.bpf


@pytest.fixture(scope="module")
def polled(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, dict[str, dict[str, Any]]]:
    tmp = tmp_path_factory.mktemp("notready")
    port = free_port()
    while True:  # three consecutive free ports
        with contextlib.suppress(OSError):
            import socket

            socks = []
            for i in range(3):
                s = socket.socket()
                s.bind(("127.0.0.1", port + i))
                socks.append(s)
            for s in socks:
                s.close()
            break
        port = free_port()
    servers: list[dict[str, Any]] = []
    try:
        record(tmp / "trace", [sys.executable, str(WORKLOADS / "sched_poller.py"), str(tmp),
                               str(port), "/var/tmp"])
        servers = json.loads((tmp / "servers.json").read_text())
    finally:
        if not servers and (tmp / "servers.json").exists():
            servers = json.loads((tmp / "servers.json").read_text())
        for s in servers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(s["pid"], signal.SIGKILL)
    truth = {s["mode"]: {**s, **json.loads(Path(s["truth"]).read_text()),
                         "answers": [Answer(*json.loads(line)) for line in
                                     Path(s["truth"] + ".answers").read_text().splitlines()]}
             for s in servers}
    trace = schema.load(tmp / "trace")
    assert trace.lost_events == 0
    return analyze(trace), truth


class Answer(NamedTuple):
    """One answer as the server logged it (sched_notready.py), CLOCK_MONOTONIC ns."""

    connect_ns: int  # the client's clock just before its connect()
    accepted_ns: int
    answered_ns: int  # before the reply was sent
    answer: str


def _poll_segment(a: Any, truth: dict[str, Any]) -> dict[str, Any]:
    segs = [s for s in a.critical_path if s["kind"] == "wait:poll"
            and (s.get("states_of") or {}).get("pid") == truth["pid"]]
    assert len(segs) == 1, render(a)
    s = segs[0]
    assert set(s["states"]) == set(STATES)
    assert sum(s["states"].values()) == s["duration_ns"]  # exact
    # the not-ready stretch, checked against the server's own log of its answers: it starts at
    # the first answered connect (which started the job) ...
    answers: list[Answer] = truth["answers"]
    first = answers[0]
    assert first.answer == "not-ready", answers
    assert first.connect_ns <= s["start_ns"] <= first.accepted_ns, (s, first)
    # ... and ends at the connect the server answered "ready": after the poller read the last
    # "not-ready" (it connects again only then), before the server's "ready"
    k = next(i for i, x in enumerate(answers) if x.answer == "ready")
    ready, last_not_ready = answers[k], answers[k - 1]
    assert last_not_ready.answered_ns < s["end_ns"], (s, last_not_ready)
    assert ready.connect_ns <= s["end_ns"] <= ready.answered_ns, (s, ready)
    # so it brackets the server's own job
    assert truth["t1"] < ready.connect_ns, (truth, ready)  # what "ready" means (the server)
    assert s["start_ns"] <= truth["t0"] and truth["t1"] <= s["end_ns"], (s, truth)
    return s


def test_spinning_target_is_cpu(polled) -> None:  # type: ignore[no-untyped-def]
    a, truth = polled
    t = truth["spin"]
    st = _poll_segment(a, t)["states"]
    assert abs(st["cpu"] - t["cpu_ns"]) <= 0.10 * t["cpu_ns"], (st, t)
    assert "was on-CPU" in render(a), render(a)


def fsync_time_matches(a: Any, t: dict[str, Any]) -> None:
    """The target's fsync calls as the analysis counts them (section `blockers`, from the
    fsync-family syscall tracepoints) against the workload's own timing of each call: the
    same number of calls, their total within 10 %. (The path's `io` state is only the part
    of a call spent blocked in D state: the rest is on-CPU writeback work, counted as cpu, so
    the state alone is held to >= 50 %.)"""
    assert a.blockers is not None, "no blockers section (record with sched on)"
    rows = [r for r in a.blockers["fsync"] if r["pid"] == t["pid"]]
    assert len(rows) == 1, (a.blockers["fsync"], t["pid"])
    assert rows[0]["calls"] == t["fsyncs"], (rows[0], t)
    assert abs(rows[0]["total_ns"] - t["fsync_ns"]) <= 0.10 * t["fsync_ns"], (rows[0], t)


def test_fsyncing_target_is_disk_io(polled) -> None:  # type: ignore[no-untyped-def]
    a, truth = polled
    t = truth["fsync"]
    st = _poll_segment(a, t)["states"]
    assert t["fsyncs"] >= 1
    assert st["io"] >= 0.50 * t["fsync_ns"], (st, t)
    fsync_time_matches(a, t)


#: tests/integration/workloads/sched_notready.py JOB_NS: each job's length (the sleep's)
JOB_NS = 300_000_000


def test_sleeping_target_is_asleep_and_woken_by_a_timer(polled) -> None:  # type: ignore[no-untyped-def]
    a, truth = polled
    t = truth["sleep"]
    seg = _poll_segment(a, t)
    st = seg["states"]
    assert st["sleep"] >= 0.85 * (t["t1"] - t["t0"]), (st, t)
    # the worker's sleep was ended by a timer, at the job's end, after ~300 ms idle. The
    # timer cannot fire before the sleep's deadline (t0 + JOB_NS: t0 is stamped just before
    # the sleep starts) and the wakeup comes before the thread logs t1; how long the woken
    # thread then waits for a CPU is the machine's load (13 ms seen at load 6), not the
    # recorder's, so t1 bounds the wakeup from above only
    timers = [w for w in seg["woken_by"] if w["kind"] == "timer"
              and t["t0"] + JOB_NS <= w["ts_ns"] <= t["t1"]
              and w["idle_ns"] >= 0.85 * JOB_NS]
    assert timers, (seg["woken_by"], t["t1"])
    assert "while answering not-ready; woken by a timer (1x, longest idle " in render(a), render(a)
