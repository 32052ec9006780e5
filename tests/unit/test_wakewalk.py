"""Issue 15 item 3 from built sched/wakeup tables: an idle stretch of the process on the path
ended by ANOTHER process's wakeup is a `wait:wakeup` segment in the waker (the walk follows the
waker back from the wakeup instant to the stretch's start); explicit waits keep precedence;
child waits are observed (woken by the exit) or dropped (the parent kept running); disk I/O
and timer sleeps are not followed; without sched data nothing changes."""

from __future__ import annotations

from typing import Any

from tests.builders import ms, trace
from tests.unit.test_analyzer import check_path, exec_, exit_, fork
from tests.unit.test_schedpath import _row, _wake
from tracer.analyzer import analyze
from tracer.report.text import render

CLIENT, REPLIER, BUSY_CHILD, WAITED_CHILD = 10, 20, 30, 31


def _processes() -> list[dict[str, Any]]:
    return [fork(0, CLIENT, 1), exec_(1, CLIENT, "client"),
            fork(0.5, REPLIER, 1), exec_(0.6, REPLIER, "replier"),
            fork(410, BUSY_CHILD, CLIENT), exec_(411, BUSY_CHILD, "busychild"),
            exit_(450, BUSY_CHILD),
            fork(590, WAITED_CHILD, CLIENT), exec_(591, WAITED_CHILD, "helper"),
            exit_(700, WAITED_CHILD), exit_(800, CLIENT)]


def _sched(replier_io: bool = False, waker: str = "process") -> Any:
    """The client (the recorded command) runs to 100 ms, sleeps until the replier (not its
    child) wakes it at 400 ms, runs (a child runs 410-450 ms meanwhile: not waited for), forks
    a helper at 590 ms and sleeps until the helper's exit wakes it (at 700.01 ms)."""
    client_idle = {"io": 300} if replier_io else {"sleep": 300}
    sched = [
        _row(0.01, 100, CLIENT, CLIENT, cpu=99.99), _row(100, 400, CLIENT, CLIENT, **client_idle),
        _row(400, 600, CLIENT, CLIENT, cpu=200), _row(600, 700.01, CLIENT, CLIENT, sleep=100.01),
        _row(700.01, 800, CLIENT, CLIENT, cpu=99.99),
        _row(0.5, 99, REPLIER, REPLIER, sleep=98.5), _row(99, 399, REPLIER, REPLIER, cpu=300),
        _row(399, 3000, REPLIER, REPLIER, sleep=2601),
        _row(410, 450, BUSY_CHILD, BUSY_CHILD, cpu=40),
        _row(590, 700, WAITED_CHILD, WAITED_CHILD, cpu=110),
    ]
    wake = [_wake(99, REPLIER, 0.5, "process", CLIENT, "client"),
            _wake(400, CLIENT, 100, waker, REPLIER if waker == "process" else None, "replier"),
            _wake(700.01, CLIENT, 600, "process", WAITED_CHILD, "helper")]
    if replier_io:
        wake[1]["idle_state"] = "io"
    return trace(meta={"start_ns": 0, "end_ns": ms(3000), "command_pid": CLIENT},
                 process=_processes(), sched=sched, wakeup=wake)


def _path(a: Any) -> list[tuple[str, int | None, int, int]]:
    return [(s["kind"], s["pid"], s["start_ns"], s["end_ns"]) for s in a.critical_path]


def test_the_walk_continues_in_the_waker_and_returns_at_the_stretch_start() -> None:
    a = analyze(_sched())
    check_path(a.to_json())
    assert _path(a) == [
        ("run", CLIENT, ms(1), ms(100)),
        ("wait:wakeup", REPLIER, ms(100), ms(400)),  # the replier's work the client slept on
        ("run", CLIENT, ms(400), ms(600)),  # the busy child (410-450) is not waited for
        # explicit child wait keeps precedence; it starts where the client fell asleep (600 ms),
        # not at the fork (590 ms): the client ran meanwhile (issue 29)
        ("wait:child", WAITED_CHILD, ms(600), ms(700)),
        ("run", CLIENT, ms(700), ms(800)),
    ]
    wk = a.critical_path[1]
    assert wk["wakeup"]["woken"]["pid"] == CLIENT
    assert (wk["wakeup"]["waker_pid"], wk["wakeup"]["waker_comm"]) == (REPLIER, "replier")
    assert (wk["wakeup"]["ts_ns"], wk["wakeup"]["idle_ns"]) == (ms(400), ms(300))
    assert wk["states_of"]["pid"] == REPLIER  # the waker's states
    assert wk["states"]["cpu"] == ms(299) and wk["states"]["sleep"] == ms(1)
    assert "woke client[10] after 300.0 ms asleep" in wk["label"]
    assert "wait:wakeup" in render(a)
    kids = {w["target"]["pid"]: w for w in a.waits if w["kind"] == "child"}
    assert set(kids) == {WAITED_CHILD}  # observed; the busy child's wait is dropped
    assert "observed" in kids[WAITED_CHILD]["reason"]


