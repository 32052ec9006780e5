"""Issue 29, shape 3, against ground truth: slow answers inside a poll.

tests/integration/workloads/sched_slowpoll.py polls a server 100 ms after each answer; the
server answers "not ready" only between 70 ms chunks of its own work, so while it works its
answers come late and the attempt starts are irregular. It logs every attempt and its answer
(CLOCK_MONOTONIC). Recorded with --sched: every attempt must be in ONE poll wait (the refused
ones before the listen, the late answers, the prompt ones, the "ready" one), and the wait on
the critical path must run from the first answered attempt to the "ready" one with the
SERVER's states (its job's CPU within 10 %), none of it read as the client's own run."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.integration.recording import WORKLOADS, free_port, record
from tracer import schema
from tracer.analyzer import analyze
from tracer.report.text import render

pytestmark = pytest.mark.bpf


def record_slowpoll(tmp: Path, unix: bool = False,
                    chunk_ms: int | None = None) -> tuple[Any, dict[str, Any]]:
    port = str(free_port())
    where = [str(tmp / "slow.sock") if unix else "-"] + ([str(chunk_ms)] if chunk_ms else [])
    server: dict[str, Any] = {}
    try:
        record(tmp / "trace", [sys.executable, str(WORKLOADS / "sched_slowpoll.py"), str(tmp),
                               port, *where], "--sched")
    finally:
        if (tmp / "server.json").exists():
            server = json.loads((tmp / "server.json").read_text())
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server["pid"], signal.SIGKILL)
    truth = {"attempts": json.loads((tmp / "attempts.json").read_text()),
             "job": json.loads(Path(server["truth"]).read_text()),
             "endpoint": f"unix:{where[0]}" if unix else f"127.0.0.1:{port}"}
    trace = schema.load(tmp / "trace")
    assert trace.lost_events == 0
    return analyze(trace), truth


@pytest.fixture(scope="module")
def slow(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, dict[str, Any]]:
    return record_slowpoll(tmp_path_factory.mktemp("slowpoll"))


def check_one_series(a: Any, truth: dict[str, Any]) -> dict[str, Any]:
    attempts = truth["attempts"]
    late = [x for x in attempts if x[2] == "not-ready" and x[1] - x[0] > 20_000_000]
    assert len(late) >= 3, attempts  # the workload made the shape: late answers
    mine = [w for w in a.waits if w["endpoint"] == truth["endpoint"]]
    assert len(mine) == 1, ([(w["kind"], w["attempts"], w["start_ns"]) for w in mine],
                            render(a))
    w = mine[0]
    assert w["kind"] == "poll" and w["attempts"] == len(attempts), (w, len(attempts))
    # from the first attempt to the "ready" one (the recorder stamps connect() entry, the
    # workload its clock just before it)
    assert 0 <= w["start_ns"] - attempts[0][0] <= 5_000_000, (w, attempts[0])
    assert 0 <= w["ended_ns"] - attempts[-1][0] <= 5_000_000, (w, attempts[-1])
    return w  # type: ignore[no-any-return]


def test_every_attempt_is_in_one_poll_series(slow) -> None:  # type: ignore[no-untyped-def]
    check_one_series(*slow)


def test_the_slow_answers_are_the_servers_time_on_the_path(slow) -> None:  # type: ignore[no-untyped-def]
    a, truth = slow
    job = truth["job"]
    answered = [x for x in truth["attempts"] if x[2] != "refused"]
    segs = [s for s in a.critical_path if s["kind"] == "wait:poll"]
    assert len(segs) == 1, render(a)
    s = segs[0]
    assert s["states_of"]["pid"] == job["pid"]
    # from the first answered attempt to the "ready" one
    assert abs(s["start_ns"] - answered[0][0]) <= 5_000_000, (s, answered[0])
    assert abs(s["end_ns"] - answered[-1][0]) <= 5_000_000, (s, answered[-1])
    assert s["start_ns"] <= job["t0"] and job["t1"] <= s["end_ns"], (s, job)
    assert abs(s["states"]["cpu"] - job["cpu_ns"]) <= 0.10 * job["cpu_ns"], (s, job)
    # no stretch of the poll is the client's own run
    client = [x for x in a.critical_path if x["kind"] == "run"
              and x["start_ns"] < s["end_ns"] and x["end_ns"] > answered[0][0]]
    assert not client, client
