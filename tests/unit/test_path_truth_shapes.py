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


def test_catch_ups_are_taken_at_their_slots_when_too_few_attempts_follow() -> None:
    # a CI run's shape (sweep `scm`: the exec'd acceptor started slowly): a fixed 100 ms
    # schedule, the 2nd attempt (97.9 ms) answered only at 309.5 ms, the two missed slots
    # retried at once (310.2, 310.8), then on schedule with one attempt 3 ms late. Two
    # attempts before the slow answer and four after it are each too few to be a series, so
    # nothing was found and the poll wait was lost. Taken at their slots (97.9 + 100, + 200),
    # the catch-ups make one schedule; being imputed they are no evidence of regularity.
    t = [ms(x) for x in (0, 97.9, 310.2, 310.8, 400.9, 497.9, 597.9, 698.0)]
    answered: list[int | None] = [None] * len(t)
    answered[1] = ms(309.5)
    assert polls.find_series(t) == []
    got = polls.find_series_answered(t, answered)
    assert [s.indices for s in got] == [list(range(len(t)))], [s.indices for s in got]
    assert abs(got[0].interval_ns - ms(100)) <= ms(1)
    # the same times without the slow answer: the early retries are nobody's schedule
    assert polls.find_series_answered(t, [None] * len(t)) == []


def test_a_ticker_that_drops_ticks_keeps_a_backlogged_first_attempt() -> None:
    # socket activation: the first attempt (0 ms) was accepted into the backlog and answered
    # at 437 ms, when the daemon had started; a ticker on the 100 ms grid that drops the ticks
    # it missed (Go's time.Ticker) retries at 500, then on schedule
    t = [ms(x) for x in (0, 500, 600, 700, 800)]
    answered: list[int | None] = [ms(437), ms(501), ms(601), ms(701), ms(801)]
    assert [s.indices for s in polls.find_series(t)] == [[1, 2, 3, 4]]
    got = polls.find_series_answered(t, answered)
    assert [s.indices for s in got] == [[0, 1, 2, 3, 4]], [s.indices for s in got]
    # a retry off the grid after the answer is not this loop's
    t_off = [ms(x) for x in (0, 473, 573, 673, 773)]
    assert [s.indices for s in polls.find_series_answered(t_off, answered)] == [[1, 2, 3, 4]]
    # nor is an early attempt whose answer came before the skipped tick (nothing was dropped)
    early: list[int | None] = [ms(150), ms(501), ms(601), ms(701), ms(801)]
    assert [s.indices for s in polls.find_series_answered(t, early)] == [[1, 2, 3, 4]]


def test_one_stalled_attempt_does_not_break_a_fixed_schedule() -> None:
    # a fresh-clone CI run's poller (a fixed 100 ms schedule): its 4th attempt came 6.2 ms
    # late (the client stalled), the 5th on time again: two odd gaps (106.2, 93.7 ms), so the
    # median of the gap errors was 4 % (> 2 %) and the loop was lost; all attempts but that
    # one lie on the grid
    t = [ms(x) for x in (432.1, 532.1, 632.2, 738.4, 832.1)]
    assert [s.indices for s in polls.find_series(t)] == [[0, 1, 2, 3, 4]]
    # two attempts off the grid are not one stall: no loop
    t2 = [ms(x) for x in (432.1, 532.1, 638.2, 738.4, 832.1)]
    assert polls.find_series(t2) == []


def test_a_stalled_last_attempt_ends_the_series() -> None:
    # a poller on a fixed 100 ms schedule, recorded with the CPUs taken in random real-time
    # bursts (a stand-in for host steal): its last attempt, the one the server answered
    # "ready", came 22.6 ms late (521.2 for 498.6). The series stopped at the attempt before:
    # the wait ended at a connect the server had answered "not ready"
    t = [ms(x) for x in (0, 98.6, 198.6, 298.6, 398.6, 521.2)]
    assert [s.indices for s in polls.find_series(t)] == [[0, 1, 2, 3, 4]]
    got = polls.find_series_answered(t, [None] * len(t))
    assert [s.indices for s in got] == [[0, 1, 2, 3, 4, 5]], [s.indices for s in got]
    # in the middle: late, then back on the grid
    t_mid = [ms(x) for x in (0, 100, 200, 300, 430, 500, 600)]
    got = polls.find_series_answered(t_mid, [None] * len(t_mid))
    assert [s.indices for s in got] == [list(range(7))], [s.indices for s in got]
    # a stall only delays: an attempt EARLY for its slot is not taken in, nor one more than
    # half an interval late, nor a late one after which the loop does not come back to its grid
    for tail in ((0, 100, 200, 300, 400, 478.0), (0, 100, 200, 300, 400, 551.0),
                 (0, 100, 200, 300, 400, 530, 660)):
        tt = [ms(x) for x in tail]
        got = polls.find_series_answered(tt, [None] * len(tt))
        assert [s.indices for s in got] == [[0, 1, 2, 3, 4]], (tail, [s.indices for s in got])


