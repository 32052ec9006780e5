"""The report's timeline: the critical path on top, then one row per process that did something
in the analysis window, grouped in bands by systemd unit / pod (else by component)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import plotly.graph_objects as go

from tracer import units
from tracer.report import model
from tracer.report.charts import (
    COMPONENT_PALETTE,
    MAX_TIMELINE_ROWS,
    SEGMENT_COLORS,
    Chart,
    dur_s,
    seconds,
    wrap_argv,
)
from tracer.report.page import esc


def proc_hover(p: model.ProcessRow, t0: int) -> str:
    end = "still running at trace end" if p["end_ns"] is None else units.fmt_t(p["end_ns"], t0)
    status = ""
    if p["exit_signal"]:
        status = f" · killed by signal {p['exit_signal']}"
    elif p["exit_code"] is not None:
        status = f" · exit {p['exit_code']}"
    unit = f" · unit {esc(p['unit'])}" if p["unit"] else ""
    return (
        f"<b>{esc(p['comm'])}</b> pid {p['pid']} · {esc(p['component'])}{unit}"
        f"{' · ON CRITICAL PATH' if p['on_critical_path'] else ''}<br>"
        f"{wrap_argv(p['argv'] or [p['exe'] or p['comm']])}<br>"
        f"start {units.fmt_t(p['start_ns'], t0)} · end {end}{status}"
    )

def pick_timeline(procs: list[model.ProcessRow]) -> list[model.ProcessRow]:
    """The rows worth a line: on the critical path first, then the longest-lived."""

    def rank(p: model.ProcessRow) -> tuple[int, int, int]:
        start = p["start_ns"] or 0
        end = p["end_ns"] if p["end_ns"] is not None else 2**62
        return (0 if p["on_critical_path"] else 1, -(end - start), p["pid"])

    return sorted(procs, key=rank)[:MAX_TIMELINE_ROWS]

def band_function(procs: list[model.ProcessRow]) -> Callable[[model.ProcessRow], str]:
    """The timeline band of a row: its unit / pod when any row has one, else its component."""
    if any(p["group"] for p in procs):
        return lambda p: p["group"] or "(no unit)"
    return lambda p: p["component"]

def active_in_window(
    procs: list[model.ProcessRow], lo: int, hi: int, active: set[int]
) -> list[model.ProcessRow]:
    """Processes that did something inside [lo, hi]: started, ended, or have an event there.
    A process merely alive throughout (a kernel thread from the attach snapshot) is left out."""

    def inside(t: int | None) -> bool:
        return t is not None and lo <= t <= hi

    out = []
    for p in procs:
        start = p["start_ns"] if p["start_ns"] is not None else -(2**63)
        end = p["end_ns"] if p["end_ns"] is not None else 2**63
        overlaps = start <= hi and end >= lo
        if p["on_critical_path"] or (
            overlaps and (inside(p["start_ns"]) or inside(p["end_ns"]) or p["pid"] in active)
        ):
            out.append(p)
    return out

def timeline_figure(
    procs: list[model.ProcessRow],
    segs: list[model.SegmentRow],
    f: model.Facts,
    active: set[int],
    window: tuple[int, int],
) -> Chart:
    """`window`: the analysis window (model.analysis_window)."""
    t0, t_end = f["start_ns"], max(f["end_ns"], f["analysis_end_ns"])
    lo, hi = window
    in_window = active_in_window(procs, lo, hi, active)
    idle = len(procs) - len(in_window)
    shown = pick_timeline(in_window)
    if not shown and not segs:
        return Chart(
            "fig-timeline",
            empty="No process did anything inside the analysis window."
            if procs
            else "No processes in this trace.",
        )
    components = sorted({p["component"] for p in shown})
    color = {c: COMPONENT_PALETTE[i % len(COMPONENT_PALETTE)] for i, c in enumerate(components)}
    band_of = band_function(shown)
    # group by systemd unit / pod when the trace has them, else by component (by the band's
    # first start), then by start time within it; colors stay per component
    first_start: dict[str, int] = {}
    for p in shown:
        s = p["start_ns"] if p["start_ns"] is not None else t0
        first_start[band_of(p)] = min(first_start.get(band_of(p), s), s)
    shown.sort(key=lambda p: (first_start[band_of(p)], band_of(p), p["start_ns"] or t0, p["pid"]))
    labels: list[str] = []
    seen: dict[str, int] = {}
    for p in shown:
        label = f"{esc(p['comm'] or '?')} [{p['pid']}]"
        seen[label] = seen.get(label, 0) + 1
        labels.append(label if seen[label] == 1 else f"{label} #{seen[label]}")
    cp_label = "<b>critical path</b>"
    categories = ([cp_label] if segs else []) + labels

    fig = go.Figure()
    for kind in [k for k in model.SEGMENT_KINDS if any(s["kind"] == k for s in segs)] + sorted(
        {s["kind"] for s in segs} - set(model.SEGMENT_KINDS)
    ):
        ks = [s for s in segs if s["kind"] == kind]
        fig.add_trace(
            go.Bar(
                name=f"path: {kind}",
                orientation="h",
                y=[cp_label] * len(ks),
                base=[seconds(s["start_ns"], t0) for s in ks],
                x=[dur_s(s["end_ns"] - s["start_ns"]) for s in ks],
                marker={"color": SEGMENT_COLORS.get(kind, "#7f7f7f")},
                customdata=[
                    [
                        f"<b>{esc(kind)}</b> {esc(s['label'])}<br>"
                        f"{esc(s['comm'])} [{s['pid']}]<br>"
                        f"{units.fmt_t(s['start_ns'], t0)} → {units.fmt_t(s['end_ns'], t0)} · "
                        f"{units.fmt_ns(s['end_ns'] - s['start_ns'])}"
                    ]
                    for s in ks
                ],
                hovertemplate="%{customdata[0]}<extra></extra>",
            )
        )
    for comp in components:
        idx = [i for i, p in enumerate(shown) if p["component"] == comp]
        rows = [shown[i] for i in idx]
        starts = [p["start_ns"] if p["start_ns"] is not None else t0 for p in rows]
        ends = [p["end_ns"] if p["end_ns"] is not None else t_end for p in rows]
        fig.add_trace(
            go.Bar(
                name=esc(comp),
                orientation="h",
                y=[labels[i] for i in idx],
                base=[seconds(s, t0) for s in starts],
                # a 1 ms floor so that a 200 µs helper is still a visible (hoverable) sliver
                x=[max(dur_s(e - s), 0.001) for s, e in zip(starts, ends)],
                marker={
                    "color": color[comp],
                    "line": {
                        "color": [
                            "#d62728" if p["on_critical_path"] else color[comp] for p in rows
                        ],
                        "width": [2 if p["on_critical_path"] else 0 for p in rows],
                    },
                },
                customdata=[[proc_hover(p, t0)] for p in rows],
                hovertemplate="%{customdata[0]}<extra></extra>",
            )
        )
    shapes: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    offset = 1 if segs else 0
    band = 0
    i = 0
    while i < len(shown):
        comp = band_of(shown[i])
        j = i
        while j < len(shown) and band_of(shown[j]) == comp:
            j += 1
        if band % 2 == 0:
            shapes.append(
                {
                    "type": "rect",
                    "xref": "paper",
                    "x0": 0,
                    "x1": 1,
                    "yref": "y",
                    "y0": i + offset - 0.5,
                    "y1": j + offset - 0.5,
                    "layer": "below",
                    "line": {"width": 0},
                    "fillcolor": "rgba(0,0,0,0.04)",
                }
            )
        annotations.append(
            {
                "text": f"<i>{esc(comp)}</i>",
                "xref": "paper",
                "x": 1,
                "xanchor": "left",
                "yref": "y",
                "y": i + offset - 0.5,
                "yanchor": "top",
                "showarrow": False,
                "font": {"size": 10, "color": "#555"},
            }
        )
        band += 1
        i = j
    for ts, name in ((f["analysis_start_ns"], "start"), (f["analysis_end_ns"], "end")):
        if segs:
            x = seconds(ts, t0)
            shapes.append(
                {
                    "type": "line",
                    "xref": "x",
                    "x0": x,
                    "x1": x,
                    "yref": "paper",
                    "y0": 0,
                    "y1": 1,
                    "line": {"color": "#d62728", "width": 1, "dash": "dot"},
                }
            )
            annotations.append(
                {
                    "text": name,
                    "xref": "x",
                    "x": x,
                    # "start" left of its line: right of it is the legend
                    "xanchor": "right" if name == "start" else "left",
                    "yref": "paper",
                    "y": 1,
                    "yanchor": "bottom",
                    "showarrow": False,
                    "font": {"size": 10, "color": "#d62728"},
                }
            )
    notes = []
    if idle:
        notes.append(
            f"{idle} processes with no event in the analysis window left out (alive throughout, "
            "e.g. kernel threads from the attach snapshot)"
        )
    if len(in_window) > len(shown):
        notes.append(
            f"{len(in_window) - len(shown)} more not shown (short-lived ones are in the execs "
            "chart below)"
        )
    if notes:
        annotations.append(
            {
                "text": "; ".join(notes),
                "xref": "paper",
                "x": 0,
                "xanchor": "left",
                "yref": "paper",
                "y": 0,
                "yanchor": "top",
                "yshift": -40,
                "showarrow": False,
                "font": {"size": 10},
            }
        )
    return Chart(
        "fig-timeline",
        fig,
        height=110 + 20 * len(categories),
        window_title="seconds since recording started (the analysis window)",
        rows=categories,
        layout={
            "barmode": "overlay",
            "margin": {"l": 10, "r": 100, "t": 30, "b": 60},
            "bargap": 0.25,
            "shapes": shapes,
            "annotations": annotations,
        },
    )
