"""Issue 29 from built tables: the three shapes the critical path got wrong.

1. the listener is not the acceptor: a process listens, another (its forked child, a daemon
   exec'd with the socket on fd 3 as systemd does) accepts; the wait's target is the acceptor
   (its states on the path), the listener is named, the walk goes into the listener before
   its listen;
2. (a parent that works before it waits: tests/unit/test_wakewalk.py)
3. slow answers split a poll: the cadence is also measured after each answer (scheduler data)
   and through catch-up retries of a fixed schedule: every attempt is in one series."""

from __future__ import annotations

from typing import Any

from tests.builders import ms, trace
from tests.unit.test_analyzer import check_path, connect, exec_, exit_, fork, listen
from tests.unit.test_schedpath import _row, _wake
from tracer.analyzer import analyze, polls

CLIENT, LISTENER, ACCEPTOR = 52, 50, 51
PORT = 7000


def _accept(t: float, pid: int, fd: int, peer_port: int) -> dict[str, Any]:
    return dict(ts_ns=ms(t - 0.2), ret_ns=ms(t), kind="accept", pid=pid, tid=pid, fd=fd,
                family="inet", addr="127.0.0.1", port=peer_port, endpoint=None, ret=9)


def _handoff(acceptor_fd: int | None, listener_fd: int = 5) -> Any:
    """The listener (not the recorded command) starts at 1 ms, works to 150 ms and listens on
    fd `listener_fd`, then forks the acceptor at 151 ms; the client (the recorded command)
    polls every 100 ms from 0: refused at 0 and 100, answered "not ready" 200-700 (accepted by
    the acceptor on fd `acceptor_fd`, 0.5 ms after each connect; None: no accepts recorded)."""
    procs = [fork(0, CLIENT, 1), exec_(0.5, CLIENT, "client"),
             fork(1, LISTENER, 1), exec_(1.5, LISTENER, "launcher"),
             fork(151, ACCEPTOR, LISTENER), exec_(152, ACCEPTOR, "daemon"),
             exit_(750, CLIENT)]
    sock = [connect(t, CLIENT, PORT, "refused") for t in (0.1, 100)]
    sock[0]["ts_ns"] = ms(0.1)
    lst = listen(150, LISTENER, PORT)
    lst["fd"] = listener_fd
    sock.append(lst)
    for k, t in enumerate(range(200, 701, 100)):
        sock.append(connect(t, CLIENT, PORT, "ok"))
        if acceptor_fd is not None:
            sock.append(_accept(t + 0.5, ACCEPTOR, acceptor_fd, 40000 + k))
    sched = [_row(1, 150, LISTENER, LISTENER, cpu=149), _row(150, 750, LISTENER, LISTENER,
                                                             sleep=600),
             _row(151, 750, ACCEPTOR, ACCEPTOR, cpu=500, sleep=99)]
    return trace(meta={"start_ns": 0, "end_ns": ms(800), "command_pid": CLIENT},
                 process=procs, socket=sock, sched=sched)


def _poll(a: Any) -> dict[str, Any]:
    polls_ = [w for w in a.waits if w["kind"] == "poll"]
    assert len(polls_) == 1, a.waits
    return polls_[0]  # type: ignore[no-any-return]


def test_an_inherited_listener_the_child_accepts_on_the_same_fd() -> None:
    a = analyze(_handoff(acceptor_fd=5))
    check_path(a.to_json())
    w = _poll(a)
    assert w["target"]["pid"] == ACCEPTOR and w["listener"]["pid"] == LISTENER, w
    kinds = [(s["kind"], s["pid"], s["start_ns"], s["end_ns"]) for s in a.critical_path]
    # before the listen the walk is in the listener (its startup was waited for); after it
    # the wait carries the ACCEPTOR's states
    assert ("run", LISTENER, ms(1), ms(150)) in kinds, kinds
    poll = next(s for s in a.critical_path if s["kind"] == "wait:poll")
    assert poll["states_of"]["pid"] == ACCEPTOR
    assert poll["states"]["cpu"] > 0 and poll["states"]["sleep"] < poll["duration_ns"]


