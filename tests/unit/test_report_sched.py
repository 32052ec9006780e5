"""Scheduler data (record --sched) in the HTML report and the Perfetto export: the busy-cores
chart and the critical-path segments' states carry exactly the analysis' numbers, on the
timeline's time axis; without scheduler data neither output changes (test_report_html /
test_perfetto cover the bytes of those)."""

from __future__ import annotations

import json
import re
from typing import Any

from tests.unit.test_analyzer import server_client
from tests.unit.test_schedpath import _with_sched
from tracer.analyzer import analyze
from tracer.analyzer.model import Analysis
from tracer.analyzer.sched import STATES
from tracer.report.charts import STATE_COLORS, STATES_MIN_SHARE
from tracer.report.html import HtmlReport
from tracer.report.perfetto import CRITICAL_PATH_PID, PerfettoExport


def _figure(page: str, div_id: str) -> dict[str, Any]:
    """The data and layout plotly is given for one div (Plotly.newPlot(id, data, layout, ...))."""
    m = re.search(
        r'Plotly\.newPlot\(\s*"' + div_id + r'",\s*(\[.*?\]),\s*(\{.*?\}),\s*\{"displaylogo"',
        page,
        re.S,
    )
    assert m, f"no figure {div_id}"
    return {"data": json.loads(m.group(1)), "layout": json.loads(m.group(2))}


def _sched_analysis() -> Analysis:
    return analyze(_with_sched(server_sleeps=True))


def test_busy_cores_chart_is_the_cpu_section_on_the_timeline_axis() -> None:
    a = _sched_analysis()
    page = HtmlReport.from_analysis(a).render_bytes().decode()
    bc = a.sections["cpu"]["busy_cores"]
    assert bc["cores"] and max(bc["cores"]) > 0
    fig = _figure(page, "fig-busy-cores")
    (trace,) = fig["data"]
    t0 = a.trace["start_ns"]
    # every bucket, at its start in seconds since the recording started, plus the closing step
    assert trace["x"][:-1] == [round((t - t0) / 1e9, 6) for t in bc["start_ns"]]
    assert trace["x"][-1] == round((bc["start_ns"][-1] + bc["bucket_ns"] - t0) / 1e9, 6)
    assert trace["y"][:-1] == bc["cores"]
    timeline = _figure(page, "fig-timeline")
    assert fig["layout"]["xaxis"]["range"] == timeline["layout"]["xaxis"]["range"]
    assert 'href="#sched"' in page


def test_segment_states_bars_equal_the_analysis_states() -> None:
    a = _sched_analysis()
    page = HtmlReport.from_analysis(a).render_bytes().decode()
    fig = _figure(page, "fig-segment-states")
    by_state = {t["name"]: t for t in fig["data"]}
    assert len(fig["data"]) == len(STATES)
    assert [t["marker"]["color"] for t in fig["data"]] == [STATE_COLORS[s] for s in STATES]
    total = a.total_ns
    significant = [
        s
        for s in a.critical_path
        if "states" in s and s["end_ns"] - s["start_ns"] >= STATES_MIN_SHARE * total
    ]
    assert significant and any(s["kind"] == "wait:poll" for s in significant)
    traces = list(by_state.values())
    for state, t in zip(STATES, traces):
        # row 0: the whole path (states summed over every segment with states), in ms
        path_ns = sum(s["states"][state] for s in a.critical_path if "states" in s)
        assert t["x"][0] == round(path_ns / 1e6, 3)
        assert t["x"][1:] == [round(s["states"][state] / 1e6, 3) for s in significant]
    # each row stacks to its segment's duration
    for row, s in enumerate(significant, start=1):
        assert abs(sum(t["x"][row] for t in traces) - (s["end_ns"] - s["start_ns"]) / 1e6) < 0.01
    (poll_row,) = [i for i, y in enumerate(traces[0]["y"]) if "wait:poll " in y]
    sleep = traces[STATES.index("sleep")]
    assert sleep["x"][poll_row] == 280.0  # the server slept 280 ms of the 300 ms not-ready poll
    assert "server[11]" in traces[0]["y"][poll_row]  # a wait's states are its target's


def test_no_sched_data_no_scheduler_section() -> None:
    page = HtmlReport.from_analysis(analyze(server_client(client_polls_after_ok=3)))
    text = page.render_bytes().decode()
    assert "fig-busy-cores" not in text and "fig-segment-states" not in text
    assert 'href="#sched"' not in text


