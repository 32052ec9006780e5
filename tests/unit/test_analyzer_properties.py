"""Analyzer properties on random traces; the irregular-traffic guard of poll detection."""

from __future__ import annotations

import itertools
import random
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.builders import analyze_json, trace
from tracer.analyzer.polls import find_series

OUTCOMES = ["ok", "refused", "refused", "enoent", "timeout", "pending"]


@st.composite
def random_trace(draw: Any) -> Any:
    n_procs = draw(st.integers(1, 8))
    process: list[dict[str, Any]] = []
    alive: list[int] = []
    t = 0
    for i in range(n_procs):
        t += draw(st.integers(0, 50))
        pid = 100 + draw(st.integers(0, 3)) if i else 100  # pid reuse happens
        parent = draw(st.sampled_from(alive)) if alive else 1
        process.append(dict(ts_ns=t, kind="fork", pid=pid, ppid=parent, comm=f"p{i}"))
        alive.append(pid)
        if draw(st.booleans()):
            process.append(dict(ts_ns=t + 1, kind="exec", pid=pid, comm=f"x{i}",
                                filename=f"/bin/x{i}", argv=[f"x{i}"]))
        if draw(st.booleans()):
            process.append(dict(ts_ns=t + draw(st.integers(2, 400)), kind="exit", pid=pid,
                                comm=f"x{i}"))
    socket = []
    for _ in range(draw(st.integers(0, 40))):
        port = draw(st.sampled_from([80, 81, 82]))
        kind = draw(st.sampled_from(["connect", "connect", "connect", "listen"]))
        row = dict(ts_ns=draw(st.integers(0, 500)), kind=kind, pid=draw(st.sampled_from(alive)),
                   family="inet", addr="127.0.0.1" if kind == "connect" else "0.0.0.0",
                   port=port, ret=0)
        row["endpoint"] = f"{row['addr']}:{port}"
        if kind == "connect":
            row["outcome"] = draw(st.sampled_from(OUTCOMES))
        socket.append(row)
    end = draw(st.sampled_from(["exit:x0", "exit:p1", "listen:80", "connect-ok:81", None]))
    return trace(meta={"start_ns": 0}, process=process, socket=socket), end


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_trace())
def test_critical_path_is_contiguous_and_sums_exactly(case: Any) -> None:
    tr, end = case
    r = analyze_json(tr, end=end)
    if not r["end_reached"]:
        assert r["critical_path"] == [] and r["total_ns"] is None
        return
    segs = r["critical_path"]
    assert r["total_ns"] == r["end_ns"] - r["start_ns"]
    if r["total_ns"] == 0:
        assert segs == []
        return
    assert segs[0]["start_ns"] == r["start_ns"] and segs[-1]["end_ns"] == r["end_ns"]
    for a, b in itertools.pairwise(segs):
        assert a["end_ns"] == b["start_ns"]
    assert all(s["duration_ns"] > 0 for s in segs)
    assert sum(s["duration_ns"] for s in segs) == r["total_ns"]
    assert {s["kind"] for s in segs} <= {"run", "wait:listener", "wait:poll-lag", "wait:poll",
                                         "wait:child", "wait:module", "wait:unknown"}


def test_irregular_traffic_is_rarely_a_poll() -> None:
    """Random (Poisson) connects: no poll loop in 500 sequences of 5-60 connects."""
    rng = random.Random(7)
    found = 0
    for _ in range(500):
        n = rng.randint(5, 60)
        t = np.cumsum([rng.expovariate(1 / 100e6) for _ in range(n)]).astype(np.int64)
        found += bool(find_series(t))
    assert found <= 2


def test_regular_pollers_with_go_like_drift_are_found() -> None:
    rng = random.Random(3)
    found = 0
    for _ in range(200):
        n = rng.randint(5, 12)
        gaps = [2e9 * (1 + rng.gauss(0, 0.003)) for _ in range(n)]
        t = np.cumsum(gaps).astype(np.int64)
        s = find_series(t)
        found += bool(s) and len(s[0].indices) == n
    assert found >= 195