def test_stalls_before_and_inside_a_fixed_schedule() -> None:
    # the same stand-in for host steal: the 2nd attempt 18.6 ms late (118.6 for 98.6; the 1st
    # was refused before the server listened). The series began at the 3rd attempt, so the
    # wait began after the first answered connect
    t = [ms(x) for x in (0, 118.6, 198.6, 298.6, 398.6, 498.6)]
    assert [s.indices for s in polls.find_series(t)] == [[2, 3, 4, 5]]
    got = polls.find_series_answered(t, [None] * len(t))
    assert [s.indices for s in got] == [list(range(6))], [s.indices for s in got]
    # without an on-schedule attempt before it, a late one is not taken in (a connect just
    # before a loop is not its first attempt)
    got = polls.find_series_answered(t[1:], [None] * 5)
    assert [s.indices for s in got] == [[1, 2, 3, 4]], [s.indices for s in got]
    # two late attempts in one chain (the refused first 2 ms late: its connect resolved the
    # address first; the 4th 7.9 ms late): gap errors of 2-9 %, yet all but those two lie
    # on the grid. Nothing was found
    t2 = [ms(x) for x in (0, 98.0, 197.9, 305.8, 398.0, 498.0)]
    got = polls.find_series(t2)
    assert [s.indices for s in got] == [list(range(6))], [s.indices for s in got]
    # two EARLY attempts are not stalls: no loop
    t3 = [ms(x) for x in (0, 100.0, 192.1, 300.0, 398.0, 500.0)]
    assert polls.find_series(t3) == []


def test_a_stalled_retry_after_an_answer_keeps_one_series() -> None:
    # sched_slowpoll.py under the stand-in for steal: a loop that sleeps 100 ms after each
    # answer; the retry after the 822.0 ms answer came at 938.1 (16.1 ms late): two series
    # of 6 and 5 attempts, the wait split in two
    t = [ms(x) for x in (0, 100.2, 200.7, 387.3, 569.2, 739.3, 938.1, 1117.1, 1284.0, 1452.9,
                         1616.9)]
    answered: list[int | None] = [None, None] + [ms(x) for x in (
        287.2, 469.0, 639.2, 822.0, 1017.0, 1183.9, 1352.8, 1516.8)] + [None]
    got = polls.find_series_answered(t, answered)
    assert [s.indices for s in got] == [list(range(len(t)))], [s.indices for s in got]
    # 60 ms late (over half an interval) is not a stall of this loop: still two
    t2 = [*t[:6], ms(822.0 + 100 + 60), *t[7:]]
    got = polls.find_series_answered(t2, answered)
    assert len(got) == 2, [s.indices for s in got]


def test_a_backlogged_first_attempt_then_a_stalled_retry() -> None:
    # the sweep's `activate` under the stand-in: the first connect waited in the backlog
    # (answered at 354.8 ms), the ticker's next tick (400) came 18.2 ms late, then on the grid
    t = [ms(x) for x in (0, 418.2, 498.2, 598.3, 698.2, 798.2)]
    answered: list[int | None] = [ms(354.8), ms(420), ms(500), ms(600), ms(700), ms(800)]
    got = polls.find_series_answered(t, answered)
    assert [s.indices for s in got] == [list(range(6))], [s.indices for s in got]
    # an answer before the skipped ticks: nothing was dropped, the first is not this loop's
    early: list[int | None] = [ms(150), *answered[1:]]
    got = polls.find_series_answered(t, early)
    assert [s.indices for s in got] == [[2, 3, 4, 5]], [s.indices for s in got]


def test_a_backlogged_first_attempt_answered_just_before_the_tick() -> None:
    # the sweep's `activate`: the backlogged first attempt answered at 397.1 ms, the ticker's
    # next tick 1.2 ms later (398.3): the retry is right after the answer (a catch-up by
    # that reading) AND on the grid; it was not taken as the first's tick, so the backlogged
    # attempt was left out of the series
    t = [ms(x) for x in (0, 398.3, 498.3, 598.3, 698.3, 798.3, 898.3)]
    answered: list[int | None] = [ms(397.1)] + [x + ms(1) for x in t[1:]]
    got = polls.find_series_answered(t, answered)
    assert [s.indices for s in got] == [list(range(7))], [s.indices for s in got]


def test_a_series_whose_first_attempt_was_a_stalled_retry() -> None:
    # sched_slowpoll.py `late` under the stand-in: two refused attempts on the 100 ms grid,
    # the third answered slowly (296.0 ms), its retry 110.7 ms after that answer (10.7 ms
    # late), then one interval after each answer. The series began at that retry: the first
    # three attempts made a listener wait of their own
    t = [ms(x) for x in (0, 100.3, 201.1, 406.7, 577.2, 753.2, 934.5, 1093.4, 1282.9, 1475.2,
                         1635.4)]
    answered: list[int | None] = [None, None] + [ms(x) for x in (
        296.0, 476.9, 653.0, 834.3, 993.1, 1182.5, 1374.9, 1535.1)] + [None]
    got = polls.find_series_answered(t, answered)
    assert [s.indices for s in got] == [list(range(len(t)))], [s.indices for s in got]
    # without an attempt on the cadence before it, the attempt before a late first is not
    # taken in (a connect just before a loop)
    got = polls.find_series_answered(t[2:], answered[2:])
    assert [s.indices for s in got] == [list(range(1, len(t) - 2))], [s.indices for s in got]
