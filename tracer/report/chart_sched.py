"""The report's scheduler charts (traces with scheduler data only): busy cores, one state lane per
critical-path process, and what each significant critical-path segment was doing."""

from __future__ import annotations

import plotly.graph_objects as go

from tracer import units
from tracer.analyzer.model import StateLanesJson
from tracer.report import model
from tracer.report.charts import (
    STATE_COLORS,
    STATE_NAMES,
    STATES_MIN_SHARE,
    Chart,
    dur_s,
    seconds,
)
from tracer.report.page import esc


def busy_cores_figure(busy: model.BusyCores | None, f: model.Facts) -> Chart:
    """Busy cores per bucket as a step line (each bucket drawn over its whole width)."""
    if busy is None or not busy["start_ns"]:
        return Chart("fig-busy-cores", empty="No busy-cores timeline in this analysis.")
    t0 = f["start_ns"]
    xs = [seconds(t, t0) for t in busy["start_ns"]]
    ys = list(busy["cores"])
    # close the last bucket: a step line otherwise stops at the last bucket's start
    xs.append(seconds(busy["start_ns"][-1] + busy["bucket_ns"], t0))
    ys.append(ys[-1])
    fig = go.Figure(
        go.Scatter(
            name="busy cores",
            mode="lines",
            x=xs,
            y=ys,
            line={"shape": "hv", "color": STATE_COLORS["cpu"], "width": 1},
            fill="tozeroy",
            hovertemplate="+%{x:.3f} s: %{y:.2f} cores busy<extra></extra>",
        )
    )
    return Chart(
        "fig-busy-cores",
        fig,
        height=200,
        window_title="seconds since recording started (the analysis window)",
        layout={
            "showlegend": False,
            "yaxis": {"title": {"text": "busy cores"}, "rangemode": "tozero"},
        },
    )

def state_lanes_figure(lanes: StateLanesJson | None, f: model.Facts) -> Chart:
    """One lane per process on the critical path: runs of its dominant state per bucket, as
    horizontal bars on the busy-cores chart's time axis (the analysis' `state_lanes`)."""
    rows = lanes["lanes"] if lanes is not None else []
    if lanes is None or not rows:
        return Chart("fig-state-lanes", empty="No per-process state lanes in this analysis.")
    t0 = f["start_ns"]
    names = [f"{esc(r['comm'] or '?')} [{r['pid']}]" for r in rows]
    fig = go.Figure()
    for state, color in STATE_COLORS.items():
        ys: list[str] = []
        base: list[float | None] = []
        xs: list[float] = []
        hover: list[str] = []
        for name, r in zip(names, rows):
            for a, b, st in zip(r["start_ns"], r["end_ns"], r["state"]):
                if st != state:
                    continue
                ys.append(name)
                base.append(seconds(int(a), t0))
                xs.append(dur_s(int(b) - int(a)))
                hover.append(f"{units.fmt_t(int(a), t0)}, {units.fmt_ns(int(b) - int(a))}")
        fig.add_trace(
            go.Bar(
                name=esc(STATE_NAMES[state]),
                orientation="h",
                y=ys,
                base=base,
                x=xs,
                marker={"color": color, "line": {"width": 0}},
                customdata=hover,
                hovertemplate=f"<b>%{{y}}</b><br>{esc(STATE_NAMES[state])}: %{{customdata}}"
                "<extra></extra>",
            )
        )
    left = lanes["left_out"]
    return Chart(
        "fig-state-lanes",
        fig,
        height=90 + 26 * len(rows),
        window_title="seconds since recording started: dominant state per "
        f"{lanes['bucket_ns'] / 1e6:.1f} ms"
        + (f" ({left} more processes on the path not shown)" if left else ""),
        rows=names,
        layout={
            "barmode": "overlay",
            "bargap": 0.25,
            "legend": {"orientation": "h", "y": 1.0, "yanchor": "bottom", "x": 0,
                       "font": {"size": 11}, "traceorder": "normal"},
        },
    )

def segment_states_figure(segs: list[model.SegmentRow], f: model.Facts) -> Chart:
    """One horizontal stacked bar per significant segment with states (ms per state, summing
    to the segment), the whole path's sum first."""
    total = f["total_ns"] or sum(s["end_ns"] - s["start_ns"] for s in segs)
    shown = [
        (i, s)
        for i, s in enumerate(segs)
        if "states" in s and s["end_ns"] - s["start_ns"] >= STATES_MIN_SHARE * total
    ]
    if not shown:
        return Chart(
            "fig-segment-states", empty="No critical-path segment carries scheduler states."
        )
    t0 = f["start_ns"]
    path = dict.fromkeys(STATE_COLORS, 0)
    for s in segs:
        for k, v in s.get("states", {}).items():
            path[k] = path.get(k, 0) + v
    rows: list[tuple[str, dict[str, int], int, str]] = [
        ("whole path", path, sum(path.values()), "states summed over every segment that has them")
    ]
    for i, s in shown:
        party = s.get("states_of", "") if s["kind"] != "run" else units.who(s["pid"], s["comm"])
        rows.append(
            (
                f"#{i + 1} {esc(s['kind'])} {esc(party)}",
                s.get("states", {}),
                s["end_ns"] - s["start_ns"],
                f"{esc(s['label'] or s['comm'])} at {units.fmt_t(s['start_ns'], t0)}",
            )
        )
    fig = go.Figure()
    for state, color in STATE_COLORS.items():
        fig.add_trace(
            go.Bar(
                name=esc(STATE_NAMES[state]),
                orientation="h",
                y=[r[0] for r in rows],
                x=[round(r[1].get(state, 0) / 1e6, 3) for r in rows],
                marker={"color": color, "line": {"color": "#666", "width": 0.5}},
                customdata=[
                    [f"{units.pct(r[1].get(state, 0), r[2])} of {units.fmt_ns(r[2])}", r[3]]
                    for r in rows
                ],
                hovertemplate=f"<b>%{{y}}</b><br>{esc(STATE_NAMES[state])}: %{{x:.1f}} ms "
                "(%{customdata[0]})<br>%{customdata[1]}<extra></extra>",
            )
        )
    return Chart(
        "fig-segment-states",
        fig,
        height=110 + 24 * len(rows),
        rows=[r[0] for r in rows],
        layout={
            "barmode": "stack",
            # plotly lists stacked bars' legend bottom-up; keep the state order (running first)
            "legend": {
                "orientation": "h",
                "y": 1.0,
                "yanchor": "bottom",
                "x": 0,
                "font": {"size": 11},
                "traceorder": "normal",
            },
            "xaxis": {"title": {"text": "ms in each state"}, "zeroline": False},
        },
    )