def test_a_socket_moved_to_fd_3_is_matched_by_the_connections_it_returned() -> None:
    # systemd: the listener holds it on fd 7, the daemon accepts on fd 3
    a = analyze(_handoff(acceptor_fd=3, listener_fd=7))
    w = _poll(a)
    assert w["target"]["pid"] == ACCEPTOR and w["listener"]["pid"] == LISTENER, w


def test_without_accepts_the_listener_stays_the_target() -> None:
    a = analyze(_handoff(acceptor_fd=None))
    w = _poll(a)
    assert w["target"]["pid"] == LISTENER and "listener" not in w, w


SERVER, POLLER = 61, 60


def _slow_answers(sched_data: bool) -> Any:
    """A poller (the recorded command) sleeps 50 ms after each answer; the server (listening
    since 5 ms) answers its first five attempts late (60, 30, 80, 45, 70 ms: it is busy), then
    at once, "ready" at the 11th attempt. The poller's thread is woken by the server at each
    late answer and by a timer at the end of each sleep."""
    delays = [60, 30, 80, 45, 70, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3]
    t = [100.0]
    for d in delays[:-1]:
        t.append(t[-1] + d + 50)
    end = t[-1] + 1
    procs = [fork(0, POLLER, 1), exec_(0.5, POLLER, "poller"), fork(1, SERVER, 1),
             exec_(2, SERVER, "server"), exit_(end + 5, POLLER)]
    sock = [listen(5, SERVER, PORT)] + [connect(x, POLLER, PORT, "ok") for x in t]
    for r in sock[1:]:
        r["tid"] = POLLER
    wake = []
    for x, d in zip(t, delays):
        if d >= 1:
            wake.append(_wake(x + d, POLLER, x + 0.1, "process", SERVER, "server"))
        wake.append(_wake(x + d + 50 - 0.05, POLLER, x + d + 0.2, "timer"))
    tables: dict[str, Any] = {"process": procs, "socket": sock}
    if sched_data:
        tables["sched"] = [_row(0.5, end + 5, POLLER, POLLER, sleep=end + 4.5),
                           _row(2, end + 5, SERVER, SERVER, cpu=end + 3)]
        tables["wakeup"] = wake
    return trace(meta={"start_ns": 0, "end_ns": ms(end + 100), "command_pid": POLLER},
                 **tables), [ms(x) for x in t]


def test_slow_answers_stay_in_the_poll_series() -> None:
    tr, t = _slow_answers(sched_data=True)
    a = analyze(tr)
    check_path(a.to_json())
    w = _poll(a)
    assert w["attempts"] == len(t) and w["start_ns"] == t[0] and w["end_ns"] == t[-1], w
    assert w["interval_ns"] is not None and abs(w["interval_ns"] - ms(50)) <= ms(2), w
    seg = next(s for s in a.critical_path if s["kind"] == "wait:poll")
    assert (seg["start_ns"], seg["end_ns"]) == (t[0], t[-1])
    assert seg["states_of"]["pid"] == SERVER  # the late answers are the server's time


def test_without_answers_the_slow_attempts_are_left_out() -> None:
    tr, t = _slow_answers(sched_data=False)
    got = [w for w in analyze(tr).waits if w["kind"] == "poll"]
    assert all(w["attempts"] < len(t) for w in got), got  # the old reading: a split series


def test_a_fixed_schedule_catches_up_after_a_late_answer() -> None:
    # every 100 ms on a schedule; the answer to the 4th attempt (300 ms) came at 574.6 ms,
    # so the 5th and 6th attempts (due 400, 500) were made at once after it, then on schedule
    t = [ms(x) for x in (0, 100, 200, 300, 575.0, 575.5, 600, 700, 800, 900, 1000)]
    answered: list[int | None] = [None] * len(t)
    answered[3] = ms(574.6)
    assert [len(s.indices) for s in polls.find_series(t)] != [len(t)]
    got = polls.find_series_answered(t, answered)
    assert [s.indices for s in got] == [list(range(len(t)))], [s.indices for s in got]
    assert got[0].interval_ns == ms(100)
    # without the late answer the early retries are not the loop's
    assert [s.indices for s in polls.find_series_answered(t, [None] * len(t))] == \
        [s.indices for s in polls.find_series(t)]