def test_without_sched_data_the_walk_is_the_old_one() -> None:
    tr = trace(meta={"start_ns": 0, "end_ns": ms(3000), "command_pid": CLIENT},
               process=_processes())
    a = analyze(tr)
    assert "wait:wakeup" not in {s["kind"] for s in a.critical_path}
    assert all("wakeup" not in s and "states" not in s for s in a.critical_path)
    # the inferred child wait for the busy child is still there (no evidence against it)
    kids = {w["target"]["pid"] for w in a.waits if w["kind"] == "child"}
    assert kids == {BUSY_CHILD, WAITED_CHILD}


def test_disk_io_and_timer_wakeups_are_not_followed() -> None:
    for tr in (_sched(replier_io=True), _sched(waker="timer")):
        a = analyze(tr)
        assert REPLIER not in {s["pid"] for s in a.critical_path}, _path(a)
        assert _path(a)[0] == ("run", CLIENT, ms(1), ms(600))  # its child wait from 600 ms


def test_top_blockers_fsync_totals_and_wakeup_edges() -> None:
    tr = _sched()
    rows = {k: tr.table(k).to_pylist() for k in ("process", "sched", "wakeup")}
    sync = [{"ts_ns": ms(t), "end_ns": ms(t + d), "kind": k, "pid": CLIENT, "tid": CLIENT,
             "comm": "client", "ret": 0}
            for t, d, k in ((420, 30, "fsync"), (460, 10, "fdatasync"), (480, 5, "fsync"))]
    sync.append({"ts_ns": ms(430), "end_ns": ms(431), "kind": "request", "pid": 99, "tid": 99,
                 "bytes": 4096, "rwbs": "W"})
    a = analyze(trace(meta=tr.meta, blockio=sync, **rows))
    b = a.sections["blockers"]
    assert b["fsync"] == [{"pid": CLIENT, "comm": "client", "calls": 3, "total_ns": ms(45),
                           "max_ns": ms(30), "by_kind": {"fdatasync": 1, "fsync": 2}}]
    edges = {(e["waker_pid"], e["woken_pid"]): e for e in b["wakeups"]}
    # the replier -> client edge ended 300 ms of sleep, all of it on the critical path
    e = edges[(REPLIER, CLIENT)]
    assert (e["count"], e["idle_ns"], e["path_ns"]) == (1, ms(300), ms(300))
    assert b["wakeups"][0] == e  # the longest first
    assert edges[(WAITED_CHILD, CLIENT)]["idle_ns"] == ms(100.01)
    text = render(a)
    assert "fsync   client[10]: 1 fdatasync, 2 fsync, 45.0 ms in total, longest 30.0 ms" in text
    assert ("wakeup  replier[20] -> client[10]: 1x, ended 300.0 ms idle, longest 300.0 ms; "
            "on the critical path 300.0 ms") in text
    # without sched data: no section
    plain = analyze(trace(meta=tr.meta, process=rows["process"]))
    assert "blockers" not in plain.to_json() and "Top blockers" not in render(plain)


def test_a_child_whose_exit_woke_a_parent_that_looked_active_becomes_a_child_wait() -> None:
    """The no-activity rule rejects the helper's wait (the parent forked another child while
    the helper ran); the helper's exit woke the parent: with sched data it is a child wait."""
    tr = _sched()
    procs = tr.table("process").to_pylist()
    procs += [fork(650, 32, CLIENT), exec_(650.1, 32, "other"), exit_(651, 32)]
    procs.sort(key=lambda r: r["ts_ns"])
    rows = {k: tr.table(k).to_pylist() for k in ("sched", "wakeup")}
    plain = analyze(trace(meta=tr.meta, process=procs))
    assert WAITED_CHILD not in {w["target"]["pid"] for w in plain.waits if w["kind"] == "child"}
    a = analyze(trace(meta=tr.meta, process=procs, **rows))
    kids = {w["target"]["pid"]: w for w in a.waits if w["kind"] == "child"}
    assert "woken by the child's exit (observed)" in kids[WAITED_CHILD]["reason"]
    # from the client's sleep (600 ms), not the fork (590 ms): it ran meanwhile (issue 29)
    assert ("wait:child", WAITED_CHILD, ms(600), ms(700)) in _path(a), _path(a)


