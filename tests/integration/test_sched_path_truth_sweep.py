"""Issue 29's sweep: the truth tests' workloads in variants, each against its own truth.

* who accepts (sched_handoff.py through sched_poller.py, a spinning server): `scm` (the
  socket passed over SCM_RIGHTS to an exec'd child, another fd number), `thread` (another
  thread of the listening process accepts: the listener IS the target), `forkfirst` (fork
  before listen: the child listens and accepts), `activate` (systemd socket activation,
  `Accept=no`: the socket listens before the poller starts and the daemon is started only
  when a connection is pending, so the poller's FIRST connect succeeds at once and waits,
  connected, in the backlog until the daemon has started and answers; the poller's ticker
  drops the ticks it missed meanwhile, as Go's time.Ticker does);
* slow answers (sched_slowpoll.py): over a unix socket; answers later than the interval
  (150 ms of work between answers, the poller retries 100 ms after each answer).
Bounds as in test_sched_acceptor_truth.py and test_sched_slow_poll_truth.py."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.test_sched_acceptor_truth import record_handoff
from tests.integration.test_sched_path_truth import _poll_segment
from tests.integration.test_sched_slow_poll_truth import check_one_series, record_slowpoll
from tracer.report.text import render

pytestmark = pytest.mark.bpf


@pytest.mark.parametrize("handoff", ["scm", "thread", "forkfirst", "activate"])
def test_the_target_is_whoever_accepted(handoff: str, tmp_path: Any) -> None:
    a, truth = record_handoff(tmp_path, handoff, "spin")
    t = truth["spin"]
    polls = [w for w in a.waits if w["kind"] == "poll"]
    assert len(polls) == 1, a.waits
    w = polls[0]
    assert w["target"]["pid"] == t["pid"], (w, t)
    if handoff == "thread":  # one process listened and accepted
        assert t["pid"] == t["listener_pid"] and "listener" not in w, w
    elif handoff == "forkfirst":  # the child listened itself
        assert "listener" not in w, w
    else:
        assert w["listener"]["pid"] == t["listener_pid"], w
    if handoff == "activate":  # every attempt in the one series, the backlogged first too
        assert w["attempts"] == len(t["answers"]), (w, t["answers"], render(a))
    st = _poll_segment(a, t)["states"]
    if handoff in ("scm", "activate"):  # the exec'd daemon's startup is inside the wait
        assert 0.9 * t["cpu_ns"] <= st["cpu"] <= 1.1 * t["proc_cpu_ns"], (st, t, render(a))
    else:
        assert abs(st["cpu"] - t["cpu_ns"]) <= 0.10 * t["cpu_ns"], (st, t, render(a))


@pytest.mark.parametrize("variant", ["unix", "late"])
def test_slow_answers_in_one_series(variant: str, tmp_path: Any) -> None:
    a, truth = record_slowpoll(tmp_path, unix=variant == "unix",
                               chunk_ms=150 if variant == "late" else None)
    check_one_series(a, truth)
    job = truth["job"]
    seg = [s for s in a.critical_path if s["kind"] == "wait:poll"]
    assert len(seg) == 1 and seg[0]["states_of"]["pid"] == job["pid"], render(a)
    assert abs(seg[0]["states"]["cpu"] - job["cpu_ns"]) <= 0.10 * job["cpu_ns"], (seg, job)
