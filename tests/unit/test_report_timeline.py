"""The report timeline shows the analysis window, not the whole life of every process."""

from __future__ import annotations

import json
import re
from typing import Any

from tests.builders import ms, trace
from tests.unit.test_analyzer import connect, exec_, exit_, fork, listen
from tracer.analyzer import analyze
from tracer.report.html import HtmlReport

T0 = 2_000_000  # ms: the recording starts 2000 s after boot


def system_trace() -> Any:
    """30 kernel threads from the attach snapshot (alive since boot, no event in the trace), one
    old daemon that connects during the window, and a startup at T0 + 100 .. T0 + 700 ms."""
    snap = [dict(ts_ns=ms(T0), pid=100 + i, ppid=2, comm=f"kworker/{i}", start_ns=ms(1 + i))
            for i in range(30)]
    snap.append(dict(ts_ns=ms(T0), pid=900, ppid=1, comm="olddaemon", start_ns=ms(50)))
    return trace(
        meta={"start_ns": ms(T0), "end_ns": ms(T0 + 1000)},
        snapshot=snap,
        process=[fork(T0 + 100, 10, 1), exec_(T0 + 101, 10, "server"),
                 fork(T0 + 102, 11, 1), exec_(T0 + 103, 11, "client"),
                 exit_(T0 + 690, 11, comm="client"), exit_(T0 + 700, 10, comm="server")],
        socket=[connect(T0 + 200 + 100 * i, 11, 8080, "refused" if i < 3 else "ok")
                for i in range(4)] + [listen(T0 + 450, 10, 8080),
                                      connect(T0 + 300, 900, 53, "ok")],
    )


def timeline(tr: Any, **kw: Any) -> tuple[str, dict[str, Any]]:
    rep = HtmlReport.from_analysis(analyze(tr, **kw))
    fig = rep.figures["timeline"]
    layout = json.loads(re.search(r"Plotly\.newPlot\(\s*\"fig-timeline\",\s*\[.*?\],\s*({.*?})"
                                  r",\s*{\"displaylogo\"", fig, re.S).group(1))  # type: ignore[union-attr]
    return fig, layout


def test_snapshot_only_processes_are_left_out_and_counted() -> None:
    tr = system_trace()
    fig, layout = timeline(tr, end="exit:server")
    assert "kworker" not in fig
    assert "olddaemon" in fig  # alive since boot, but it connected inside the window
    assert "client [11]" in fig and "server [10]" in fig
    notes = [a["text"] for a in layout["annotations"]]
    assert any(n.startswith("30 processes with no event in the analysis window left out")
               for n in notes), notes


def test_x_range_is_the_analysis_window_with_a_small_margin() -> None:
    _, layout = timeline(system_trace(), start="exec:server", end="exit:server")
    lo, hi = layout["xaxis"]["range"]
    # window +0.101 s .. +0.700 s since the recording started; margin 1/40 of it
    assert 0.085 < lo < 0.101 and 0.700 < hi < 0.716