PARENT, KID_A, KID_B = 40, 41, 42


def _parent_works_before_it_waits(sched_data: bool = True) -> Any:
    """Issue 29, shape 2: the parent forks two children at 10 ms, runs its own work until
    610 ms (cpu and runqueue: the children compete), then sleeps in wait: KID_A's exit wakes it
    at 800 ms, it runs 1 ms and sleeps again until KID_B's exit wakes it at 900 ms."""
    procs = [fork(0, PARENT, 1), exec_(1, PARENT, "parent"),
             fork(10, KID_A, PARENT), fork(10.5, KID_B, PARENT),
             exit_(800, KID_A), exit_(900, KID_B), exit_(950, PARENT)]
    sched = [_row(1, 310, PARENT, PARENT, cpu=309), _row(310, 610, PARENT, PARENT, cpu=150,
                                                         runqueue=150),
             _row(610, 800.01, PARENT, PARENT, sleep=190.01),
             _row(800.01, 801, PARENT, PARENT, cpu=0.99),
             _row(801, 900.01, PARENT, PARENT, sleep=99.01),
             _row(900.01, 950, PARENT, PARENT, cpu=49.99),
             _row(10, 800, KID_A, KID_A, cpu=500, runqueue=290),
             _row(10.5, 900, KID_B, KID_B, cpu=600, runqueue=289.5)]
    wake = [_wake(800.01, PARENT, 610, "process", KID_A, "kid"),
            _wake(900.01, PARENT, 801, "process", KID_B, "kid")]
    tables: dict[str, Any] = {"process": procs}
    if sched_data:
        tables.update(sched=sched, wakeup=wake)
    return trace(meta={"start_ns": 0, "end_ns": ms(1000), "command_pid": PARENT}, **tables)


def test_a_child_wait_starts_where_the_parent_began_to_sleep() -> None:
    a = analyze(_parent_works_before_it_waits())
    check_path(a.to_json())
    assert _path(a) == [
        ("run", PARENT, ms(1), ms(610)),  # its own work, with its states
        ("wait:child", KID_A, ms(610), ms(800)),  # from the sleep the exit ended
        ("run", PARENT, ms(800), ms(801)),
        ("wait:child", KID_B, ms(801), ms(900)),  # KID_B's earlier life is not waited for
        ("run", PARENT, ms(900), ms(950)),
    ]
    own = a.critical_path[0]
    assert own["states"]["cpu"] == ms(459) and own["states"]["runqueue"] == ms(150)
    starts = {w["target"]["pid"]: w["start_ns"] for w in a.waits if w["kind"] == "child"}
    assert starts == {KID_A: ms(610), KID_B: ms(801)}


def test_without_sched_data_a_child_wait_is_still_the_childs_life() -> None:
    a = analyze(_parent_works_before_it_waits(sched_data=False))
    check_path(a.to_json())
    starts = {w["target"]["pid"]: w["start_ns"] for w in a.waits if w["kind"] == "child"}
    # inferred from inactivity: KID_A's life holds the fork of KID_B (activity), so only
    # KID_B's wait is found, and it is the child's whole life
    assert starts == {KID_B: ms(10.5)}



def test_a_child_seen_to_exit_before_its_start_does_not_stop_the_analysis() -> None:
    # a lab boot (TCG VM, 2026-12-07): two child waits whose start (a process first seen in
    # /proc, its starttime in clock ticks) lay 6.5 and 7.7 ms after the child's recorded
    # exit; the child-wait check raised "t1 before t0" and the boot run had no report
    from tracer.analyzer import tree, wakewalk
    from tracer.analyzer.sched import SchedIndex
    from tracer.analyzer.waits import Wait

    t = trace(meta={"start_ns": 0, "end_ns": ms(1000), "command_pid": PARENT},
              process=[fork(0, PARENT, 1), exec_(1, PARENT, "parent"), fork(10, KID_A, PARENT),
                       exit_(800, KID_A), exit_(950, PARENT)],
              sched=[_row(1, 950, PARENT, PARENT, cpu=100, sleep=849)])  # no wakeups
    procs = tree.build(t)
    parent = next(p.idx for p in procs.procs if p.pid == PARENT)
    kid = next(p.idx for p in procs.procs if p.pid == KID_A)
    w = Wait(kind="child", waiter=parent, start_ns=ms(806.5), end_ns=ms(800), target=kid)
    kept = wakewalk.observe_children([w], SchedIndex.from_trace(t), procs)
    assert all(x.kind == "child" for x in kept)
