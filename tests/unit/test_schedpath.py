"""Scheduler states on the critical path (issues 15 and 17) from built sched/wakeup tables:
run segments carry their process's states, poll/listener waits their target's, each summing
EXACTLY to the segment; the text's breakdown, composition and poll one-liner; the cpu section;
no sched data -> no new keys at all."""

from __future__ import annotations

from typing import Any

from tests.builders import ms, trace
from tests.unit.test_analyzer import server_client
from tracer.analyzer import analyze
from tracer.analyzer.sched import STATES
from tracer.report.text import render


def _row(start: float, end: float, pid: int, tid: int, **state_ms: float) -> dict[str, Any]:
    ns = {f"{s}_ns": ms(state_ms.get(s, 0)) for s in STATES}
    assert sum(ns.values()) == ms(end) - ms(start)
    state = next(iter(state_ms)) if len(state_ms) == 1 else "mixed"
    return {"start_ns": ms(start), "end_ns": ms(end), "pid": pid, "tid": tid, "state": state,
            "switches": 1, "exited": False, "origin": "bpf", **ns}


def _wake(t: float, pid: int, idle_start: float, waker: str, waker_pid: int | None = None,
          comm: str | None = None) -> dict[str, Any]:
    return {"ts_ns": ms(t), "pid": pid, "tid": pid, "idle_start_ns": ms(idle_start),
            "idle_state": "sleep", "waker": waker, "waker_pid": waker_pid,
            "waker_tid": waker_pid, "waker_comm": comm, "cpu": 0}


def _with_sched(server_sleeps: bool) -> Any:
    """server_client(3): the server (pid 11) starts at 2 ms and listens at 450 ms; the client
    (12) polls until 810 ms, its poll answered "not ready" over [510, 810]. The server's own
    timeline: spin to 300, runqueue to 350, disk I/O to 450; then either spins (busy) through
    the not-ready stretch or sleeps [520, 800] on a timer."""
    base = server_client(client_polls_after_ok=3)
    srv = [_row(3, 300, 11, 11, cpu=297), _row(300, 350, 11, 11, runqueue=50),
           _row(350, 450, 11, 11, io=100)]
    wake = []
    if server_sleeps:
        srv += [_row(450, 520, 11, 11, cpu=60, runqueue=10), _row(520, 800, 11, 11, sleep=280),
                _row(800, 3000, 11, 11, cpu=2200)]
        wake.append(_wake(800, 11, 520, "timer"))
    else:
        srv += [_row(450, 810, 11, 11, cpu=300, io=60), _row(810, 3000, 11, 11, sleep=2190)]
    cli = [_row(5, 3000, 12, 12, cpu=5, sleep=2990), _row(1, 3000, 10, 10, sleep=2999)]
    tables = {k: base.table(k).to_pylist() for k in ("process", "socket")}
    return trace(meta=base.meta, sched=srv + cli, wakeup=wake, **tables)


def test_run_and_target_states_sum_exactly_to_each_segment() -> None:
    r = analyze(_with_sched(server_sleeps=False)).to_json()
    segs = {(s["kind"], s["pid"], s["start_ns"]): s for s in r["critical_path"]}
    for s in r["critical_path"]:
        if s["kind"] in ("run", "wait:poll", "wait:poll-lag", "wait:listener"):
            assert set(s["states"]) == set(STATES)
            assert sum(s["states"].values()) == s["duration_ns"]
    run = segs[("run", 11, ms(2))]  # the server's startup, 2 -> 450 ms
    assert run["states_of"]["pid"] == 11
    # 2-3 ms: no thread observed yet -> other
    assert run["states"] == {"cpu": ms(297), "runqueue": ms(50), "io": ms(100), "sleep": 0,
                             "other": ms(1), "steal": 0}
    poll = segs[("wait:poll", 12, ms(510))]  # the waiter is the client; states are the server's
    assert poll["states_of"]["pid"] == 11 and poll["duration_ns"] == ms(300)
    assert poll["states"]["cpu"] + poll["states"]["io"] == ms(300)
    lag = segs[("wait:poll-lag", 12, ms(450))]
    assert lag["states_of"]["pid"] == 11 and sum(lag["states"].values()) == ms(60)
    text = render(analyze(_with_sched(server_sleeps=False)))
    assert "\n  path: cpu " in text
    assert "note: server was on-CPU 83 % and in disk I/O 17 % while answering not-ready" in text
    assert "server[11]: cpu 83.3%, io 16.7%" in text
    cpu = r["cpu"]
    assert [p["pid"] for p in cpu["processes"]][:2] == [11, 12]
    assert cpu["busy_cores"]["bucket_ns"] == ms(10)
    assert len(cpu["busy_cores"]["cores"]) == len(cpu["busy_cores"]["start_ns"])


def test_a_sleeping_target_says_what_woke_it() -> None:
    a = analyze(_with_sched(server_sleeps=True))
    (poll,) = [s for s in a.critical_path if s["kind"] == "wait:poll"]
    assert poll["states"]["sleep"] == ms(280) and sum(poll["states"].values()) == ms(300)
    assert poll["woken_by"][0]["kind"] == "timer"
    assert poll["woken_by"][0]["idle_ns"] == ms(280)
    assert ("note: server was asleep 93 % while answering not-ready; woken by a timer "
            "(1x, longest idle 280.0 ms)") in render(a)


def test_no_sched_data_no_new_keys() -> None:
    r = analyze(server_client(client_polls_after_ok=3)).to_json()
    assert "cpu" not in r
    assert all("states" not in s and "states_of" not in s for s in r["critical_path"])
    assert "\n  path: " not in render(analyze(server_client(client_polls_after_ok=3)))


def test_report_table_gets_a_states_column_only_with_sched_data() -> None:
    from tracer.report import model, tables

    a = analyze(_with_sched(server_sleeps=True))
    f = {"total_ns": a.total_ns, "start_ns": a.start_ns}
    table = tables.critical_path_table(model.segments(a), f)  # type: ignore[arg-type]
    assert "scheduler states" in str(table)
    assert "server[11]: cpu 6% · sleep 93%" in str(table)
    plain = analyze(server_client(client_polls_after_ok=3))
    table = tables.critical_path_table(model.segments(plain), f)  # type: ignore[arg-type]
    assert "scheduler states" not in str(table)
