"""Issue 29, shape 2, against ground truth: a parent that works before it waits.

tests/integration/workloads/sched_forkwork.py forks two CPU-bound children, spins 300 ms of its
own thread CPU (in the runqueue part of the time: the children compete for the cores) and only
then waits for them; it logs its spin (CLOCK_MONOTONIC and thread CPU), the moment it started
waiting, and each child's own spin. On the critical path (recorded with --sched, analysed to
the parent's exit) the parent's spin must be the parent's own `run`, with its states (cpu
within 10 % of its thread CPU, runqueue within 20 % of the rest of its wall time, the bounds of
test_sched_truth.py), and every `wait:child` segment must lie after the parent started waiting:
no child is blamed for time in which nobody waited for it."""

from __future__ import annotations

import json
import sys
from typing import Any

import pytest

from tests.integration.recording import WORKLOADS, record
from tracer import schema
from tracer.analyzer import analyze
from tracer.report.text import render

pytestmark = pytest.mark.bpf


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("forkwork")
    truth_file = tmp / "truth.json"
    record(tmp / "trace", [sys.executable, str(WORKLOADS / "sched_forkwork.py"),
                           str(truth_file)], "--sched")
    truth = json.loads(truth_file.read_text())
    trace = schema.load(tmp / "trace")
    assert trace.lost_events == 0
    a = analyze(trace)
    assert a.end_reached
    return a, truth


def _desc(a: Any) -> list[tuple[str, int, float, float]]:
    return [(s["kind"], s["pid"], s["start_ns"] / 1e6, s["end_ns"] / 1e6)
            for s in a.critical_path]


def test_the_parents_own_spin_is_its_run_with_its_states(recorded) -> None:  # type: ignore[no-untyped-def]
    a, truth = recorded
    pid, sp = truth["pid"], truth["spin"]
    # the children outlived the spin (else the workload did not make the shape)
    assert all(c["t1"] > sp["t1"] for c in truth["children"]), truth
    segs = [s for s in a.critical_path if s["kind"] == "run" and s["pid"] == pid
            and s["start_ns"] <= sp["t0"] and sp["t1"] <= s["end_ns"]]
    assert len(segs) == 1, (_desc(a), render(a))
    s = segs[0]
    assert s["states_of"]["pid"] == pid
    assert sum(s["states"].values()) == s["duration_ns"]  # exact
    wall = sp["t1"] - sp["t0"]
    outside = s["duration_ns"] - wall  # the segment's time beyond the spin (forks, waitpid)
    st = s["states"]
    assert 0.9 * sp["cpu_ns"] <= st["cpu"] <= 1.1 * sp["cpu_ns"] + outside, (st, sp)
    waiting = wall - sp["cpu_ns"]  # the spin's wait for a CPU
    tol = max(0.20 * waiting, 20_000_000)
    assert waiting - tol <= st["runqueue"] <= waiting + outside + tol, (st, waiting)


def test_child_waits_start_where_the_parent_started_waiting(recorded) -> None:  # type: ignore[no-untyped-def]
    a, truth = recorded
    kids = {c["pid"]: c for c in truth["children"]}
    child = [s for s in a.critical_path if s["kind"] == "wait:child"]
    assert child, (_desc(a), render(a))
    for s in child:
        assert s["pid"] in kids, s
        # waiting began after the parent's own work; a child's earlier life is not the wait
        assert s["start_ns"] >= truth["wait_t0"], (s, truth["wait_t0"], _desc(a))
        assert s["end_ns"] <= truth["done"], (s, truth["done"])
    # the child the parent waited for longest is on the path up to its own spin's end
    last = max(kids.values(), key=lambda c: c["t1"])
    assert any(s["pid"] == last["pid"] and s["end_ns"] >= last["t1"] for s in child), _desc(a)
