"""analyzer/sched.py: process states sum exactly to wall time, precedence, wakers, busy cores."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from tracer import schema
from tracer.analyzer.sched import STATES, SchedIndex, exact_split, states_between, waker_at

MS = 1_000_000


def _row(start: int, end: int, pid: int, tid: int, **ns: int) -> dict[str, Any]:
    vals = {f"{s}_ns": ns.get(s, 0) for s in STATES}
    if not ns:
        raise ValueError("give the ns per state")
    assert sum(vals.values()) == end - start
    state = next(iter(ns)) if len(ns) == 1 else "mixed"
    return {"start_ns": start, "end_ns": end, "pid": pid, "tid": tid, "state": state,
            "switches": 1, "exited": False, "origin": "bpf", **vals}


def _table(rows: list[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=schema.SCHED)


def _wake(ts: int, pid: int, tid: int, waker: str = "process", waker_pid: int | None = 99,
          idle_start: int | None = 0) -> dict[str, Any]:
    return {"ts_ns": ts, "pid": pid, "tid": tid, "idle_start_ns": idle_start,
            "idle_state": "sleep", "waker": waker, "waker_pid": waker_pid,
            "waker_tid": waker_pid, "waker_comm": "w", "irq": None, "irq_name": None,
            "softirq": None, "cpu": 0}


def test_single_thread_states_are_exact() -> None:
    t = _table([_row(0, 10 * MS, 1, 1, cpu=10 * MS),
                _row(10 * MS, 30 * MS, 1, 1, sleep=20 * MS),
                _row(30 * MS, 34 * MS, 1, 1, runqueue=4 * MS),
                _row(34 * MS, 40 * MS, 1, 1, io=6 * MS)])
    assert states_between(t, 1, 5 * MS, 36 * MS) == {
        "cpu": 5 * MS, "runqueue": 4 * MS, "io": 2 * MS, "sleep": 20 * MS, "other": 0,
        "steal": 0}


def test_outside_the_process_life_is_other() -> None:
    t = _table([_row(10 * MS, 20 * MS, 1, 1, cpu=10 * MS)])
    st = states_between(t, 1, 0, 30 * MS)
    assert st == {"cpu": 10 * MS, "runqueue": 0, "io": 0, "sleep": 0, "other": 20 * MS,
                  "steal": 0}
    assert states_between(t, 2, 0, 30 * MS)["other"] == 30 * MS  # unknown pid


def test_any_thread_on_cpu_wins_then_unknown_then_runqueue_io_sleep() -> None:
    t = _table([_row(0, 40 * MS, 1, 1, sleep=40 * MS),
                _row(0, 10 * MS, 1, 2, io=10 * MS),
                _row(10 * MS, 20 * MS, 1, 2, runqueue=10 * MS),
                _row(20 * MS, 30 * MS, 1, 2, other=10 * MS),
                _row(30 * MS, 40 * MS, 1, 2, cpu=10 * MS),
                _row(25 * MS, 35 * MS, 1, 3, runqueue=10 * MS)])
    assert states_between(t, 1, 0, 40 * MS) == {
        "io": 10 * MS, "runqueue": 10 * MS, "other": 10 * MS, "cpu": 10 * MS, "sleep": 0,
        "steal": 0}


def test_steal_ranks_below_cpu_and_above_every_off_cpu_state() -> None:
    """A cpu row's steal (the hypervisor did not run the vCPU the thread had) is the process's
    state unless another thread ran; a trace from before schema 1.4 (steal_ns null) reads 0."""
    t = _table([_row(0, 10 * MS, 1, 1, cpu=4 * MS, steal=6 * MS),
                _row(0, 10 * MS, 1, 2, runqueue=10 * MS)])
    assert states_between(t, 1, 0, 10 * MS) == {
        "cpu": 4 * MS, "steal": 6 * MS, "runqueue": 0, "io": 0, "sleep": 0, "other": 0}
    t = _table([_row(0, 10 * MS, 1, 1, cpu=4 * MS, steal=6 * MS),
                _row(0, 10 * MS, 1, 2, cpu=10 * MS)])
    assert states_between(t, 1, 0, 10 * MS)["steal"] == 0
    old = _table([_row(0, 10 * MS, 1, 1, cpu=10 * MS)]).drop_columns(["steal_ns"])
    old = old.append_column("steal_ns", pa.nulls(1, pa.int64()))
    assert states_between(old, 1, 0, 10 * MS)["cpu"] == 10 * MS


def test_mixed_rows_spread_evenly_and_combine_as_independent_threads() -> None:
    # one mixed thread: exactly its shares
    t = _table([_row(0, 10 * MS, 1, 1, cpu=3 * MS, sleep=7 * MS)])
    assert states_between(t, 1, 0, 5 * MS) == {"cpu": 1_500_000, "runqueue": 0, "io": 0,
                                                "sleep": 3_500_000, "other": 0, "steal": 0}
    # two: P(some thread on cpu) = 1 - 0.5 * 0.5
    t = _table([_row(0, 10 * MS, 1, 1, cpu=5 * MS, sleep=5 * MS),
                _row(0, 10 * MS, 1, 2, cpu=5 * MS, sleep=5 * MS)])
    st = states_between(t, 1, 0, 10 * MS)
    assert st["cpu"] == 7_500_000 and st["sleep"] == 2_500_000


@pytest.mark.parametrize("seed", range(30))
def test_states_always_sum_exactly_to_the_window(seed: int) -> None:
    rnd = random.Random(seed)
    rows = []
    for tid in range(1, rnd.randint(1, 6) + 1):
        t = rnd.randint(0, 5 * MS)
        for _ in range(rnd.randint(1, 30)):
            d = rnd.randint(1, 3 * MS)
            parts = [rnd.randint(0, 5) for _ in STATES]
            ns = dict(zip(STATES, exact_split(parts, d) if sum(parts) else [d, 0, 0, 0, 0]))
            rows.append(_row(t, t + d, 7, tid, **{k: v for k, v in ns.items() if v} or
                             {"cpu": d}))
            t += d + (rnd.randint(0, MS) if rnd.random() < 0.2 else 0)
    ix = SchedIndex(_table(rows))
    for _ in range(20):
        a = rnd.randint(0, 60 * MS)
        b = a + rnd.randint(0, 40 * MS)
        st = ix.states_between(7, a, b)
        assert sum(st.values()) == b - a
        assert min(st.values()) >= 0


def test_empty_and_reversed_windows() -> None:
    ix = SchedIndex(schema.SCHED.empty_table())
    assert not ix.available
    assert ix.states_between(1, 5, 5) == dict.fromkeys(STATES, 0)
    assert ix.states_between(1, 0, 7)["other"] == 7
    with pytest.raises(ValueError):
        ix.states_between(1, 5, 4)


def test_waker_and_idle_stretches() -> None:
    t = _table([_row(0, 5 * MS, 1, 1, cpu=5 * MS),
                _row(5 * MS, 305 * MS, 1, 1, sleep=300 * MS),
                _row(305 * MS, 306 * MS, 1, 1, runqueue=MS),
                _row(306 * MS, 310 * MS, 1, 1, cpu=4 * MS)])
    w = pa.Table.from_pylist([_wake(305 * MS, 1, 1, waker_pid=42, idle_start=5 * MS),
                              _wake(100 * MS, 5, 5, waker="timer", waker_pid=None)],
                             schema=schema.WAKEUP)
    ix = SchedIndex(t, w)
    got = ix.waker_at(1, 306 * MS)
    assert got is not None and got.waker_pid == 42 and got.other_process
    assert waker_at(t, w, 1, 306 * MS) == got
    assert ix.waker_at(1, 304 * MS) is None  # nothing recorded before it
    assert ix.waker_at(1, 400 * MS) is None  # too late to be the same stretch
    (s,) = ix.idle_stretches(1, 0, 310 * MS)
    assert (s.start_ns, s.end_ns, s.waker) == (5 * MS, 305 * MS, got)
    timer = SchedIndex(t, w).waker_at(5, 100 * MS)
    assert timer is not None and timer.kind == "timer" and not timer.other_process


def test_busy_cores_per_bucket() -> None:
    t = _table([_row(0, 20 * MS, 1, 1, cpu=20 * MS),
                _row(5 * MS, 15 * MS, 2, 2, cpu=10 * MS),
                _row(20 * MS, 40 * MS, 2, 2, cpu=5 * MS, sleep=15 * MS)])
    starts, busy = SchedIndex(t).busy_cores(0, 40 * MS)
    assert list(starts) == [0, 10 * MS, 20 * MS, 30 * MS]
    assert busy == pytest.approx([1.5, 1.5, 0.25, 0.25])


def test_exact_split() -> None:
    assert exact_split([1, 1, 1], 10) in ([4, 3, 3], [3, 4, 3], [3, 3, 4])
    assert sum(exact_split([0.1, 0.7, 0.2], 1_000_003)) == 1_000_003
    assert exact_split([0, 0], 5) == [0, 5]


def test_thread_buckets_split_each_thread_exactly() -> None:
    """Per-thread state time per bucket (the report's / export's thread tracks): a mixed row's
    states spread evenly over it; time a thread has no row is `other`."""
    from tests.builders import table
    from tests.unit.test_schedpath import _row

    rows = [_row(0, 100, 40, 40, cpu=100), _row(100, 200, 40, 40, sleep=100),
            _row(20, 100, 40, 41, sleep=80), _row(100, 200, 40, 41, cpu=30, runqueue=70),
            _row(0, 200, 50, 50, cpu=200)]
    ix = SchedIndex(table("sched", rows))
    edges = np.array([0, 50, 100, 150, 200], dtype=np.int64) * MS
    tids, ns = ix.thread_buckets(40, edges)
    assert tids.tolist() == [40, 41]
    cols = {s: STATES.index(s) for s in STATES}
    assert np.allclose(ns[0, :, cols["cpu"]], [50 * MS, 50 * MS, 0, 0])
    assert np.allclose(ns[0, :, cols["sleep"]], [0, 0, 50 * MS, 50 * MS])
    assert np.allclose(ns[1, :, cols["other"]], [20 * MS, 0, 0, 0])  # before its first row
    assert np.allclose(ns[1, :, cols["sleep"]], [30 * MS, 50 * MS, 0, 0])
    assert np.allclose(ns[1, :, cols["cpu"]], [0, 0, 15 * MS, 15 * MS])
    assert np.allclose(ns[1, :, cols["runqueue"]], [0, 0, 35 * MS, 35 * MS])
    assert np.allclose(ns.sum(axis=2), 50 * MS)  # every bucket of every thread, exactly
