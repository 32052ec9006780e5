"""Scope: the recorded command's process tree vs everything in a system-wide trace."""

from __future__ import annotations

from typing import Any

import pytest

from tests.builders import analyze_json, ms, trace
from tests.unit.test_analyzer import connect, exec_, exit_, fork, listen, waits_of
from tracer._errors import UsageError
from tracer.analyzer import analyze


def system(command_pid: int | None = 10) -> Any:
    """The command (10) forks 12, which retries :8080 until a FOREIGN daemon (60) listens;
    meanwhile an unrelated client (50) retries :9000 until another unrelated server (51) does."""
    meta: dict[str, Any] = {"start_ns": 0, "end_ns": ms(2000)}
    if command_pid is not None:
        meta["command_pid"] = command_pid
    sock = [connect(10 + 100 * i, 12, 8080, "refused" if i < 4 else "ok") for i in range(5)]
    sock += [connect(20 + 100 * i, 50, 9000, "refused" if i < 6 else "ok") for i in range(7)]
    sock += [listen(350, 60, 8080), listen(580, 51, 9000)]
    return trace(
        meta=meta,
        process=[fork(0, 10, 1), exec_(1, 10, "sh"), fork(2, 12, 10), exec_(3, 12, "client"),
                 fork(5, 60, 1, "daemon"), exec_(6, 60, "daemon"),
                 fork(7, 50, 1, "other"), fork(8, 51, 1, "othersrv"),
                 exit_(900, 12), exit_(950, 10), exit_(960, 50), exit_(970, 51)],
        socket=sorted(sock, key=lambda r: r["ts_ns"]),
    )


def test_default_scope_is_the_tree_and_foreign_listener_stays_a_target() -> None:
    t = system()
    r = analyze_json(t)
    assert r["scope"] == {"mode": "tree", "root": {"pid": 10, "comm": "sh", "key": f"10@{ms(0)}"},
                          "processes": 2, "left_out": r["scope"]["left_out"]}
    assert r["scope"]["left_out"] >= 3
    (w,) = waits_of(r, "listener")
    assert w["waiter"]["pid"] == 12 and w["target"]["pid"] == 60
    procs = {p["pid"]: p for p in r["processes"]}
    assert procs[60]["in_scope"] is False and procs[12]["in_scope"] is True
    assert 50 not in procs and 51 not in procs
    assert r["counts"]["processes"] == 2 and r["counts"]["connects"] == 5
    # evidence row numbers still index the trace's own (unfiltered) socket table
    pids = t.table("socket")["pid"].to_pylist()
    assert {pids[i] for i in w["evidence"]["socket"]} == {12, 60}


def test_scope_all_shows_every_process() -> None:
    r = analyze_json(system(), scope="all")
    assert r["scope"]["mode"] == "all" and r["scope"]["left_out"] == 0
    assert sorted(w["waiter"]["pid"] for w in waits_of(r, "listener")) == [12, 50]
    assert {50, 51, 60} <= {p["pid"] for p in r["processes"]}


def test_without_command_pid_auto_is_all_and_tree_is_a_usage_error() -> None:
    assert analyze_json(system(None))["scope"]["mode"] == "all"
    with pytest.raises(UsageError, match="command_pid"):
        analyze_json(system(None), scope="tree")
    with pytest.raises(UsageError, match="scope"):
        analyze_json(system(), scope="mine")


def test_report_rows_follow_the_scope() -> None:
    t = system()
    scoped = analyze(t).views.connects
    assert set(scoped["pid"]) == {12}
    assert set(analyze(t, scope="all").views.connects["pid"]) == {12, 50}
    # the foreign listener is shown: it is what the tree waited for
    assert set(analyze(t).views.listens["pid"]) == {60}


def test_udp_connects_are_not_waits_but_failed_tcp_before_syn_are() -> None:
    """A resolver connect()s a UDP socket to :53 every 100 ms (ok, no handshake): not a poll. A
    TCP client whose connects fail before a SYN (tcp false, unreachable) still waits."""
    def udp(t: float) -> dict[str, Any]:
        r = connect(t, 10, 53, "ok", addr="10.0.0.2")
        r.update(tcp=False, ret=0)
        return r

    def early_fail(t: float) -> dict[str, Any]:
        r = connect(t, 12, 8080, "unreachable")
        r.update(tcp=False, ret=-101)
        return r

    sock = [udp(10 + 100 * i) for i in range(8)]
    sock += [early_fail(20 + 100 * i) for i in range(3)] + [connect(320, 12, 8080, "ok")]
    sock.append(listen(300, 60, 8080))
    t = trace(
        meta={"start_ns": 0, "end_ns": ms(2000), "command_pid": 10},
        process=[fork(0, 10, 1), exec_(1, 10, "sh"), fork(2, 12, 10), exec_(3, 12, "client"),
                 fork(5, 60, 10, "daemon"), exit_(900, 12), exit_(950, 10)],
        socket=sorted(sock, key=lambda r: r["ts_ns"]),
    )
    r = analyze_json(t)
    assert not [w for w in r["waits"] if w["endpoint"] == "10.0.0.2:53"]
    (w,) = [w for w in r["waits"] if w["endpoint"] == "127.0.0.1:8080"]
    assert w["kind"] == "listener" and w["outcomes"] == {"ok": 1, "unreachable": 3}
    # the same resolver traffic over TCP would be a poll loop: the test can fail
    for row in sock[:8]:
        row.update(tcp=True)
    tcp = trace(meta=t.meta, process=[fork(0, 10, 1), exec_(1, 10, "sh")],
                socket=sorted(sock[:8], key=lambda r: r["ts_ns"]))
    assert [w["kind"] for w in analyze_json(tcp)["waits"]] == ["poll"]


def test_poll_loop_is_not_anchored_on_a_fetch_just_before_it() -> None:
    """k3s fetches certificates from :6443, then its /readyz poller starts (every 200 ms): the
    last fetch, 12 ms before the first poll, must not pass for the loop's first attempt."""
    fetches = [connect(t, 10, 6443, "ok") for t in (100, 114, 188)]
    loop = [connect(200 + 200 * i, 10, 6443, "ok") for i in range(6)]
    t = trace(meta={"start_ns": 0, "end_ns": ms(2000), "command_pid": 10},
              process=[fork(0, 10, 1), exec_(1, 10, "k3s-server")],
              socket=fetches + loop + [listen(50, 10, 6443)])
    (w,) = waits_of(analyze_json(t), "poll")
    assert w["attempts"] == 6
    assert w["first_attempt_ns"] == ms(200) and w["ended_ns"] == ms(1200)
