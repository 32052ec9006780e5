"""Ends and starts on log lines get a process (issue 13): the recorded command's own output
lines (pid null: captured from its pipes) belong to the recorded command, or, when it is gone,
to the process of its tree closest to it; a critical path never has a segment without a
process unless it is wait:unknown."""

from __future__ import annotations

from typing import Any

from tests.builders import analyze_json, ms, trace
from tests.unit.test_analyzer import check_path, connect, exec_, exit_, fork, listen


def line(t: float, message: str, pid: int | None = None, source: str = "stderr") -> dict[str, Any]:
    return dict(ts_ns=ms(t), source=source, message=message, raw=message, pid=pid,
                time_from="arrival")


def daemon(wrapper_exits: bool = False) -> Any:
    """The recorded command (pid 10) starts a child daemon part (11) it waits on through a
    socket, runs two helpers, and prints "API ready" on stderr at 750 ms, long after listening
    at 60 ms. With wrapper_exits, 10 is a wrapper that exits at 100 ms, leaving 11 to print."""
    end10 = 100 if wrapper_exits else 900
    return trace(
        meta={"start_ns": 0, "end_ns": ms(1000), "command_pid": 10},
        process=[fork(0, 10, 1), exec_(1, 10, "daemon"),
                 fork(20, 11, 10), exec_(21, 11, "childd"),
                 fork(400, 12, 11 if wrapper_exits else 10), exec_(401, 12, "iptables"),
                 exit_(500, 12),
                 fork(510, 13, 11 if wrapper_exits else 10), exec_(511, 13, "nft"),
                 exit_(700, 13, comm="nft"),
                 exit_(end10, 10), exit_(950, 11)],
        socket=[listen(60, 10, 6443), listen(200, 11, "/run/childd.sock"),
                connect(100, 10, "/run/childd.sock", "enoent"),
                connect(300, 10 if not wrapper_exits else 11, "/run/childd.sock", "ok")],
        log=[line(750, "API ready"), line(800, "journal says hi", pid=11, source="journal:x")],
    )


def segments_have_processes(r: dict[str, Any]) -> None:
    for s in r["critical_path"]:
        assert s["pid"] is not None or s["kind"] == "wait:unknown", s
        assert s["pid"] != 0, s


def test_an_output_line_end_belongs_to_the_recorded_command() -> None:
    r = analyze_json(daemon(), end="log:API ready")
    assert r["end_reached"] and r["end_ns"] == ms(750)
    end = next(m for m in r["milestones"] if m["name"] == "end")
    assert (end["pid"], end["comm"]) == (10, "daemon")
    check_path(r)
    segments_have_processes(r)
    assert r["critical_path"][-1]["pid"] == 10
    # the walk went through the helpers the daemon waited for, not one "run" of nobody
    assert {s["pid"] for s in r["critical_path"]} >= {10, 13}


def test_a_log_end_walks_like_the_process_event_it_follows() -> None:
    # end on the last helper's exit (a process event) and on the log line after it: the same
    # path up to the helper's start; then the helper is the end's own run in one, a child the
    # daemon waited for in the other, followed by the daemon's run to the line
    by_exit = analyze_json(daemon(), end="exit:nft")
    by_log = analyze_json(daemon(), end="log:API ready")
    assert by_exit["end_ns"] == ms(700)
    for r in (by_exit, by_log):
        check_path(r)
    assert by_log["end_ns"] >= ms(200)  # no earlier than the last listen

    def key(s: dict[str, Any]) -> tuple[Any, ...]:
        return (s["start_ns"], s["end_ns"], s["kind"], s["pid"])

    assert [key(s) for s in by_log["critical_path"][:-2]] == [
        key(s) for s in by_exit["critical_path"][:-1]
    ]
    assert key(by_exit["critical_path"][-1]) == (ms(510), ms(700), "run", 13)
    assert [key(s) for s in by_log["critical_path"][-2:]] == [
        (ms(510), ms(700), "wait:child", 13),
        (ms(700), ms(750), "run", 10),
    ]


def test_when_the_command_is_gone_the_line_belongs_to_its_tree() -> None:
    r = analyze_json(daemon(wrapper_exits=True), end="log:API ready")
    end = next(m for m in r["milestones"] if m["name"] == "end")
    assert (end["pid"], end["comm"]) == (11, "childd")
    check_path(r)
    segments_have_processes(r)


def test_journal_lines_keep_their_own_pid_and_starts_get_one_too() -> None:
    r = analyze_json(daemon(), start="log:API ready", end="log:journal says")
    end = next(m for m in r["milestones"] if m["name"] == "end")
    assert end["pid"] == 11
    assert r["start_ns"] == ms(750) and r["end_ns"] == ms(800)
    segments_have_processes(r)


def test_without_a_recorded_command_an_output_line_has_no_process_and_no_pid_0() -> None:
    tr = daemon()
    tr.meta.pop("command_pid")
    r = analyze_json(tr, end="log:API ready")
    assert r["end_reached"]
    assert [(s["kind"], s["pid"]) for s in r["critical_path"]] == [("wait:unknown", None)]
    assert all(p["pid"] != 0 for p in r["processes"])