def test_perfetto_carries_states_and_busy_cores() -> None:
    a = _sched_analysis()
    doc = json.loads(PerfettoExport.from_analysis(a).render_bytes())
    t0 = a.trace["start_ns"]
    ev = doc["traceEvents"]
    for e in ev:  # the trace-event format's required keys
        assert {"ph", "name", "pid", "tid", "ts"} <= set(e)
        assert isinstance(e["ts"], (int, float))
    counters = [e for e in ev if e["ph"] == "C"]
    bc = a.sections["cpu"]["busy_cores"]
    assert [e["ts"] for e in counters] == [round((t - t0) / 1000, 3) for t in bc["start_ns"]]
    assert [e["args"]["cores"] for e in counters] == bc["cores"]
    assert {e["pid"] for e in counters} == {CRITICAL_PATH_PID}
    assert {e["name"] for e in counters} == {"busy cores"}
    path = [e for e in ev if e.get("cat") == "critical_path"]
    with_states = [s for s in a.critical_path if "states" in s]
    got = {(e["ts"], e["args"]["kind"]): e["args"] for e in path if "states_ns" in e["args"]}
    assert len(got) == len(with_states)
    for s in with_states:
        args = got[(round((s["start_ns"] - t0) / 1000, 3), s["kind"])]
        assert args["states_ns"] == s["states"]
        assert args["states_of"] == f"{s['states_of']['comm']}[{s['states_of']['pid']}]"


def test_perfetto_without_sched_data_has_no_states() -> None:
    doc = PerfettoExport.from_analysis(analyze(server_client(client_polls_after_ok=3))).doc
    assert not any(e["ph"] == "C" for e in doc["traceEvents"])
    assert not any("states_ns" in e.get("args", {}) for e in doc["traceEvents"])


def test_state_lanes_are_the_processes_on_the_path_on_the_busy_cores_axis() -> None:
    """Issue 15: per-process thread-state lanes (dominant state per bucket), the processes on
    the critical path, capped; on the busy-cores chart's x axis; the blockers table."""
    from tests.unit.test_wakewalk import CLIENT, REPLIER, _sched

    a = analyze(_sched())
    lanes = a.sections["state_lanes"]
    by_pid = {ln["pid"]: ln for ln in lanes["lanes"]}
    assert lanes["lanes"][0]["pid"] == CLIENT  # longest on the path first
    assert REPLIER in by_pid and lanes["left_out"] == 0
    rep = by_pid[REPLIER]
    assert rep["start_ns"][0] >= a.start_ns and rep["end_ns"][-1] <= a.end_ns  # type: ignore[operator]
    # the replier's 300 ms of CPU (99-399 ms) is one cpu run at bucket resolution
    cpu = [(s, e) for s, e, st in zip(rep["start_ns"], rep["end_ns"], rep["state"])
           if st == "cpu"]
    assert len(cpu) == 1 and abs((cpu[0][1] - cpu[0][0]) - 300_000_000) <= 2 * lanes["bucket_ns"]
    page = HtmlReport.from_analysis(a).render_bytes().decode()
    fig = _figure(page, "fig-state-lanes")
    assert [t["marker"]["color"] for t in fig["data"]] == [STATE_COLORS[s] for s in STATES]
    busy = _figure(page, "fig-busy-cores")
    assert fig["layout"]["xaxis"]["range"] == busy["layout"]["xaxis"]["range"]
    cpu_trace = fig["data"][STATES.index("cpu")]
    assert "replier [20]" in cpu_trace["y"]
    assert 'data-table="blockers"' in page
    # without sched data: no lanes, no blockers table
    plain = HtmlReport.from_analysis(analyze(server_client(client_polls_after_ok=3)))
    text = plain.render_bytes().decode()
    assert "fig-state-lanes" not in text and 'data-table="blockers"' not in text


def test_perfetto_export_has_a_state_track_per_lane() -> None:
    from tests.unit.test_wakewalk import REPLIER, _sched
    from tracer.report.perfetto import STATE_TID_BASE

    a = analyze(_sched())
    doc = json.loads(PerfettoExport.from_analysis(a).render_bytes())
    lane = {ln["pid"]: ln for ln in a.sections["state_lanes"]["lanes"]}[REPLIER]
    slices = [e for e in doc["traceEvents"] if e["ph"] == "X"
              and e.get("tid") == STATE_TID_BASE + REPLIER]
    assert [e["name"] for e in slices] == lane["state"]
    assert all(e["pid"] == REPLIER for e in slices)
    t0 = a.trace["start_ns"]
    assert slices[0]["ts"] == round((lane["start_ns"][0] - t0) / 1000, 3)
    names = [e for e in doc["traceEvents"] if e["ph"] == "M" and e["name"] == "thread_name"
             and e["tid"] == STATE_TID_BASE + REPLIER]
    assert names and names[0]["args"]["name"].startswith("scheduler state")
    # its thread's own track (single-threaded: the same runs as the process lane)
    from tracer.report.perfetto import THREAD_TID_BASE

    (th,) = lane["threads"]
    assert th["tid"] == REPLIER and th["cpu_ns"] > 0
    per_thread = [e for e in doc["traceEvents"] if e["ph"] == "X"
                  and e.get("tid") == THREAD_TID_BASE + REPLIER]
    assert [e["name"] for e in per_thread] == th["state"] == lane["state"]
