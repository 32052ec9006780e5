"""What-if engine on a synthetic startup analysed by the real analyzer (hand-computed answers).

sh[10] (the recorded command, exec at 1 ms) forks server[11] at 2 ms and client[12] at 4 ms, then
waits for the client and exits at 420 ms. server runs helper[13] 5 -> 205 ms, then prep[14]
206 -> 306 ms, then its own work to its listen on :8080 at 350 ms. client tries :8080 every 100 ms
from 10 ms (refused at 10..310, ok at 410), exits at 415. logger[16] (a side job of sh, 3 -> 50 ms)
is on no path; retry[15] retries :9090 (refused 20, 70, ok 120; nobody in the trace listens).
Recorded: start 1 ms, end 420 ms (sh's exit), the listen noticed 60 ms late.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from tests.builders import ms, trace
from tests.unit.test_analyzer import connect, exec_, exit_, fork, listen
from tracer._errors import UsageError
from tracer.analyzer import analyze
from tracer.analyzer.model import Analysis
from tracer.cli import main
from tracer.whatif import parse, predict, suggest, to_json

MS = 1_000_000


def planted() -> Analysis:
    sock = [connect(10 + 100 * i, 12, 8080, "refused" if i < 4 else "ok") for i in range(5)]
    sock.append(listen(350, 11, 8080))
    sock += [connect(20, 15, 9090, "refused"), connect(70, 15, 9090, "refused"),
             connect(120, 15, 9090, "ok")]
    tr = trace(
        meta={"start_ns": 0, "end_ns": ms(3000), "command_pid": 10},
        process=[fork(0, 10, 1), exec_(1, 10, "sh", "-c", "x"),
                 fork(2, 11, 10, "server"), fork(3, 16, 10), exec_(3.5, 16, "logger"),
                 fork(4, 12, 10, "client"),
                 fork(5, 13, 11), exec_(5.5, 13, "helper"), exit_(205, 13),
                 fork(206, 14, 11), exec_(206.5, 14, "prep"), exit_(306, 14),
                 exit_(50, 16),
                 fork(8, 15, 12), exec_(8.5, 15, "retry"), exit_(125, 15),
                 exit_(415, 12), exit_(416, 11), exit_(420, 10)],
        socket=sock,
    )
    return analyze(tr)


@pytest.fixture(scope="module")
def a() -> Analysis:
    r = planted()
    assert r.total_ns == ms(419)
    return r


def gain(a: Analysis, *changes: str) -> float:
    p = predict(a, list(changes))
    return (p.recorded_total_ns - p.predicted_total_ns) / MS


def test_no_change_is_the_recording(a: Analysis) -> None:
    p = predict(a, [])
    assert p.predicted_end_ns == p.recorded_end_ns == a.end_ns
    kinds = [(s.kind, s.comm) for s in p.critical_path]
    assert ("wait:child", "helper") in kinds and ("wait:child", "prep") in kinds
    assert ("wait:poll-lag", "client") in kinds


@pytest.mark.parametrize(("change", "expected_ms"), [
    # the listen moves to 250: the client notices it at its 310 ms attempt, not 410
    ("faster:helper=2", 100),
    ("remove:helper", 200),  # listen at 150: noticed at 210
    ("faster:prep=2", 100),  # listen at 300: noticed at 310
    ("faster:prep=1.25", 0),  # listen at 330: still after the 310 attempt: the cadence absorbs it
    ("poll:127.0.0.1:8080=10ms", 60),  # attempts at 10 + 10k: the 350 one
    ("poll:8080=40ms", 40),  # 10 + 40k >= 350: 370
    ("parallel:prep,helper", 100),  # prep beside helper: listen at 250
    ("faster:logger=3", 0),  # slack: on no path
])
def test_single_changes(a: Analysis, change: str, expected_ms: float) -> None:
    assert gain(a, change) == pytest.approx(expected_ms, abs=0.01)


def test_combined_changes_and_new_path(a: Analysis) -> None:
    p = predict(a, ["remove:helper", "poll:8080=10ms"])
    # listen at 150 ms, noticed at 150 (attempts every 10 ms from 10): end 420 - 200 - 60
    assert p.predicted_total_ns == ms(159)
    assert [c.gain_ns for c in p.changes] == [ms(200), ms(60)]
    segs = p.critical_path
    assert segs[0].start_ns == p.start_ns and segs[-1].end_ns == p.predicted_end_ns
    assert all(x.end_ns == y.start_ns for x, y in itertools.pairwise(segs))
    assert "helper" not in {s.comm for s in segs}


def test_no_gain_says_why(a: Analysis) -> None:
    (c,) = predict(a, ["faster:logger=3"]).changes
    assert c.gain_ns == 0 and "slack" in c.notes[0]
    (c,) = predict(a, ["faster:prep=1.25"]).changes
    assert c.gain_ns == 0 and "same attempt" in c.notes[0]


def test_what_the_trace_cannot_show_is_said_not_guessed(a: Analysis) -> None:
    (c,) = predict(a, ["poll:127.0.0.1:9090=5ms"]).changes
    assert c.gain_ns == 0
    assert c.not_modelled and "does not show when it became ready" in c.not_modelled[0]


def test_suggestions_rank_by_gain(a: Analysis) -> None:
    s = suggest(a)
    assert [x.change for x in s][:1] == ["remove:helper"]
    gains = [x.gain_ns for x in s]
    assert gains == sorted(gains, reverse=True) and len(s) <= 5
    for x in s:  # each suggestion's figure is the engine's own prediction of it
        assert x.gain_ns == predict(a, [x.change]).changes[0].gain_ns


def test_json_keys(a: Analysis) -> None:
    j = to_json(predict(a, ["faster:helper=2"]))
    for k in ("recorded_total_ns", "predicted_total_ns", "phases", "critical_path", "changes"):
        assert k in j
    assert j["changes"][0]["not_modelled"] == []


@pytest.mark.parametrize("change", ["faster:nope=2", "remove:nope", "poll:1.2.3.4:5=1s",
                                    "parallel:prep,nope"])
def test_unknown_names_are_usage_errors(a: Analysis, change: str) -> None:
    with pytest.raises(UsageError):
        predict(a, [change])


@pytest.mark.parametrize("change", ["faster:helper=0", "faster:helper=-1", "faster:helper=x",
                                    "faster:helper=inf", "poll:8080=0ms", "poll:8080=fast",
                                    "slower:x=2", "parallel:a", "remove:"])
def test_bad_syntax_is_a_usage_error(change: str) -> None:
    with pytest.raises(UsageError):
        parse(change)


def test_cli_bad_input_one_line_nonzero(capsys: Any) -> None:
    rc = main(["whatif", "tests/data/etcd-start.trace", "faster:sleep=0"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "factor" in err
    rc = main(["whatif", "tests/data/etcd-start.trace", "remove:nosuch"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "unknown selector" in err


def test_cli_predicts_on_the_golden_etcd_trace(capsys: Any) -> None:
    assert main(["whatif", "tests/data/etcd-start.trace", "remove:sleep"]) == 0
    out = capsys.readouterr().out
    assert "predicted" in out and "remove:sleep" in out


def test_report_panel_lists_the_suggestions(a: Analysis) -> None:
    from tracer.report.html import HtmlReport
    from tracer.report.whatif import whatif_tables

    (table,) = whatif_tables(a).values()
    assert [r[0] for r in table["rows"]] == [s.change for s in suggest(a)]
    page = HtmlReport.from_analysis(a).render_bytes().decode()
    assert '<section id="whatif">' in page and "remove:helper" in page
    assert page.index('id="critical-path"') < page.index('id="whatif"') < page.index(
        'id="connects"')


def test_report_panel_absent_without_a_path() -> None:
    from tracer.report.whatif import whatif_tables

    r = analyze(trace(
        meta={"start_ns": 0, "end_ns": ms(100), "command_pid": 10},
        process=[fork(0, 10, 1), exec_(1, 10, "sh")]), end="listen:9999")  # never happens
    assert not r.end_reached and whatif_tables(r) == {}
    with pytest.raises(UsageError, match="end milestone"):
        predict(r, ["remove:sh"])


def test_removing_the_end_process_is_refused(a: Analysis) -> None:
    with pytest.raises(UsageError, match="end milestone's process"):
        predict(a, ["remove:sh"])
    assert all(not x.change.startswith("remove:sh") for x in suggest(a))


def test_parallel_with_nothing_to_cut_says_so(a: Analysis) -> None:
    (c,) = predict(a, ["parallel:helper,prep"]).changes  # helper never waited for prep
    assert c.gain_ns == 0 and "nothing to cut" in c.notes[0]


def test_kind_selectors(a: Analysis) -> None:
    # every helper a parent waited for, twice as fast: helper (5 -> 105), prep (106 -> 156), so
    # the listen at 200; the client sh waited for too: its first attempt at 7 (3 ms after its
    # start, not 6), so it notices at 207 and exits 2.5 ms later; sh exits at 214.5, not 420
    assert gain(a, "faster:wait:child=2") == pytest.approx(205.5, abs=0.01)
    with pytest.raises(UsageError):
        predict(a, ["faster:wait:module=2"])  # no module helper in this trace


def test_not_ready_after_the_listen_is_kept_and_said() -> None:
    from tests.unit.test_analyzer import server_client

    # listen at 450; attempts every 100 ms from 10: first ok at 510, then 3 more until 810 (the
    # service answered, not ready, for a reason the trace does not show)
    r = analyze(server_client(client_polls_after_ok=3))
    (w,) = [x for x in r.waits if x["kind"] == "poll"]
    assert w["first_ok_ns"] == ms(510) and w["ended_ns"] == ms(810)
    p = predict(r, ["poll:8080=50ms"])
    (c,) = p.changes
    assert any("answered not-ready" in x for x in c.not_modelled)
    # the listen is noticed at 460 (10 + 50k), then the 300 ms not-ready part as recorded
    assert c.gain_ns == ms(50)
    (c,) = predict(r, ["faster:server=2"]).changes
    assert any("not-ready" in x for x in c.not_modelled)


def test_phases_recorded_and_predicted() -> None:
    from tests.unit.test_report_scenario import analysis

    a = analysis()  # the k3s-shaped scenario of the report tests (k3s profile, its phases)
    recorded = {p["name"]: p["duration_ns"] for p in a.phases if p["duration_ns"] is not None}
    same = predict(a, [])
    assert {x.name: x.predicted_ns for x in same.phases} == recorded
    p = predict(a, ["poll:6444=75ms"])  # k3s-server's retry of the apiserver port
    moved = {x.name: x.recorded_ns - x.predicted_ns for x in p.phases}
    gain = p.recorded_total_ns - p.predicted_total_ns
    assert gain > 0
    # the phases that end at the end milestone gain what the end gains; the one before the
    # retry loop nothing
    assert moved["containerd start -> first API readiness check"] == 0
    assert moved["scheduler start latency (k3s exec -> :10259 listen)"] == gain
