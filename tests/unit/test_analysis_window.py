"""The analysis window rules the lists (issue 13): waits that do not overlap [start, end] are
flagged in JSON, never ranked in Top waits or the report's table above window waits, and listed
with --all-waits."""

from __future__ import annotations

from typing import Any

from tests.builders import ms, trace
from tests.unit.test_analyzer import connect, exec_, exit_, fork, listen
from tests.unit.test_report_html import payload
from tracer.analyzer import analyze
from tracer.report.html import HtmlReport
from tracer.report.text import render


def teardown_retries() -> Any:
    """sh (the recorded command) starts a server and a client that waits for it (a listener wait
    ending at 510 ms), and a retrier that, from 700 ms on, well after sh exited at 611 ms (the
    end milestone), connects 96 times every 10 ms to a port nobody listens on until 1655 ms (a
    daemon retrying a socket during teardown; its wait, 970 ms, is longer than the client's)."""
    sock = [connect(10 + 100 * i, 12, 8080, "refused" if i < 5 else "ok") for i in range(6)]
    sock.append(listen(450, 11, 8080))
    sock += [connect(700 + 10 * i, 13, 9090, "refused") for i in range(96)]
    sock += [listen(1655, 14, 9090), connect(1670, 13, 9090, "ok")]
    return trace(
        meta={"start_ns": 0, "end_ns": ms(3000), "command_pid": 10},
        process=[fork(0, 10, 1), exec_(1, 10, "sh", "-c", "x"),
                 fork(2, 11, 10), exec_(3, 11, "server"),
                 fork(4, 12, 10), exec_(5, 12, "client"),
                 fork(6, 13, 10), exec_(7, 13, "retrier"),
                 fork(1650, 14, 1), exec_(1651, 14, "other-server"),
                 exit_(600, 12), exit_(610, 11), exit_(611, 10), exit_(1700, 13)],
        socket=sock,
    )


def by_waiter(a: Any) -> dict[str, dict[str, Any]]:
    return {w["waiter"]["comm"]: w for w in a.waits if w["kind"] in ("listener", "poll")}


def test_waits_after_the_end_are_flagged_not_dropped() -> None:
    a = analyze(teardown_retries())
    assert a.end_ns == ms(611) and a.end_by == "exit of the recorded command"
    waits = by_waiter(a)
    assert waits["client"]["in_window"] is True
    assert waits["retrier"]["in_window"] is False
    assert waits["retrier"]["attempts"] == 97  # still there, with its detail
    # the longer, later wait would have led Top waits; now it is not ranked at all
    assert (waits["retrier"]["duration_ns"], waits["client"]["duration_ns"]) == (ms(970), ms(500))
    top = render(a).split("Top waits")[1].split("\n\n")[0]
    assert "client[12]" in top and "retrier" not in top
    assert "1 more outside the analysis window: --all-waits lists them" in top


def test_all_waits_lists_them_last() -> None:
    top = render(analyze(teardown_retries()), all_waits=True).split("Top waits")[1]
    top = top.split("\n\n")[0]
    assert top.index("client[12]") < top.index("retrier[13]")
    assert "retrier[13]" in top and "(outside the analysis window)" in top


def test_report_ranks_window_waits_first_and_marks_the_rest() -> None:
    a = analyze(teardown_retries())
    rows = payload(HtmlReport.from_analysis(a).render_bytes().decode())["tables"]["waits"]["rows"]
    kinds = [r[0] for r in rows]
    outside = [i for i, k in enumerate(kinds) if "outside the analysis window" in k]
    assert outside and all(i > j for i in outside for j, k in enumerate(kinds) if j not in outside)
    assert rows[outside[0]][2] == "retrier [13]"


def test_with_the_end_after_the_retries_they_are_in_the_window() -> None:
    a = analyze(teardown_retries(), end="exit:retrier")
    assert by_waiter(a)["retrier"]["in_window"] is True
